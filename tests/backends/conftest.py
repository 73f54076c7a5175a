"""Fixtures for the driver contract suite: every driver, on every runtime.

``driver_factory`` is parametrized over :data:`DRIVERS` (one entry per driver
implementation) and over both runtimes, so each contract test runs once per
(driver, runtime) pair. A driver this machine cannot run (no libvirtd, no Xen
host, no vCenter) is skipped with the reason its entry's ``unavailable`` gives.
To add one::

    DriverImpl("libvirt", build=libvirt_factory, limit=None,
               unavailable=lambda: None if shutil.which("virsh") else "no libvirt here",
               two_hosts=False, guard_seconds=120.0)

A driver that cannot be told to drop a capability (``limit=None``) is checked
for ``DriverNotSupported`` only on the capabilities it lacks by nature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from nimbus.backends.fake import FakeDriver
from nimbus.core.compute import driver as d
from nimbus.core.compute.driver import (
    CONSOLE_KINDS,
    DriverContext,
    GuestSpec,
    HypervisorDriver,
    MigrateData,
)
from nimbus.core.compute.states import (
    POWER_PAUSED,
    POWER_STATE_NAMES,
    POWER_SUSPENDED,
    RUNNING,
    SHUTDOWN,
)
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import SimRuntime

RUNTIME_KINDS = ("sim", "asyncio")

Body = Callable[[Any], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class DriverImpl:
    """One driver implementation as the contract suite builds it."""

    name: str
    build: Callable[[DriverContext], HypervisorDriver]
    #: config that keeps only the given capabilities, or None if the driver has no such knob
    limit: Callable[[frozenset[str]], Mapping[str, Any]] | None
    #: why this machine cannot run the driver, or None when it can
    unavailable: Callable[[], str | None] = lambda: None
    #: config every driver of this kind is built with
    config: Mapping[str, Any] = field(default_factory=dict)
    #: whether two instances can stand for two hosts (resize and live migration tests)
    two_hosts: bool = True
    #: real seconds an asyncio test body may take before it is failed instead of hanging
    guard_seconds: float = 5.0


DRIVERS = [
    DriverImpl("fake", build=FakeDriver, limit=lambda caps: {"capabilities": sorted(caps)}),
]


class MakeDriver:
    """The ``driver_factory`` fixture: builds drivers of one implementation and runs
    test bodies on one kind of runtime."""

    def __init__(self, impl: DriverImpl, runtime_kind: str) -> None:
        self.impl = impl
        self.runtime_kind = runtime_kind

    def __call__(self, rt: Any, host: str = "host-a", *,
                 capabilities: Collection[str] | None = None,
                 **config: Any) -> HypervisorDriver:
        """A driver for ``host``, limited to ``capabilities`` if given (the caller checks
        :attr:`can_limit` first), with ``config`` on top of the implementation's."""
        merged = {**self.impl.config, **config}
        if capabilities is not None:
            assert self.impl.limit is not None, f"{self.impl.name} cannot limit capabilities"
            merged.update(self.impl.limit(frozenset(capabilities)))
        return self.impl.build(DriverContext(runtime=rt, host=host, config=merged))

    @property
    def can_limit(self) -> bool:
        """Whether drivers of this kind can be built without a chosen capability."""
        return self.impl.limit is not None

    def run(self, body: Body, seed: int = 0) -> Any:
        """Run ``body(rt)`` as the main task of a fresh runtime; return what it returns."""
        if self.runtime_kind == "sim":
            sim = SimRuntime(seed)
            return sim.run(body(sim))
        real = AsyncioRuntime(seed=seed)

        async def guarded() -> Any:
            async with asyncio.timeout(self.impl.guard_seconds):
                return await body(real)

        return asyncio.run(guarded())


@pytest.fixture(params=RUNTIME_KINDS)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    """The kind of runtime the test runs on, one test per kind."""
    return str(request.param)


