"""Where instances run, and where each server group's members run, kept as they change.

Owned by :class:`~nimbus.core.scheduler.host_state.HostStates`, which records
every instance that lands on or leaves a host here. A server group has few
members next to the hosts of a fleet, so its members are kept sparse: ``group ->
{row: members on that host}``, updated one instance at a time. The filters and
weighers read a group through :class:`GroupMembers`, a frozen view of those rows.
Once a group has been read, each change makes a new view from the last one (a
few small copies, no sort); its arrays are new only where they change, and stay
the same objects while the group does not change, which the shortlist relies on
to reuse what it derived from them. Finding a group's hosts never scans the hosts
or the instances.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class GroupMembers:
    """One server group's members per host: ``rows`` (ascending), the members on each
    (``counts``, never 0) and their ``total``. Read-only once built."""

    __slots__ = ("_negated", "_values", "counts", "rows", "total")

    def __init__(self, rows: IntArray, counts: IntArray, total: int) -> None:
        self.rows = rows
        self.counts = counts
        self.total = total
        self._values: FloatArray | None = None
        self._negated: FloatArray | None = None

    @classmethod
    def of(cls, placed: dict[int, int], total: int) -> GroupMembers:
        """The view of ``{row: members}``."""
        rows = sorted(placed)
        return cls(np.array(rows, dtype=np.int64),
                   np.array([placed[r] for r in rows], dtype=np.int64), total)

    def moved(self, row: int, count: int, total: int) -> GroupMembers | None:
        """A new view: this one with ``count`` members on ``row`` (None if none anywhere).
        Its arrays are new only where they change (the rows stay when a count does)."""
        rows, counts = self.rows, self.counts
        at = int(rows.searchsorted(row))
        n = len(rows)
        if at < n and rows[at] == row:
            if count:
                counts = counts.copy()
                counts[at] = count
                return GroupMembers(rows, counts, total)
            if n == 1:
                return None
            return GroupMembers(np.delete(rows, at), np.delete(counts, at), total)
        grown = np.empty((2, n + 1), dtype=np.int64)  # rows and counts, one slot more
        grown[0, :at], grown[1, :at] = rows[:at], counts[:at]
        grown[0, at], grown[1, at] = row, count
        grown[0, at + 1:], grown[1, at + 1:] = rows[at:], counts[at:]
        return GroupMembers(grown[0], grown[1], total)

    def __len__(self) -> int:
        return len(self.rows)

    def values(self) -> FloatArray:
        """The counts as floats (built once)."""
        if self._values is None:
            self._values = self.counts.astype(np.float64)
        return self._values

    def negated(self) -> FloatArray:
        """Minus the counts, as floats (built once)."""
        if self._negated is None:
            self._negated = -self.values()
        return self._negated

    def dense(self, n: int) -> IntArray:
        """The counts over ``n`` host rows (0 on hosts without a member)."""
        out = np.zeros(n, dtype=np.int64)
        out[self.rows] = self.counts
        return out

    def mask(self, n: int, passing: BoolArray) -> BoolArray:
        """A mask over ``n`` host rows: ``passing[i]`` on the group's rows (``passing``
        is over ``rows``), False elsewhere."""
        out = np.zeros(n, dtype=np.bool_)
        out[self.rows[passing]] = True
        return out


class InstanceIndex:
    """Instances by uuid (host row, group), the uuids on each row, and group members."""

    def __init__(self) -> None:
        #: instance uuid -> (host row, server group or None)
        self.instances: dict[str, tuple[int, str | None]] = {}
        self._on_row: dict[int, set[str]] = {}
        # group -> {row: members}; a group once seen stays, even with no members left
        self._members: dict[str, dict[int, int]] = {}
        self._totals: dict[str, int] = {}
        self._views: dict[str, GroupMembers] = {}
        self.version = 0  # moves on every change

    def record(self, row: int, uuid: str | None, group: str | None, delta: int) -> None:
        """Instance ``uuid`` (None: one known by its group only) of ``group`` lands on
        (``delta`` +1) or leaves (-1) host ``row``."""
        if uuid is not None:
            if delta > 0:
                old = self.instances.get(uuid)
                if old is not None and old[0] != row:
                    self._on_row[old[0]].discard(uuid)
                self.instances[uuid] = (row, group)
                on_row = self._on_row.get(row)
                if on_row is None:
                    self._on_row[row] = {uuid}
                else:
                    on_row.add(uuid)
            else:
                found = self.instances.pop(uuid, None)
                if found is not None:
                    self._on_row[found[0]].discard(uuid)
        if group is not None:
            placed = self._members.get(group)
            if placed is None:
                placed = self._members[group] = {}
                self._totals[group] = 0
            count = placed.get(row, 0) + delta
            if count:
                placed[row] = count
            else:
                del placed[row]
            total = self._totals[group] = self._totals[group] + delta
            view = self._views.pop(group, None)
            if view is not None:  # read lately: keep it current, in a few small copies
                view = view.moved(row, count, total)
                if view is not None:
                    self._views[group] = view
        self.version += 1

    def replace_row(self, row: int, instances: Iterable[tuple[str, str | None]]) -> None:
        """The instances with a uuid on host ``row`` are now ``instances`` (uuid, group)."""
        for uuid in list(self._on_row.get(row, ())):
            self.record(row, uuid, self.instances[uuid][1], -1)
        for uuid, group in instances:
            self.record(row, uuid, group, +1)

    def host_removed(self, row: int) -> None:
        """Forget every instance and group member on host ``row``."""
        for uuid in self._on_row.pop(row, ()):
            del self.instances[uuid]
        for group, placed in self._members.items():
            count = placed.pop(row, 0)
            if count:
                self._totals[group] -= count
                self._views.pop(group, None)
        self.version += 1

    def host_of(self, uuid: str) -> int | None:
        """The row of the host running instance ``uuid``, if known."""
        found = self.instances.get(uuid)
        return None if found is None else found[0]

    def known(self, group: str) -> bool:
        """Whether an instance of ``group`` was ever recorded."""
        return group in self._members

    def members(self, group: str) -> GroupMembers | None:
        """Where ``group``'s members run, or None if it has none anywhere."""
        view = self._views.get(group)
        if view is None:
            placed = self._members.get(group)
            if not placed:
                return None
            view = self._views[group] = GroupMembers.of(placed, self._totals[group])
        return view
