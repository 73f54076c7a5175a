"""The storage under HostStates: one row per host in numpy columns, and a record of changes.

:class:`HostColumns` owns the arrays and nothing of what a host is: they grow by
doubling (so adding 100,000 hosts one by one stays cheap), and each column is an
attribute that views its first ``n`` rows. The float columns are the rows of
one 2-D array, :attr:`HostColumns.grid` (column ``FLOAT_COLUMNS[i]`` is
``grid[i]``), the rooms and the weighers' columns first: the scheduler gathers
a few hosts' values of all of them with one ``np.take``.

:meth:`HostColumns._refresh` adds to a row's usage and recomputes its derived
columns:

* ``*_room``: the most one allocation may take, ``min((total - reserved) *
  ratio - used, total)`` (placement's capacity and ``max_unit``);
* ``free_ram``, ``free_disk``: ``max(total - reserved - used, 0)`` and
  ``free_vcpus``: ``max(total * ratio - used, 0)`` (what Nova's RAM, disk and
  CPU weighers read, clamped at their ``minval`` of 0).

Every change to a host's usage, rooms, free amounts or I/O ops appends its row
to :attr:`HostColumns.touched` (see :meth:`HostColumns.touched_since`), so a
scheduler can tell which hosts moved since it last looked without scanning them
all. Columns must therefore be written through the methods, never directly.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatGrid = npt.NDArray[np.float64]  # 2-D: one row per float column

#: The float columns, in the order of the rows of :attr:`HostColumns.grid`.
FLOAT_COLUMNS = ("ram_room", "vcpu_room", "disk_room", "free_ram", "free_vcpus", "free_disk",
                 "io_ops", "vcpus_total", "vcpus_reserved", "cpu_ratio", "vcpus_used",
                 "ram_total", "ram_reserved", "ram_ratio", "ram_used",
                 "disk_total", "disk_reserved", "disk_ratio", "disk_used", "failed_builds")
#: Row of each float column in :attr:`HostColumns.grid`.
GRID_ROW = {name: i for i, name in enumerate(FLOAT_COLUMNS)}
INT_COLUMNS = ("num_instances", "az", "profile", "support", "hv_version")
BOOL_COLUMNS = ("present", "up", "disabled", "service_ok")
_TOUCH_LIMIT = 1 << 16  # touched rows kept before the older half is dropped
# _refresh writes grid rows by number: check they are where it expects them
assert [GRID_ROW[c] for c in ("ram_room", "vcpu_room", "disk_room", "free_ram", "free_vcpus",
                              "free_disk", "vcpus_used", "ram_used", "disk_used")] == [
    0, 1, 2, 3, 4, 5, 10, 14, 18]


class Interned:
    """Distinct values, each with a small integer id (hosts that share one share the id)."""

    def __init__(self) -> None:
        self.values: list[object] = []
        self._ids: dict[str, int] = {}

    def id_of(self, value: object) -> int:
        """The id of ``value`` (a new one the first time it is seen)."""
        key = json.dumps(value, sort_keys=True, default=str)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.values)
            self.values.append(value)
        return found


class HostColumns:
    """Columns of ``n`` rows (holes included) over a capacity that doubles as rows are added."""

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

    def __init__(self, capacity: int) -> None:
        self.n = 0  # rows in use, holes included
        self._cap = max(capacity, 1)
        self._buf: dict[str, npt.NDArray[np.generic]] = {}
        self._grid: FloatGrid = np.zeros((len(FLOAT_COLUMNS), self._cap), dtype=np.float64)
        self._bind_grid()
        for name in INT_COLUMNS:
            self._buf[name] = np.zeros(self._cap, dtype=np.int64)
        for name in BOOL_COLUMNS:
            self._buf[name] = np.zeros(self._cap, dtype=np.bool_)
        self._rebind()
        #: Rows whose usage columns changed, oldest first; ``touched[i]`` is change
        #: number ``touched_base + i`` (older changes are dropped past a limit).
        self.touched: list[int] = []
        self.touched_base = 0

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

    # -- internals ----------------------------------------------------------------
    def _append_row(self) -> int:
        if self.n == self._cap:
            self._grow(2 * self._cap)
        self.n += 1
        self._rebind()
        return self.n - 1

    def _grow(self, cap: int) -> None:
        grid = np.zeros((len(FLOAT_COLUMNS), cap), dtype=np.float64)
        grid[:, : self._cap] = self._grid
        self._grid = grid
        self._bind_grid()
        for name, old in self._buf.items():
            if name in GRID_ROW:
                continue
            new = np.zeros(cap, dtype=old.dtype)
            new[: self._cap] = old
            self._buf[name] = new
        self._cap = cap

    def _bind_grid(self) -> None:
        for i, name in enumerate(FLOAT_COLUMNS):
            self._buf[name] = self._grid[i]

    def _rebind(self) -> None:
        for name, buf in self._buf.items():
            setattr(self, name, buf[: self.n])

    def _touch(self, row: int) -> None:
        touched = self.touched
        touched.append(row)
        if len(touched) > _TOUCH_LIMIT:
            self._touch_drop()

    def _touch_drop(self) -> None:
        half = len(self.touched) // 2
        del self.touched[:half]
        self.touched_base += half

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
        touched = self.touched
        touched.append(row)
        if len(touched) > _TOUCH_LIMIT:
            self._touch_drop()
