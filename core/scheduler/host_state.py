"""Host state as columns: one row per compute host, in numpy arrays.

Filters read whole columns and answer a boolean mask; weighers read columns
and answer a score vector. Rows are kept current from compute updates
(:meth:`HostStates.update_host`, :meth:`HostStates.update_usage`) and from the
scheduler's own claims (:meth:`HostStates.apply_claim`,
:meth:`HostStates.add_instance`). Arrays grow by doubling, so adding 100,000
hosts one by one stays cheap; a removed host's row is a hole (``present`` is
False) that the next added host reuses.

Amounts are VCPUs, MiB of RAM and GiB of disk. ``*_used`` are allocations
(what placement counts); reserved amounts are kept apart, as placement does.
Three families of derived columns are refreshed whenever a row changes:

* ``*_room``: the most one allocation may take, ``min((total - reserved) *
  ratio - used, total)`` (placement's capacity and ``max_unit``);
* ``free_ram``, ``free_disk``: ``max(total - reserved - used, 0)`` and
  ``free_vcpus``: ``max(total * ratio - used, 0)`` (what Nova's RAM, disk and
  CPU weighers read, clamped at their ``minval`` of 0);
* ``service_ok``: present, up and not disabled.

Static attributes (zone, capabilities, supported instances, aggregates,
service status) carry version counters, so a filter's mask computed from them
is reused until they change.

The float columns are the rows of one 2-D array, :attr:`HostStates.grid`
(column ``FLOAT_COLUMNS[i]`` is ``grid[i]``), the rooms and the weighers'
columns first: the scheduler gathers a few hosts' values of all of them with
one ``np.take``. Every change to a host's usage, rooms, free amounts or I/O
ops appends its row to :attr:`HostStates.touched` (see
:meth:`HostStates.touched_since`), so a scheduler can tell which hosts moved
since it last looked without scanning them all. Columns must therefore be
written through the methods, never directly.
"""

from __future__ import annotations

import copy
import heapq
import json
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from nimbus.core.errors import NotFound
from nimbus.core.scheduler.aggregates import AggregateTable
from nimbus.core.scheduler.host_spec import HostSpec, HostUsage, SupportedInstance

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatGrid = npt.NDArray[np.float64]  # 2-D: one row per float column

#: The float columns, in the order of the rows of :attr:`HostStates.grid`.
FLOAT_COLUMNS = ("ram_room", "vcpu_room", "disk_room", "free_ram", "free_vcpus", "free_disk",
                 "io_ops", "vcpus_total", "vcpus_reserved", "cpu_ratio", "vcpus_used",
                 "ram_total", "ram_reserved", "ram_ratio", "ram_used",
                 "disk_total", "disk_reserved", "disk_ratio", "disk_used", "failed_builds")
#: Row of each float column in :attr:`HostStates.grid`.
GRID_ROW = {name: i for i, name in enumerate(FLOAT_COLUMNS)}
_FLOAT = FLOAT_COLUMNS
_TOUCH_LIMIT = 1 << 16  # touched rows kept before the older half is dropped
# _refresh writes grid rows by number: check they are where it expects them
assert [GRID_ROW[c] for c in ("ram_room", "vcpu_room", "disk_room", "free_ram", "free_vcpus",
                              "free_disk", "vcpus_used", "ram_used", "disk_used")] == [
    0, 1, 2, 3, 4, 5, 10, 14, 18]
_INT = ("num_instances", "az", "profile", "support", "hv_version")
_BOOL = ("present", "up", "disabled", "service_ok")


class _Interned:
    """Distinct values, each with a small integer id (hosts that share one share the id)."""

    def __init__(self) -> None:
        self.values: list[object] = []
        self._ids: dict[str, int] = {}

    def id_of(self, value: object) -> int:
        key = json.dumps(value, sort_keys=True, default=str)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.values)
            self.values.append(value)
        return found


