"""The fake hypervisor driver: guests in memory, timings and failures drawn from the Runtime.

It keeps every convention of :mod:`nimbus.core.compute.driver` (the contract
suite checks it as it checks real drivers) and models what a simulation needs
of a hypervisor: each operation takes a time drawn from a configured
distribution, may fail with a configured probability, and capacity is what the
config says. All waiting is ``runtime.sleep`` and all chance is
``runtime.rng``, so a simulation stays deterministic for its seed.

Each operation checks the guest, spends its time, checks again (the guest may have
changed meanwhile), then changes it: a refused or failed operation changes nothing.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

from nimbus.core.compute import driver as d
from nimbus.core.compute.driver import DriverContext, GuestSpec, MigrateData
from nimbus.core.compute.states import CRASHED, POWER_PAUSED, POWER_SUSPENDED, RUNNING, SHUTDOWN
from nimbus.core.compute.states import POWER_STATE_NAMES as NAMES
from nimbus.core.errors import ConfigError, DriverError, DriverNotSupported, NotFound

from .config import NEEDS, OPERATIONS, FakeDriverConfig

T = TypeVar("T")

#: Console lines kept per guest: enough to read a boot, bounded for long simulations.
CONSOLE_LINES = 200


@dataclass(slots=True)
class Guest:
    """A guest as the fake hypervisor holds it (mutable: the hypervisor's own state)."""

    spec: GuestSpec
    slot: int  # per-host index, for the console port
    power_state: int = RUNNING
    cpu_ns: int = 0  # cpu time up to ``running_since``
    running_since: float | None = None
    console: deque[str] = field(default_factory=lambda: deque(maxlen=CONSOLE_LINES))
    rescued: bool = False
    incoming: bool = False  # prepared for a live migration, not yet this host's


@dataclass(frozen=True, slots=True)
class Kept:
    """What a resize source keeps for a revert: the old spec and where the guest went."""

    spec: GuestSpec
    dest_host: str


class FakeDriver:
    """A hypervisor in memory; see the module docstring. Built as ``FakeDriver(ctx)``."""

    def __init__(self, ctx: DriverContext) -> None:
        self.rt = ctx.runtime
        self.host = ctx.host
        self.config = cfg = FakeDriverConfig.from_mapping(ctx.config)
        self.capabilities: frozenset[str] = cfg.capabilities
        self._guests: dict[str, Guest] = {}
        self._kept: dict[str, Kept] = {}
        self._free_slots: list[int] = []  # a heap: the lowest free console slot is reused
        self._timing = {op: cfg.timings.get(op, cfg.default_timing) for op in OPERATIONS}
        # the host's rate applies on top of the operation's: both must spare the call
        self._fail_p = {op: 1.0 - (1.0 - cfg.failure_rates.get(op, 0.0))
                        * (1.0 - cfg.host_failure_rate) for op in OPERATIONS}

    # -- helpers for tests and simulations (not part of the interface) --------------------
    def crash(self, uuid: str) -> None:
        """The guest crashes: power state CRASHED."""
        self._set(self._guest(uuid), CRASHED, "crashed")

    def set_failure_rates(self, rates: Mapping[str, float]) -> None:
        """From now on operations fail at ``rates`` (operation -> probability) on top of
        the host's rate; operations not named go back to the configured rates."""
        cfg = self.config
        unknown = sorted(set(rates) - set(OPERATIONS))
        if unknown:
            raise ConfigError(f"fake driver: no operation {unknown[0]!r}")
        self._fail_p = {op: 1.0 - (1.0 - rates.get(op, cfg.failure_rates.get(op, 0.0)))
                        * (1.0 - cfg.host_failure_rate) for op in OPERATIONS}

    def lose_all(self) -> None:
        """The host loses power: every guest is SHUTDOWN, incoming migrations are gone."""
        for uuid in [u for u, g in self._guests.items() if g.incoming]:
            self._remove(uuid)
        for g in self._guests.values():
            self._set(g, SHUTDOWN, "lost power")

    # -- mandatory operations --------------------------------------------------------------
    async def init_host(self, host: str) -> None:
        await self._work("init_host")

    async def host_resources(self) -> d.HostResources:
        await self._work("host_resources")
        c = self.config
        return d.HostResources(
            hostname=self.host, hypervisor_type=c.hypervisor_type,
            hypervisor_version=c.hypervisor_version, vcpus=c.vcpus, memory_mb=c.memory_mb,
            local_gb=c.local_gb, host_ip=c.host_ip, cpu_info=c.cpu_info,
            supported_instances=c.supported_instances, traits=c.traits)

    async def list_guests(self) -> list[str]:
        await self._work("list_guests")
        return [uuid for uuid, g in self._guests.items() if not g.incoming]

    async def guest_info(self, uuid: str) -> d.GuestInfo:
        g = await self._step("guest_info", lambda: self._guest(uuid))
        now_ns = 0 if g.running_since is None else int((self.rt.now() - g.running_since) * 1e9)
        return d.GuestInfo(uuid, g.power_state, g.spec.vcpus, g.spec.memory_mb, g.cpu_ns + now_ns)

    async def spawn(self, guest: GuestSpec, *, admin_password: str | None = None) -> None:
        await self._step("spawn", lambda: self._absent(guest.uuid))
        self._set(self._add(guest), RUNNING, "booted")

    async def destroy(self, uuid: str, *, destroy_disks: bool = True) -> None:
        if uuid not in self._guests:
            return  # deletes are retried: an unknown guest is already gone
        await self._work("destroy")
        self._remove(uuid)  # a kept resize copy stays: a same-host revert still needs it

    async def reboot(self, uuid: str, *, hard: bool) -> None:
        await self._change("reboot", uuid, None if hard else (RUNNING,), RUNNING, "rebooted")

    async def power_off(self, uuid: str, *, timeout: float = 0.0) -> None:
        await self._change("power_off", uuid, None, SHUTDOWN, "shut down")

    async def power_on(self, uuid: str) -> None:
        await self._change("power_on", uuid, (SHUTDOWN, CRASHED), RUNNING, "booted")

    # -- pause, suspend, rescue, snapshot, rebuild ------------------------------------------
    async def pause(self, uuid: str) -> None:
        await self._change("pause", uuid, (RUNNING,), POWER_PAUSED)

    async def unpause(self, uuid: str) -> None:
        await self._change("unpause", uuid, (POWER_PAUSED,), RUNNING)

    async def suspend(self, uuid: str) -> None:
        await self._change("suspend", uuid, (RUNNING,), POWER_SUSPENDED)

    async def resume(self, uuid: str) -> None:
        await self._change("resume", uuid, (POWER_SUSPENDED,), RUNNING, "resumed")

    async def rescue(self, guest: GuestSpec, *, rescue_image_ref: str | None,
                     admin_password: str | None = None) -> None:
        image = rescue_image_ref or guest.image_ref or "its own image"
        g = await self._change("rescue", guest.uuid, (RUNNING, SHUTDOWN, CRASHED), RUNNING,
                               f"booted from rescue image {image}", rescued=False)
        g.rescued = True

    async def unrescue(self, uuid: str) -> None:
        g = await self._change("unrescue", uuid, None, RUNNING, "booted", rescued=True)
        g.rescued = False

    async def snapshot(self, uuid: str, image_id: str) -> d.SnapshotImage:
        g = await self._step("snapshot", lambda: self._guest(uuid))
        # a small blob that depends only on what is snapshotted, so runs are repeatable
        seed = hashlib.sha256(f"{uuid}:{image_id}".encode()).digest()
        head = f"guest={uuid} image={image_id} root_gb={g.spec.root_gb}\n".encode()
        data = b"QFI\xfb" + b"nimbus fake snapshot\n" + head + seed * 8
        return d.SnapshotImage(
            size=len(data), disk_format="qcow2", container_format="bare",
            checksum=hashlib.md5(data).hexdigest(), os_hash_algo="sha512",
            os_hash_value=hashlib.sha512(data).hexdigest(), data=data)

    async def rebuild(self, guest: GuestSpec, *, admin_password: str | None = None) -> None:
        g = await self._step("rebuild", lambda: self._guest(guest.uuid))
        g.spec, g.rescued, g.cpu_ns, g.running_since = guest, False, 0, None
        g.console.append(f"fake: {guest.name} rebuilt from {guest.image_ref or 'no image'}")
        self._set(g, RUNNING, "booted")

    # -- resize and cold migration ----------------------------------------------------------
    async def migrate_disk_and_power_off(self, uuid: str, dest_host: str,
                                         new: GuestSpec) -> str:
        op = "migrate_disk_and_power_off"
        self._require(op, d.RESIZE)
        if dest_host == self.host:
            self._require(f"{op} to the same host", d.RESIZE_SAME_HOST)

        def check() -> Guest:
            g = self._guest(uuid)
            if uuid in self._kept or new.uuid != uuid:
                why = "a resize is under way" if uuid in self._kept else f"new spec is {new.uuid}"
                self._refuse(op, uuid, why)
            return g

        g = await self._step(op, check)
        self._kept[uuid] = Kept(g.spec, dest_host)
        self._set(g, SHUTDOWN, "shut down")
        return json.dumps({"uuid": uuid, "source_host": self.host, "dest_host": dest_host,
                           "root_gb": g.spec.root_gb, "ephemeral_gb": g.spec.ephemeral_gb,
                           "disk_format": "qcow2"}, sort_keys=True)

    async def finish_migration(self, guest: GuestSpec, *, disk_info: str,
                               power_on: bool) -> None:
        def check() -> Guest | None:
            try:
                info = json.loads(disk_info)
                shipped = info["uuid"] == guest.uuid and info["dest_host"] == self.host
            except (ValueError, TypeError, KeyError):
                shipped = False
            if not shipped:
                self._refuse("finish_migration", guest.uuid, f"disk info {disk_info!r} is "
                             "not for this guest and host")
            kept = self._kept.get(guest.uuid)
            if kept is not None and kept.dest_host == self.host:
                return self._guests.get(guest.uuid)  # a same-host resize: the guest stays
            self._absent(guest.uuid)
            return None

        g = await self._step("finish_migration", check) or self._add(guest)
        g.spec = guest
        self._set(g, RUNNING if power_on else SHUTDOWN, "booted" if power_on else "")

    async def confirm_migration(self, uuid: str) -> None:
        kept = await self._step("confirm_migration", lambda: self._kept_for("confirm", uuid))
        del self._kept[uuid]
        if kept.dest_host != self.host:
            self._remove(uuid)  # the guest runs on its new host now

    async def finish_revert_migration(self, guest: GuestSpec, *, power_on: bool) -> None:
        await self._step("finish_revert_migration", lambda: self._kept_for("revert", guest.uuid))
        del self._kept[guest.uuid]
        g = self._guests.get(guest.uuid)
        if g is None or g.incoming:  # the same-host destination destroyed it: bring it back
            self._remove(guest.uuid)
            g = self._add(guest)
        g.spec, g.rescued = guest, False
        self._set(g, RUNNING if power_on else SHUTDOWN, "booted" if power_on else "")

    # -- live migration ----------------------------------------------------------------------
    async def check_can_live_migrate_destination(
        self, guest: GuestSpec, *, source_host: str, block_migration: bool
    ) -> MigrateData:
        await self._step("check_can_live_migrate_destination", lambda: self._room_for(guest))
        return MigrateData(source_host=source_host, dest_host=self.host,
                           block_migration=block_migration, shared_storage=not block_migration)

    async def check_can_live_migrate_source(self, uuid: str, data: MigrateData) -> MigrateData:
        await self._step("check_can_live_migrate_source",
                         lambda: self._in_state("live-migrate", uuid, (RUNNING, POWER_PAUSED)))
        return data

    async def pre_live_migration(self, guest: GuestSpec, data: MigrateData) -> MigrateData:
        await self._step("pre_live_migration", lambda: self._absent(guest.uuid))
        self._set(self._add(guest), POWER_PAUSED).incoming = True
        return data

    async def live_migration(self, uuid: str, data: MigrateData) -> None:
        def check() -> Guest:
            if data.dest_host == self.host:
                self._refuse("live-migrate", uuid, "the destination is this host")
            return self._in_state("live-migrate", uuid, (RUNNING, POWER_PAUSED))

        await self._step("live_migration", check)
        self._remove(uuid)

    async def post_live_migration(self, uuid: str, data: MigrateData) -> None:
        await self._step("post_live_migration", lambda: None)
        if uuid in self._guests and not self._guests[uuid].incoming:
            self._remove(uuid)  # cleanup: usually live_migration removed it already

    async def post_live_migration_at_destination(self, guest: GuestSpec,
                                                 data: MigrateData) -> None:
        def check() -> Guest:
            g = self._guests.get(guest.uuid)
            if g is None:
                raise NotFound(f"no guest {guest.uuid} on {self.host}")
            return g

        g = await self._step("post_live_migration_at_destination", check)
        if g.incoming:  # a retry after success finds it done
            g.incoming, g.spec = False, guest
            self._set(g, RUNNING, f"arrived from {data.source_host}")

    async def rollback_live_migration_at_destination(self, uuid: str,
                                                     data: MigrateData) -> None:
        def check() -> bool:
            g = self._guests.get(uuid)
            if g is not None and not g.incoming:
                self._refuse("roll back", uuid, "it runs here")
            return g is not None

        # as destroy, a cleanup: nothing to undo when pre_live_migration never got this far
        op = "rollback_live_migration_at_destination"
        self._require(op, NEEDS[op])
        if check() and await self._step(op, check):
            self._remove(uuid)

    # -- consoles -----------------------------------------------------------------------------
    async def get_console_output(self, uuid: str) -> str:
        g = await self._step("get_console_output", lambda: self._guest(uuid))
        return "".join(line + "\n" for line in g.console)

    async def get_console(self, uuid: str, kind: str) -> d.ConsoleInfo:
        if kind not in d.CONSOLE_KINDS:
            raise DriverError(f"unknown console kind {kind!r}; valid kinds: "
                              f"{', '.join(sorted(d.CONSOLE_KINDS))}")
        self._require(f"get_console {kind}", d.CONSOLE_KINDS[kind])
        g = await self._step("get_console", lambda: self._guest(uuid))
        return d.ConsoleInfo(kind, self.config.host_ip or "127.0.0.1",
                             self.config.console_port_base + g.slot, None)

    # -- internals ------------------------------------------------------------------------------
    async def _work(self, op: str) -> None:
        """Spend the operation's time, then fail it if the dice say so."""
        timing = self._timing[op]
        if not timing.always_zero:
            seconds = timing.draw(self.rt.rng)
            if seconds > 0.0:
                await self.rt.sleep(seconds)
        p = self._fail_p[op]
        if p > 0.0 and self.rt.rng.random() < p:
            raise DriverError(f"fake failure injected: {op} on {self.host}")

    async def _step(self, op: str, check: Callable[[], T]) -> T:
        """Refuse at once (capability, ``check``); else work, and check again before any
        change: the guest may have changed while the operation took time."""
        if op in NEEDS:
            self._require(op, NEEDS[op])
        check()
        await self._work(op)
        return check()

    async def _change(self, op: str, uuid: str, allowed: Collection[int] | None, to: int,
                      said: str = "", *, rescued: bool | None = None) -> Guest:
        """Move a guest from one of ``allowed`` power states (None: any) to ``to``;
        ``rescued``, unless None, is what the guest's rescue flag must be."""
        def check() -> Guest:
            g = self._in_state(op, uuid, allowed)
            if rescued is not None and g.rescued != rescued:
                self._refuse(op, uuid, "it is rescued" if g.rescued else "it is not rescued")
            return g

        return self._set(await self._step(op, check), to, said)

    def _require(self, op: str, capability: str) -> None:
        if capability not in self.capabilities:
            raise DriverNotSupported(f"{op} is not supported by the fake driver on {self.host} "
                                     f"(capability {capability!r} is off)")

    def _refuse(self, op: str, uuid: str, why: str) -> NoReturn:
        raise DriverError(f"cannot {op} guest {uuid} on {self.host}: {why}")

    def _guest(self, uuid: str) -> Guest:
        g = self._guests.get(uuid)
        if g is None or g.incoming:  # an incoming guest is not this host's yet
            raise NotFound(f"no guest {uuid} on {self.host}")
        return g

    def _in_state(self, op: str, uuid: str, allowed: Collection[int] | None) -> Guest:
        g = self._guest(uuid)
        if allowed is not None and g.power_state not in allowed:
            wanted = " or ".join(NAMES[s] for s in allowed)
            self._refuse(op, uuid, f"it is {NAMES[g.power_state]}, not {wanted}")
        return g

    def _absent(self, uuid: str) -> None:
        if uuid in self._guests:
            raise DriverError(f"guest {uuid} already exists on {self.host}")

    def _kept_for(self, what: str, uuid: str) -> Kept:
        kept = self._kept.get(uuid)
        if kept is None:
            self._guest(uuid)  # NotFound for a guest this host does not have
            self._refuse(what, uuid, "no resize to " + what)
        return kept

    def _room_for(self, guest: GuestSpec) -> None:
        self._absent(guest.uuid)
        specs = [g.spec for g in self._guests.values()]  # incoming guests take room too
        short = [f"{what}: needs {need}, {free} free" for what, need, free in (
            ("vcpus", guest.vcpus, self.config.vcpus - sum(s.vcpus for s in specs)),
            ("memory_mb", guest.memory_mb, self.config.memory_mb - sum(s.memory_mb for s in specs)),
        ) if need > free]
        if short:
            raise DriverError(f"no room for guest {guest.uuid} on {self.host}: {'; '.join(short)}")

    def _set(self, g: Guest, state: int, said: str = "") -> Guest:
        """Set the power state, banking the cpu time of the run that ends; log ``said``."""
        now = self.rt.now()
        if g.running_since is not None:
            g.cpu_ns += int((now - g.running_since) * 1e9)
        g.running_since = now if state == RUNNING else None
        g.power_state = state
        if said:
            g.console.append(f"fake: {g.spec.name} {said}")
        return g

    def _add(self, spec: GuestSpec) -> Guest:
        """A new guest record, powered off until its caller sets its state."""
        slot = heapq.heappop(self._free_slots) if self._free_slots else len(self._guests)
        self._guests[spec.uuid] = g = Guest(spec, slot, SHUTDOWN)
        return g

    def _remove(self, uuid: str) -> None:
        g = self._guests.pop(uuid, None)
        if g is not None:
            heapq.heappush(self._free_slots, g.slot)