@pytest.fixture(params=DRIVERS, ids=[impl.name for impl in DRIVERS])
def driver_factory(request: pytest.FixtureRequest, runtime_kind: str) -> MakeDriver:
    """Builds drivers of one implementation (skipped where this machine lacks it)."""
    impl: DriverImpl = request.param
    reason = impl.unavailable()
    if reason is not None:
        pytest.skip(f"{impl.name} driver: {reason}")
    return MakeDriver(impl, runtime_kind)


@pytest.fixture
def two_hosts(driver_factory: MakeDriver) -> MakeDriver:
    """``driver_factory``, for tests that need a source and a destination host."""
    if not driver_factory.impl.two_hosts:
        pytest.skip(f"{driver_factory.impl.name} driver: one host only on this machine")
    return driver_factory


# -- guests --------------------------------------------------------------------------------


def guest_spec(rt: Any, name: str = "vm", **changes: Any) -> GuestSpec:
    """A small guest with a fresh uuid from the runtime."""
    spec = GuestSpec(uuid=rt.new_id(), name=name, vcpus=1, memory_mb=512, root_gb=1,
                     flavor_name="m1.tiny", image_ref="cirros-0.6")
    return replace(spec, **changes)


async def power_of(drv: HypervisorDriver, uuid: str) -> int:
    """The guest's power state as the driver reports it."""
    return (await drv.guest_info(uuid)).power_state


async def bring_to(drv: HypervisorDriver, uuid: str, state: int) -> None:
    """Drive a RUNNING guest to ``state`` (RUNNING, SHUTDOWN, PAUSED or SUSPENDED)."""
    moves = {RUNNING: None, SHUTDOWN: drv.power_off, POWER_PAUSED: drv.pause,
             POWER_SUSPENDED: drv.suspend}
    move = moves[state]
    if move is not None:
        await move(uuid)
    assert await power_of(drv, uuid) == state


def needs(drv: HypervisorDriver, *capabilities: str | None) -> None:
    """Skip the test unless ``drv`` has every capability given (None: no need)."""
    missing = sorted(c for c in capabilities if c is not None and c not in drv.capabilities)
    if missing:
        pytest.skip(f"the driver lacks {', '.join(missing)}")


def case_ids(cases: list[tuple[Any, ...]]) -> list[str]:
    """Test ids for cases of power states and operation names: "RUNNING-pause"."""
    return ["-".join(POWER_STATE_NAMES.get(p, str(p)) if isinstance(p, int) else p for p in c)
            for c in cases]


# -- the operations, as data --------------------------------------------------------------

Call = Callable[[Any, GuestSpec], Awaitable[object]]

OUT = MigrateData(source_host="host-a", dest_host="host-b")  # the guest leaves host-a
IN = MigrateData(source_host="host-b", dest_host="host-a")  # a guest comes to host-a
OTHER_UUID = "00000000-0000-4000-8000-0000000000ff"  # a guest host-a does not hold


def _other(g: GuestSpec) -> GuestSpec:
    return replace(g, uuid=OTHER_UUID, name="other")


def _console(kind: str) -> Call:
    return lambda drv, g: drv.get_console(g.uuid, kind)


