"""The hypervisor driver interface: what compute asks of a hypervisor.

A driver is any object with these methods (:class:`HypervisorDriver` is a
Protocol, not a base class of stubs). It declares what it can do in
``capabilities``; the mandatory operations (host resources, guest listing and
info, spawn, destroy, reboot, power off/on) are not capabilities. An optional
operation a driver cannot do raises ``DriverNotSupported``, and compute checks
``capabilities`` before it starts an action, so the user gets a 409 rather than
an instance left half-done.

Compute hands the driver plain values, never database records: a
:class:`GuestSpec` (what to run), the guest's uuid for operations on a running
guest, and :class:`MigrateData` between the two hosts of a live migration.
The driver speaks of guests; "instance" is the cloud's record of one.

Conventions every driver keeps (the contract suite in ``tests/backends`` checks
them):

* ``destroy`` of a guest the driver does not know is a no-op (deletes are retried);
* an operation on any other unknown guest raises ``NotFound``;
* an operation refused by the guest's state (pausing a stopped guest) raises
  ``DriverError`` and leaves the guest as it was;
* ``guest_info`` reports the power state with the numbers of
  :mod:`nimbus.core.compute.states`;
* a driver waits only through the Runtime it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nimbus.core.runtime import Runtime

Pairs = tuple[tuple[str, str], ...]

# -- capabilities: optional operations a driver may support ---------------------------------
PAUSE = "pause"
SUSPEND = "suspend"
RESCUE = "rescue"
SNAPSHOT = "snapshot"
RESIZE = "resize"  # migrate_disk_and_power_off / finish_migration / confirm / revert
RESIZE_SAME_HOST = "resize_same_host"
LIVE_MIGRATION = "live_migration"
EVACUATE = "evacuate"  # spawn a guest whose disks were on another (down) host
REBUILD = "rebuild"  # its own rebuild; without it compute destroys and spawns
CONSOLE_OUTPUT = "console_output"
VNC_CONSOLE = "vnc_console"
SPICE_CONSOLE = "spice_console"
XVP_CONSOLE = "xvp_console"
SERIAL_CONSOLE = "serial_console"

ALL_CAPABILITIES = frozenset({
    PAUSE, SUSPEND, RESCUE, SNAPSHOT, RESIZE, RESIZE_SAME_HOST, LIVE_MIGRATION, EVACUATE,
    REBUILD, CONSOLE_OUTPUT, VNC_CONSOLE, SPICE_CONSOLE, XVP_CONSOLE, SERIAL_CONSOLE,
})

#: Console kinds and the capability each needs.
CONSOLE_KINDS = {"novnc": VNC_CONSOLE, "xvpvnc": XVP_CONSOLE, "spice-html5": SPICE_CONSOLE,
                 "serial": SERIAL_CONSOLE}


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """What to run: the guest's identity, its flavor's sizes and what it boots from."""

    uuid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    flavor_name: str = ""
    extra_specs: Pairs = ()
    image_ref: str | None = None
    image_properties: Pairs = ()
    user_data: str | None = None
    key_data: str | None = None
    metadata: Pairs = ()
    #: (mac, address) pairs of the guest's network interfaces, when networking gave any
    interfaces: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HostResources:
    """What a hypervisor host offers, as the resource tracker reports it."""

    hostname: str
    hypervisor_type: str
    hypervisor_version: int
    vcpus: int
    memory_mb: int
    local_gb: int
    host_ip: str | None = None
    cpu_info: Mapping[str, Any] = field(default_factory=dict)
    #: (architecture, hypervisor type, vm mode) triples, as Nova's ImagePropertiesFilter reads
    supported_instances: tuple[tuple[str, str, str], ...] = ()
    #: placement traits the host has (CUSTOM_* or standard names)
    traits: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GuestInfo:
    """A running guest as the hypervisor sees it."""

    uuid: str
    power_state: int
    vcpus: int
    memory_mb: int
    cpu_time_ns: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotImage:
    """The image a snapshot produced: its bytes (or where they are) and their digests."""

    size: int
    disk_format: str
    container_format: str
    checksum: str  # md5 hex, as Glance reports it
    os_hash_algo: str = "sha512"
    os_hash_value: str = ""
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class MigrateData:
    """What the two hosts of a live migration tell each other (Nova's LiveMigrateData)."""

    source_host: str
    dest_host: str
    block_migration: bool = False
    shared_storage: bool = True
    details: Pairs = ()


@dataclass(frozen=True, slots=True)
class ConsoleInfo:
    """Where a guest's console listens, for a console proxy to relay to."""

    kind: str
    host: str
    port: int
    internal_access_path: str | None = None


@runtime_checkable
class HypervisorDriver(Protocol):
    """The operations compute needs of a hypervisor (see the module docstring)."""

    #: Optional operations this driver supports (names from this module).
    capabilities: frozenset[str]

    async def init_host(self, host: str) -> None:
        """Prepare the hypervisor when compute starts on ``host``."""
        ...

    async def host_resources(self) -> HostResources:
        """The host's capacity and identity."""
        ...

    async def list_guests(self) -> list[str]:
        """The uuids of the guests the hypervisor holds, running or not."""
        ...

    async def guest_info(self, uuid: str) -> GuestInfo:
        """A guest's power state and size; ``NotFound`` if there is no such guest."""
        ...

    async def spawn(self, guest: GuestSpec, *, admin_password: str | None = None) -> None:
        """Create and start a guest; ``DriverError`` if it cannot (nothing is left behind)."""
        ...

    async def destroy(self, uuid: str, *, destroy_disks: bool = True) -> None:
        """Stop and remove a guest (a no-op for an unknown guest)."""
        ...

    async def reboot(self, uuid: str, *, hard: bool) -> None:
        """Reboot a guest; a hard reboot also starts a stopped or crashed one."""
        ...

    async def power_off(self, uuid: str, *, timeout: float = 0.0) -> None:
        """Stop a guest (``timeout`` seconds of clean shutdown first, if above 0)."""
        ...

    async def power_on(self, uuid: str) -> None:
        """Start a stopped guest."""
        ...

    async def pause(self, uuid: str) -> None:
        """Freeze a running guest in memory (capability ``pause``)."""
        ...

    async def unpause(self, uuid: str) -> None:
        """Thaw a paused guest (capability ``pause``)."""
        ...

    async def suspend(self, uuid: str) -> None:
        """Save a running guest's memory to disk and stop it (capability ``suspend``)."""
        ...

    async def resume(self, uuid: str) -> None:
        """Restore a suspended guest (capability ``suspend``)."""
        ...

    async def rescue(self, guest: GuestSpec, *, rescue_image_ref: str | None,
                     admin_password: str | None = None) -> None:
        """Boot a guest from a rescue image with its disk attached (capability ``rescue``)."""
        ...

    async def unrescue(self, uuid: str) -> None:
        """Boot a rescued guest from its own disk again (capability ``rescue``)."""
        ...

    async def snapshot(self, uuid: str, image_id: str) -> SnapshotImage:
        """Copy a guest's root disk into an image (capability ``snapshot``)."""
        ...

    async def migrate_disk_and_power_off(self, uuid: str, dest_host: str,
                                         new: GuestSpec) -> str:
        """Source of a resize or cold migration: stop the guest and ship its disks to
        ``dest_host``; returns disk info for ``finish_migration`` (capability ``resize``)."""
        ...

    async def finish_migration(self, guest: GuestSpec, *, disk_info: str,
                               power_on: bool) -> None:
        """Destination: create the guest with its new flavor from the shipped disks."""
        ...

    async def confirm_migration(self, uuid: str) -> None:
        """Source, on confirm: remove what was kept for a revert."""
        ...

    async def finish_revert_migration(self, guest: GuestSpec, *, power_on: bool) -> None:
        """Source, on revert: bring back the guest with its old flavor."""
        ...

    async def check_can_live_migrate_destination(
        self, guest: GuestSpec, *, source_host: str, block_migration: bool
    ) -> MigrateData:
        """Destination: can it take the guest? ``DriverError`` naming why not."""
        ...

    async def check_can_live_migrate_source(self, uuid: str, data: MigrateData) -> MigrateData:
        """Source: can the guest leave? ``DriverError`` naming why not."""
        ...

    async def pre_live_migration(self, guest: GuestSpec, data: MigrateData) -> MigrateData:
        """Destination: prepare disks and networking to receive the guest."""
        ...

    async def live_migration(self, uuid: str, data: MigrateData) -> None:
        """Source: copy the running guest to ``data.dest_host``; when it returns the guest
        runs there. On ``DriverError`` it still runs here."""
        ...

    async def post_live_migration(self, uuid: str, data: MigrateData) -> None:
        """Source: clean up after the guest left."""
        ...

    async def post_live_migration_at_destination(self, guest: GuestSpec,
                                                 data: MigrateData) -> None:
        """Destination: the guest is now this host's."""
        ...

    async def rollback_live_migration_at_destination(self, uuid: str,
                                                     data: MigrateData) -> None:
        """Destination: undo ``pre_live_migration`` after a failed migration."""
        ...

    async def rebuild(self, guest: GuestSpec, *, admin_password: str | None = None) -> None:
        """Re-create a guest from its (new) image in place (capability ``rebuild``)."""
        ...

    async def get_console_output(self, uuid: str) -> str:
        """The guest's serial console log (capability ``console_output``)."""
        ...

    async def get_console(self, uuid: str, kind: str) -> ConsoleInfo:
        """Where the guest's console of ``kind`` (of ``CONSOLE_KINDS``) listens."""
        ...


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What a driver is built with: the Runtime it waits through, its host, its config."""

    runtime: Runtime
    host: str
    config: Mapping[str, Any] = field(default_factory=dict)


#: Builds a driver; what the driver registry (in ``nimbus/`` and ``sim/``) holds.
DriverFactory = Callable[[DriverContext], HypervisorDriver]
