"""Host aggregates as columns: a boolean membership matrix (hosts x aggregates) and metadata.

Owned by :class:`~nimbus.core.scheduler.host_state.HostStates`, which grows its
rows with the hosts. An aggregate names its hosts; a name not (yet) among the
hosts is remembered and takes effect when that host is added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

BoolMatrix = npt.NDArray[np.bool_]


class AggregateTable:
    """Aggregates by name: metadata dicts and one membership column each."""

    def __init__(self, rows: int) -> None:
        self.member: BoolMatrix = np.zeros((rows, 4), dtype=np.bool_)
        self.names: list[str | None] = []  # None marks a deleted aggregate's free column
        self.metadata: list[dict[str, str]] = []
        self.hosts: list[frozenset[str]] = []
        self._column: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.names)

    def grow_rows(self, rows: int) -> None:
        """Make room for ``rows`` hosts."""
        bigger = np.zeros((rows, self.member.shape[1]), dtype=np.bool_)
        bigger[: self.member.shape[0]] = self.member
        self.member = bigger

    def column(self, name: str) -> int | None:
        """The column of aggregate ``name``, or None."""
        return self._column.get(name)

    def live_columns(self) -> list[int]:
        """Columns of the aggregates that exist."""
        return [a for a, name in enumerate(self.names) if name is not None]

    def set(self, name: str, metadata: Mapping[str, str], hosts: Iterable[str],
            index_of: Mapping[str, int]) -> int:
        """Create or replace aggregate ``name``; returns its column."""
        col = self._column.get(name)
        if col is None:
            col = self._free_column()
            self._column[name] = col
        self.names[col] = name
        self.metadata[col] = {str(k): str(v) for k, v in metadata.items()}
        self.hosts[col] = frozenset(hosts)
        self.member[:, col] = False
        rows = [index_of[h] for h in self.hosts[col] if h in index_of]
        self.member[rows, col] = True
        return col

    def delete(self, name: str) -> None:
        """Forget aggregate ``name`` (its column is reused later)."""
        col = self._column.pop(name)
        self.names[col] = None
        self.metadata[col] = {}
        self.hosts[col] = frozenset()
        self.member[:, col] = False

    def host_added(self, row: int, host: str) -> None:
        """Set the membership row of a new host from the aggregates that name it."""
        self.member[row, :] = False
        for col, hosts in enumerate(self.hosts):
            if host in hosts:
                self.member[row, col] = True

    def of_host(self, row: int) -> list[int]:
        """Columns of the aggregates host ``row`` belongs to."""
        return [int(c) for c in np.flatnonzero(self.member[row, : len(self.names)])]

    def hosts_in_any(self, columns: npt.NDArray[np.bool_] | list[int], rows: int) -> BoolMatrix:
        """A mask over ``rows`` hosts: in at least one of ``columns`` (a bool vector or list)."""
        cols = np.flatnonzero(columns) if isinstance(columns, np.ndarray) else columns
        if len(cols) == 0:
            return np.zeros(rows, dtype=np.bool_)
        return np.asarray(self.member[:rows, cols].any(axis=1), dtype=np.bool_)

    def _free_column(self) -> int:
        for col, name in enumerate(self.names):
            if name is None:
                return col
        col = len(self.names)
        if col == self.member.shape[1]:
            wider = np.zeros((self.member.shape[0], 2 * col), dtype=np.bool_)
            wider[:, :col] = self.member
            self.member = wider
        self.names.append(None)
        self.metadata.append({})
        self.hosts.append(frozenset())
        return col