#: Operations on a guest the driver holds, with the capability each needs (None: mandatory).
GUEST_OPS: dict[str, tuple[str | None, Call]] = {
    "guest_info": (None, lambda drv, g: drv.guest_info(g.uuid)),
    "reboot_soft": (None, lambda drv, g: drv.reboot(g.uuid, hard=False)),
    "reboot_hard": (None, lambda drv, g: drv.reboot(g.uuid, hard=True)),
    "power_off": (None, lambda drv, g: drv.power_off(g.uuid)),
    "power_on": (None, lambda drv, g: drv.power_on(g.uuid)),
    "pause": (d.PAUSE, lambda drv, g: drv.pause(g.uuid)),
    "unpause": (d.PAUSE, lambda drv, g: drv.unpause(g.uuid)),
    "suspend": (d.SUSPEND, lambda drv, g: drv.suspend(g.uuid)),
    "resume": (d.SUSPEND, lambda drv, g: drv.resume(g.uuid)),
    "rescue": (d.RESCUE, lambda drv, g: drv.rescue(g, rescue_image_ref=None)),
    "unrescue": (d.RESCUE, lambda drv, g: drv.unrescue(g.uuid)),
    "snapshot": (d.SNAPSHOT, lambda drv, g: drv.snapshot(g.uuid, "image-1")),
    "migrate_disk_and_power_off": (
        d.RESIZE, lambda drv, g: drv.migrate_disk_and_power_off(g.uuid, "host-b", g)),
    "confirm_migration": (d.RESIZE, lambda drv, g: drv.confirm_migration(g.uuid)),
    "finish_revert_migration": (
        d.RESIZE, lambda drv, g: drv.finish_revert_migration(g, power_on=True)),
    "check_can_live_migrate_source": (
        d.LIVE_MIGRATION, lambda drv, g: drv.check_can_live_migrate_source(g.uuid, OUT)),
    "live_migration": (d.LIVE_MIGRATION, lambda drv, g: drv.live_migration(g.uuid, OUT)),
    "rebuild": (d.REBUILD, lambda drv, g: drv.rebuild(g)),
    "get_console_output": (d.CONSOLE_OUTPUT, lambda drv, g: drv.get_console_output(g.uuid)),
    **{f"get_console_{kind}": (cap, _console(kind)) for kind, cap in CONSOLE_KINDS.items()},
}

#: Every optional operation (host-a holds guest ``g``), with the capability it needs.
OPTIONAL_OPS: dict[str, tuple[str, Call]] = {
    **{name: (cap, call) for name, (cap, call) in GUEST_OPS.items() if cap is not None},
    "migrate_disk_and_power_off_same_host": (
        d.RESIZE_SAME_HOST, lambda drv, g: drv.migrate_disk_and_power_off(g.uuid, "host-a", g)),
    "finish_migration": (
        d.RESIZE, lambda drv, g: drv.finish_migration(_other(g), disk_info="{}", power_on=True)),
    "check_can_live_migrate_destination": (
        d.LIVE_MIGRATION, lambda drv, g: drv.check_can_live_migrate_destination(
            _other(g), source_host="host-b", block_migration=False)),
    "pre_live_migration": (d.LIVE_MIGRATION, lambda drv, g: drv.pre_live_migration(_other(g), IN)),
    "post_live_migration": (d.LIVE_MIGRATION, lambda drv, g: drv.post_live_migration(g.uuid, OUT)),
    "post_live_migration_at_destination": (
        d.LIVE_MIGRATION, lambda drv, g: drv.post_live_migration_at_destination(_other(g), IN)),
    "rollback_live_migration_at_destination": (
        d.LIVE_MIGRATION,
        lambda drv, g: drv.rollback_live_migration_at_destination(OTHER_UUID, IN)),
}

#: (from power state, operation, resulting power state)
TRANSITIONS = [
    (RUNNING, "power_off", SHUTDOWN),
    (SHUTDOWN, "power_on", RUNNING),
    (RUNNING, "reboot_soft", RUNNING),
    (RUNNING, "reboot_hard", RUNNING),
    (SHUTDOWN, "reboot_hard", RUNNING),
    (POWER_PAUSED, "reboot_hard", RUNNING),
    (POWER_SUSPENDED, "reboot_hard", RUNNING),
    (RUNNING, "pause", POWER_PAUSED),
    (POWER_PAUSED, "unpause", RUNNING),
    (RUNNING, "suspend", POWER_SUSPENDED),
    (POWER_SUSPENDED, "resume", RUNNING),
    (RUNNING, "rescue", RUNNING),
    (SHUTDOWN, "rescue", RUNNING),
]

#: (power state, operation it refuses)
REFUSALS = [
    (RUNNING, "power_on"), (SHUTDOWN, "reboot_soft"), (SHUTDOWN, "pause"),
    (RUNNING, "unpause"), (SHUTDOWN, "suspend"), (RUNNING, "resume"),
    (POWER_SUSPENDED, "unpause"), (POWER_PAUSED, "resume"), (RUNNING, "unrescue"),
]

STATE_NEEDS = {RUNNING: None, SHUTDOWN: None, POWER_PAUSED: d.PAUSE,
               POWER_SUSPENDED: d.SUSPEND}
