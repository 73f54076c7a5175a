"""Host state as columns: one row per compute host, in numpy arrays.

Filters read whole columns and answer a boolean mask; weighers read columns
and answer a score vector. Rows are kept current from compute updates
(:meth:`HostStates.update_host`, :meth:`HostStates.update_usage`) and from the
scheduler's own claims (:meth:`HostStates.apply_claim`,
:meth:`HostStates.add_instance`). A removed host's row is a hole (``present`` is
False) that the next added host reuses.

Amounts are VCPUs, MiB of RAM and GiB of disk. ``*_used`` are allocations
(what placement counts); reserved amounts are kept apart, as placement does.
The columns, their growth, the derived ``*_room`` and ``free_*`` columns and the
record of touched rows are :mod:`host_columns`'s; ``service_ok`` (present, up
and not disabled) is kept here. Where instances and server group members run is
:mod:`instance_index`'s, and host aggregates :mod:`aggregates`'.

Static attributes (zone, capabilities, supported instances, aggregates,
service status) carry version counters, so a filter's mask computed from them
is reused until they change.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterable, Mapping

import numpy as np

from nimbus.core.errors import NotFound
from nimbus.core.scheduler.aggregates import AggregateTable
from nimbus.core.scheduler.host_columns import (
    BOOL_COLUMNS,
    FLOAT_COLUMNS,
    GRID_ROW,
    INT_COLUMNS,
    BoolArray,
    FloatArray,
    FloatGrid,
    HostColumns,
    IntArray,
    Interned,
)
from nimbus.core.scheduler.host_spec import HostSpec, HostUsage, SupportedInstance
from nimbus.core.scheduler.instance_index import GroupMembers, InstanceIndex

__all__ = ["BOOL_COLUMNS", "FLOAT_COLUMNS", "GRID_ROW", "INT_COLUMNS", "BoolArray", "FloatArray",
           "FloatGrid", "GroupMembers", "HostStates", "IntArray"]


class HostStates(HostColumns):
    """The fleet as columns. See the module docstrings for what each column means."""

    def __init__(self, capacity: int = 64, default_az: str = "nova") -> None:
        super().__init__(capacity)
        self.names: list[str | None] = []
        self.specs: list[HostSpec | None] = []
        self._index: dict[str, int] = {}
        self._by_uuid: dict[str, int] = {}  # compute node (resource provider) uuid -> row
        self._holes: list[int] = []
        self.default_az = default_az
        self.az_names: list[str] = []
        self._az_index: dict[str, int] = {}
        self.profiles = Interned()  # capability dicts
        self.supports = Interned()  # tuples of supported instances
        self.aggregates = AggregateTable(self._cap)
        self.placed = InstanceIndex()
        # Version counters: a cached mask is valid while the ones it watches are unchanged.
        self.hosts_version = 0
        self.service_version = 0
        self.aggregates_version = 0
        self.failed_build_hosts = 0  # hosts with failed_builds > 0
        # their rows and counts, cached until one changes
        self._failed: tuple[IntArray, FloatArray] | None = None

    @property
    def static_version(self) -> int:
        """Moves whenever hosts, service status or aggregates change (not on claims)."""
        return self.hosts_version + self.service_version + self.aggregates_version

    @property
    def instances_version(self) -> int:
        """Moves whenever an instance or a group member is recorded or forgotten."""
        return self.placed.version

    @property
    def instances(self) -> dict[str, tuple[int, str | None]]:
        """Instances by uuid: (host row, server group or None). Read only."""
        return self.placed.instances

    # -- rows ---------------------------------------------------------------
    def __len__(self) -> int:
        """Hosts present (holes excluded)."""
        return len(self._index)

    def index(self, name: str) -> int:
        """The row of host ``name``."""
        try:
            return self._index[name]
        except KeyError:
            raise NotFound(f"no host {name!r}") from None

    def row_of_uuid(self, uuid: str) -> int | None:
        """The row of the host whose compute node (resource provider) has ``uuid``."""
        return self._by_uuid.get(uuid)

    def name(self, row: int) -> str:
        """The name of the host in ``row``."""
        found = self.names[row]
        if found is None:
            raise NotFound(f"no host in row {row}")
        return found

    def add_host(self, spec: HostSpec, usage: HostUsage | None = None, *,
                 up: bool = True, disabled: bool = False) -> int:
        """Add a host (or replace one of the same name); returns its row."""
        row = self._index.get(spec.name)
        if row is None:
            row = heapq.heappop(self._holes) if self._holes else self._append_row()
            self._index[spec.name] = row
            self.names[row] = spec.name
            self.aggregates.host_added(row, spec.name)
            self.aggregates_version += 1
        self._buf["present"][row] = True
        self._buf["up"][row] = up
        self._buf["disabled"][row] = disabled
        self._refresh_service(row)
        self._write_spec(row, spec)
        self.update_usage(row, usage or HostUsage())
        return row

    def update_host(self, row: int, spec: HostSpec) -> None:
        """New capacity or static attributes for a present host (a compute update)."""
        self._check(row)
        if spec.name != self.names[row]:
            raise NotFound(f"row {row} holds {self.names[row]!r}, not {spec.name!r}")
        self._write_spec(row, spec)
        self._refresh(row)

    def update_usage(self, row: int, usage: HostUsage) -> None:
        """New usage figures for a host (a compute update)."""
        self._check(row)
        b = self._buf
        b["vcpus_used"][row] = usage.vcpus_used
        b["ram_used"][row] = usage.memory_mb_used
        b["disk_used"][row] = usage.disk_gb_used
        b["num_instances"][row] = usage.num_instances
        b["io_ops"][row] = max(usage.io_ops, 0)
        self._set_failed_builds(row, usage.failed_builds)
        self._refresh(row)

    def set_service(self, row: int, *, up: bool | None = None,
                    disabled: bool | None = None) -> None:
        """Service status from heartbeats (``up``) or the admin API (``disabled``)."""
        self._check(row)
        if up is not None:
            self._buf["up"][row] = up
        if disabled is not None:
            self._buf["disabled"][row] = disabled
        self._refresh_service(row)

    def set_failed_builds(self, row: int, count: int) -> None:
        """The host's count of recent failed builds."""
        self._check(row)
        self._set_failed_builds(row, count)

    def remove_host(self, row: int) -> None:
        """Remove a host; its row becomes a hole for the next host added."""
        self._check(row)
        name = self.names[row]
        assert name is not None
        del self._index[name]
        self.names[row] = None
        spec = self.specs[row]
        if spec is not None and spec.uuid is not None:
            self._by_uuid.pop(spec.uuid, None)
        self.specs[row] = None
        self._set_failed_builds(row, 0)
        self.placed.host_removed(row)
        for col in FLOAT_COLUMNS:
            self._buf[col][row] = 0.0
        for col in ("vcpu_room", "ram_room", "disk_room"):
            self._buf[col][row] = -np.inf
        self._buf["num_instances"][row] = 0
        self._buf["present"][row] = False
        self.aggregates.member[row, :] = False
        self._refresh_service(row)
        self.hosts_version += 1
        self.aggregates_version += 1
        heapq.heappush(self._holes, row)

    # -- claims ---------------------------------------------------------------
    def apply_claim(self, row: int, vcpus: float, memory_mb: float, disk_gb: float) -> None:
        """Add an allocation to a host's usage (one row, a few scalar writes)."""
        self._refresh(row, vcpus, memory_mb, disk_gb)

    def release_claim(self, row: int, vcpus: float, memory_mb: float, disk_gb: float) -> None:
        """Take an allocation back off a host's usage."""
        self._refresh(row, -vcpus, -memory_mb, -disk_gb)

    def fits(self, row: int, vcpus: float, memory_mb: float, disk_gb: float) -> bool:
        """Placement's test for one allocation on one host (amounts of 0 are not asked)."""
        return bool(self.present[row]) and all(
            amount == 0 or amount <= room[row]
            for amount, room in ((vcpus, self.vcpu_room), (memory_mb, self.ram_room),
                                 (disk_gb, self.disk_room)))

    # -- instances and server groups ------------------------------------------
    def add_instance(self, row: int, uuid: str | None, group: str | None = None,
                     io_ops: int = 1) -> None:
        """An instance lands on a host: counts, its group's count, I/O ops (a build is one)."""
        self.num_instances[row] += 1
        if io_ops:
            self.io_ops[row] += io_ops
            self._touch(row)
        self.placed.record(row, uuid, group, +1)

    def remove_instance(self, uuid: str | None, *, row: int | None = None,
                        group: str | None = None, io_ops: int = 0) -> None:
        """An instance leaves; by uuid, or by ``row`` and ``group`` for one without a uuid."""
        found = self.placed.instances.get(uuid) if uuid is not None else None
        if found is not None:
            row, group = found
        if row is None:
            raise NotFound(f"no instance {uuid!r}")
        self.num_instances[row] = max(self.num_instances[row] - 1, 0)
        if io_ops:
            self.io_ops[row] = max(self.io_ops[row] - io_ops, 0.0)
            self._touch(row)
        self.placed.record(row, uuid, group, -1)

    def set_instances(self, row: int, instances: Iterable[tuple[str, str | None]]) -> None:
        """Replace the list of (uuid, group) on a host, from its compute report."""
        self._check(row)
        self.placed.replace_row(row, instances)

    def group_members(self, group: str) -> GroupMembers | None:
        """Where server group ``group``'s members run (sparse), or None if nowhere."""
        return self.placed.members(group)

    def group_counts(self, group: str) -> IntArray | None:
        """Members of server group ``group`` per host (a new array), or None if no member
        of it was ever recorded."""
        if not self.placed.known(group):
            return None
        members = self.placed.members(group)
        return np.zeros(self.n, dtype=np.int64) if members is None else members.dense(self.n)

    def host_of(self, uuid: str) -> int | None:
        """The row of the host running instance ``uuid``, if known."""
        return self.placed.host_of(uuid)

    def failed_build_rows(self) -> IntArray:
        """Rows of the hosts with failed builds (few, so weighing them is sparse)."""
        return self.failed_builds_sparse()[0]

    def failed_builds_sparse(self) -> tuple[IntArray, FloatArray]:
        """(rows of the hosts with failed builds, their counts): the same two arrays until
        a count changes, which the scheduler relies on to reuse what it derived from them."""
        if self._failed is None:
            rows = np.flatnonzero(self.failed_builds > 0)
            self._failed = (rows, self.failed_builds[rows])
        return self._failed

    # -- aggregates -------------------------------------------------------------
    def set_aggregate(self, name: str, metadata: Mapping[str, str], hosts: Iterable[str]) -> int:
        """Create or replace a host aggregate (metadata and member host names)."""
        col = self.aggregates.set(name, metadata, hosts, self._index)
        self.aggregates_version += 1
        return col

    def delete_aggregate(self, name: str) -> None:
        """Delete a host aggregate."""
        if self.aggregates.column(name) is None:
            raise NotFound(f"no aggregate {name!r}")
        self.aggregates.delete(name)
        self.aggregates_version += 1

    def aggregate_metadata(self, row: int) -> list[dict[str, str]]:
        """The metadata of each aggregate host ``row`` belongs to."""
        return [self.aggregates.metadata[c] for c in self.aggregates.of_host(row)]

    # -- views ------------------------------------------------------------------
    def copy(self) -> HostStates:
        """A snapshot: a deep copy that changes independently of this one."""
        clone = copy.deepcopy(self)
        clone._bind_grid()  # the column views must point into the clone's own grid
        clone._rebind()
        return clone

    def rows(self) -> list[int]:
        """Rows of the present hosts, in order."""
        return sorted(self._index.values())

    def capabilities(self, row: int) -> dict[str, object]:
        """The capability dict of host ``row`` (shared with hosts that report the same)."""
        value = self.profiles.values[int(self.profile[row])]
        assert isinstance(value, dict)
        return value

    def supported_instances(self, row: int) -> tuple[SupportedInstance, ...]:
        """The (arch, hypervisor type, vm mode) triples host ``row`` supports."""
        value = self.supports.values[int(self.support[row])]
        assert isinstance(value, tuple)
        return value

    def az_name(self, row: int) -> str:
        """The availability zone of host ``row``."""
        return self.az_names[int(self.az[row])]

    def az_id(self, name: str) -> int | None:
        """The id of availability zone ``name`` in the ``az`` column, if any host is in it."""
        return self._az_index.get(name)

    # -- internals ----------------------------------------------------------------
    def _check(self, row: int) -> None:
        if not (0 <= row < self.n and self._buf["present"][row]):
            raise NotFound(f"no host in row {row}")

    def _append_row(self) -> int:
        self.names.append(None)
        self.specs.append(None)
        return super()._append_row()

    def _grow(self, cap: int) -> None:
        super()._grow(cap)
        self.aggregates.grow_rows(cap)

    def _write_spec(self, row: int, spec: HostSpec) -> None:
        b = self._buf
        b["vcpus_total"][row] = spec.vcpus
        b["vcpus_reserved"][row] = spec.vcpus_reserved
        b["cpu_ratio"][row] = spec.cpu_allocation_ratio
        b["ram_total"][row] = spec.memory_mb
        b["ram_reserved"][row] = spec.memory_mb_reserved
        b["ram_ratio"][row] = spec.ram_allocation_ratio
        b["disk_total"][row] = spec.disk_gb
        b["disk_reserved"][row] = spec.disk_gb_reserved
        b["disk_ratio"][row] = spec.disk_allocation_ratio
        old = self.specs[row]
        self.specs[row] = spec
        if old is not None and old.uuid is not None and old.uuid != spec.uuid:
            self._by_uuid.pop(old.uuid, None)
        if spec.uuid is not None:
            self._by_uuid[spec.uuid] = row
        if old is not None and (old.availability_zone, old.hypervisor_version,
                                old.capabilities(), old.supported_instances) == (
                spec.availability_zone, spec.hypervisor_version, spec.capabilities(),
                spec.supported_instances):
            return
        az = spec.availability_zone or self.default_az
        if az not in self._az_index:
            self._az_index[az] = len(self.az_names)
            self.az_names.append(az)
        b["az"][row] = self._az_index[az]
        b["hv_version"][row] = spec.hypervisor_version
        b["profile"][row] = self.profiles.id_of(spec.capabilities())
        b["support"][row] = self.supports.id_of(tuple(tuple(t) for t in spec.supported_instances))
        self.hosts_version += 1

    def _refresh_service(self, row: int) -> None:
        b = self._buf
        b["service_ok"][row] = b["present"][row] and b["up"][row] and not b["disabled"][row]
        self.service_version += 1

    def _set_failed_builds(self, row: int, count: int) -> None:
        before = self._buf["failed_builds"][row] > 0
        self._buf["failed_builds"][row] = max(count, 0)
        if before or count > 0:
            self._failed = None
        self.failed_build_hosts += int(count > 0) - int(before)
