"""Claims: what the scheduler asks of placement, as a small interface, and one in memory.

The scheduler claims the chosen host for each instance. A claim that loses a
race (a resource provider's generation moved, or the room is gone) raises
:class:`~nimbus.core.errors.ConflictError`, and the scheduler tries the next
best host. After a claim returns, the claimed amounts must show in the
:class:`HostStates` usage columns: :class:`InMemoryClaimer` writes them there
itself; a claimer backed by the placement Store writes the allocation and then
the same row.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from nimbus.core.errors import ConflictError, NotFound
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import IntArray
from nimbus.core.scheduler.request import RequestSpec


class Claimer(Protocol):
    """Placement as the scheduler sees it."""

    def candidates(self, request: RequestSpec) -> IntArray | None:
        """Host rows placement offers for the request, or None to rely on ResourceFit."""
        ...

    def claim(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Allocate one instance of ``request`` on host ``row``, or raise ConflictError."""
        ...

    def release(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Give back what :meth:`claim` allocated."""
        ...


class Allocation(NamedTuple):
    """One consumer's amounts on one host (a named tuple: one is made per claim, and a
    tuple is made in a fraction of a frozen dataclass's time)."""

    row: int
    vcpus: int
    memory_mb: int
    disk_gb: int


class InMemoryClaimer:
    """Claims against the HostStates columns themselves: placement's capacity test, no DB.

    A claim is refused (ConflictError) when, for any resource the request asks,
    ``used + asked > (total - reserved) * allocation_ratio`` or ``asked > total``.
    """

    def __init__(self, states: HostStates) -> None:
        self.states = states
        self.allocations: dict[str, Allocation] = {}
        self.claims = 0
        self.refused = 0

    def candidates(self, request: RequestSpec) -> IntArray | None:
        """None: the scheduler's ResourceFit over the same columns is exact here (the
        scheduler knows it, and does not ask unless a subclass answers otherwise)."""
        return None

    def claim(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Check capacity on ``row`` and write the allocation into the usage columns."""
        s = self.states
        if not (0 <= row < s.n and s.present[row]):
            raise NotFound(f"no host in row {row}")
        vcpus, memory_mb, disk_gb = request.vcpus, request.memory_mb, request.disk_gb
        # The *_room columns hold min((total - reserved) * ratio - used, total).
        ram_room, vcpu_room, disk_room = s.grid_head(3)[:, row].tolist()
        if ((vcpus and vcpus > vcpu_room) or (memory_mb and memory_mb > ram_room)
                or (disk_gb and disk_gb > disk_room)):
            self.refused += 1
            asked = next(a for a, room in ((vcpus, vcpu_room), (memory_mb, ram_room),
                                           (disk_gb, disk_room)) if a and a > room)
            raise ConflictError(f"host {s.name(row)} has no room for {asked} more")
        s.apply_claim(row, vcpus, memory_mb, disk_gb)
        if instance_uuid is not None:
            self.allocations[instance_uuid] = Allocation(row, vcpus, memory_mb, disk_gb)
        self.claims += 1

    def release(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Take the allocation back off ``row``."""
        if instance_uuid is not None:
            self.allocations.pop(instance_uuid, None)
        self.states.release_claim(row, request.vcpus, request.memory_mb, request.disk_gb)