class HostStates:
    """The fleet as columns. See the module docstring for what each column means."""

    vcpus_total: FloatArray
    vcpus_reserved: FloatArray
    cpu_ratio: FloatArray
    vcpus_used: FloatArray
    ram_total: FloatArray
    ram_reserved: FloatArray
    ram_ratio: FloatArray
    ram_used: FloatArray
    disk_total: FloatArray
    disk_reserved: FloatArray
    disk_ratio: FloatArray
    disk_used: FloatArray
    vcpu_room: FloatArray
    ram_room: FloatArray
    disk_room: FloatArray
    free_vcpus: FloatArray
    free_ram: FloatArray
    free_disk: FloatArray
    io_ops: FloatArray
    failed_builds: FloatArray
    num_instances: IntArray
    az: IntArray
    profile: IntArray
    support: IntArray
    hv_version: IntArray
    present: BoolArray
    up: BoolArray
    disabled: BoolArray
    service_ok: BoolArray

    def __init__(self, capacity: int = 64, default_az: str = "nova") -> None:
        self.n = 0  # rows in use, holes included
        self._cap = max(capacity, 1)
        self._buf: dict[str, npt.NDArray[np.generic]] = {}
        self._grid: FloatGrid = np.zeros((len(_FLOAT), self._cap), dtype=np.float64)
        self._bind_grid()
        for name in _INT:
            self._buf[name] = np.zeros(self._cap, dtype=np.int64)
        for name in _BOOL:
            self._buf[name] = np.zeros(self._cap, dtype=np.bool_)
        self._group_buf: dict[str, IntArray] = {}
        self._rebind()
        self.names: list[str | None] = []
        self.specs: list[HostSpec | None] = []
        self._index: dict[str, int] = {}
        self._by_uuid: dict[str, int] = {}  # compute node (resource provider) uuid -> row
        self._holes: list[int] = []
        self.default_az = default_az
        self.az_names: list[str] = []
        self._az_index: dict[str, int] = {}
        self.profiles = _Interned()  # capability dicts
        self.supports = _Interned()  # tuples of supported instances
        self.aggregates = AggregateTable(self._cap)
        self.instances: dict[str, tuple[int, str | None]] = {}
        # Version counters: a cached mask is valid while the ones it watches are unchanged.
        self.hosts_version = 0
        self.service_version = 0
        self.aggregates_version = 0
        self.instances_version = 0
        self.failed_build_hosts = 0  # hosts with failed_builds > 0
        # their rows and counts, cached until one changes
        self._failed: tuple[IntArray, FloatArray] | None = None
        #: Rows whose usage columns changed, oldest first; ``touched[i]`` is change
        #: number ``touched_base + i`` (older changes are dropped past a limit).
        self.touched: list[int] = []
        self.touched_base = 0

    @property
    def static_version(self) -> int:
        """Moves whenever hosts, service status or aggregates change (not on claims)."""
        return self.hosts_version + self.service_version + self.aggregates_version

    @property
    def grid(self) -> FloatGrid:
        """The float columns as the rows of one array (``n`` columns; see FLOAT_COLUMNS)."""
        return self._grid[:, : self.n]

    def grid_head(self, rows: int) -> FloatGrid:
        """The first ``rows`` float columns over the whole capacity (contiguous, so that
        ``np.take(..., axis=1)`` gathers from it without a copy; columns past ``n`` are 0)."""
        return self._grid[:rows]

    @property
    def touch_count(self) -> int:
        """How many usage changes were ever recorded (the position after the last one)."""
        return self.touched_base + len(self.touched)

    def touched_since(self, position: int) -> list[int] | None:
        """Rows changed since change number ``position`` (repeats possible), or None when
        changes that old were dropped."""
        if position < self.touched_base:
            return None
        return self.touched[position - self.touched_base:]

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
        for key, (host, _group) in list(self.instances.items()):
            if host == row:
                del self.instances[key]
        for counts in self._group_buf.values():
            counts[row] = 0
        for col in _FLOAT:
            self._buf[col][row] = 0.0
        for col in ("vcpu_room", "ram_room", "disk_room"):
            self._buf[col][row] = -np.inf
        self._buf["num_instances"][row] = 0
        self._buf["present"][row] = False
        self.aggregates.member[row, :] = False
        self._refresh_service(row)
        self.hosts_version += 1
        self.aggregates_version += 1
        self.instances_version += 1
        heapq.heappush(self._holes, row)

    # -- claims ---------------------------------------------------------------
    def apply_claim(self, row: int, vcpus: float, memory_mb: float, disk_gb: float) -> None:
        """Add an allocation to a host's usage (one row, a few scalar writes)."""
        self._refresh(row, vcpus, memory_mb, disk_gb)

    def release_claim(self, row: int, vcpus: float, memory_mb: float, disk_gb: float) -> None:
        """Take an allocation back off a host's usage."""
        self.apply_claim(row, -vcpus, -memory_mb, -disk_gb)

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
        self._record(row, uuid, group, +1)

    def remove_instance(self, uuid: str | None, *, row: int | None = None,
                        group: str | None = None, io_ops: int = 0) -> None:
        """An instance leaves; by uuid, or by ``row`` and ``group`` for one without a uuid."""
        if uuid is not None and uuid in self.instances:
            row, group = self.instances[uuid]
        if row is None:
            raise NotFound(f"no instance {uuid!r}")
        self.num_instances[row] = max(self.num_instances[row] - 1, 0)
        if io_ops:
            self.io_ops[row] = max(self.io_ops[row] - io_ops, 0.0)
            self._touch(row)
        self._record(row, uuid, group, -1)

    def set_instances(self, row: int, instances: Iterable[tuple[str, str | None]]) -> None:
        """Replace the list of (uuid, group) on a host, from its compute report."""
        self._check(row)
        for uuid, (host, group) in list(self.instances.items()):
            if host == row:
                self._record(row, uuid, group, -1)
        for uuid, group in instances:
            self._record(row, uuid, group, +1)

    def group_counts(self, group: str) -> IntArray | None:
        """Members of server group ``group`` per host, or None if it has none anywhere."""
        buf = self._group_buf.get(group)
        return None if buf is None else buf[: self.n]

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

    def host_of(self, uuid: str) -> int | None:
        """The row of the host running instance ``uuid``, if known."""
        found = self.instances.get(uuid)
        return None if found is None else found[0]

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
        if self.n == self._cap:
            self._grow(2 * self._cap)
        self.n += 1
        self.names.append(None)
        self.specs.append(None)
        self._rebind()
        return self.n - 1

    def _grow(self, cap: int) -> None:
        grid = np.zeros((len(_FLOAT), cap), dtype=np.float64)
        grid[:, : self._cap] = self._grid
        self._grid = grid
        self._bind_grid()
        for name, old in self._buf.items():
            if name in GRID_ROW:
                continue
            new = np.zeros(cap, dtype=old.dtype)
            new[: self._cap] = old
            self._buf[name] = new
        for group, old_counts in self._group_buf.items():
            counts = np.zeros(cap, dtype=np.int64)
            counts[: self._cap] = old_counts
            self._group_buf[group] = counts
        self.aggregates.grow_rows(cap)
        self._cap = cap

    def _bind_grid(self) -> None:
        for i, name in enumerate(_FLOAT):
            self._buf[name] = self._grid[i]

    def _touch(self, row: int) -> None:
        touched = self.touched
        touched.append(row)
        if len(touched) > _TOUCH_LIMIT:
            half = len(touched) // 2
            del touched[:half]
            self.touched_base += half

    def _rebind(self) -> None:
        for name, buf in self._buf.items():
            setattr(self, name, buf[: self.n])

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

    def _refresh(self, row: int, vcpus: float = 0.0, memory_mb: float = 0.0,
                 disk_gb: float = 0.0) -> None:
        # Add to one row's usage and refresh its derived columns (the module docstring's
        # formulas), in Python floats: one read and one write of the grid's column beat
        # numpy scalar arithmetic.
        col = self._grid[:, row]
        (_rr, _vr, _dr, _fr, _fv, _fd, _io, vt, vres, cpu_ratio, vu, rt, rres, ram_ratio, ru,
         dt, dres, disk_ratio, du, _fb) = col.tolist()
        vu += vcpus
        ru += memory_mb
        du += disk_gb
        # scalar writes into the column view (the grid rows of FLOAT_COLUMNS)
        col[0] = min((rt - rres) * ram_ratio - ru, rt)
        col[1] = min((vt - vres) * cpu_ratio - vu, vt)
        col[2] = min((dt - dres) * disk_ratio - du, dt)
        col[3] = max(rt - rres - ru, 0.0)
        col[4] = max(vt * cpu_ratio - vu, 0.0)
        col[5] = max(dt - dres - du, 0.0)
        col[10] = vu
        col[14] = ru
        col[18] = du
        self._touch(row)

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

    def _record(self, row: int, uuid: str | None, group: str | None, delta: int) -> None:
        if uuid is not None:
            if delta > 0:
                self.instances[uuid] = (row, group)
            else:
                self.instances.pop(uuid, None)
        if group is not None:
            counts = self._group_buf.get(group)
            if counts is None:
                counts = self._group_buf[group] = np.zeros(self._cap, dtype=np.int64)
            counts[row] += delta
        self.instances_version += 1
