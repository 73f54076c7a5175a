"""The order in which the hosts that passed are tried: best weight first, lazily.

Hosts are drawn from a score vector by repeated ``argmax`` (the best, and on a
tie the lowest row), so finding the best few of 100,000 hosts costs a few
passes, never a sort. Rows that failed the filters are either set to -inf up
front or skipped as they come up, which saves a pass when they weigh little
(hosts without room). Then, as Nova does:

* with ``shuffle_best_same_weighed_hosts``, the hosts tied at the best weight
  come in random order. Only the first ``k = min(ties, host_subset_size +
  max_attempts)`` are drawn, ``rng.sample(range(ties), k)`` over the tied rows
  in row order; the other tied hosts follow in row order;
* with ``host_subset_size`` N > 1, one of the first N is drawn with
  ``rng.randrange`` and moved to the front.

The reference loop in the tests orders its sorted list by the same rules, with
the same calls on the same ``rng``. :class:`ListedOrder` is the same order when
the shortlist (:mod:`shortlist`) already found its first hosts.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from nimbus.core.scheduler.plugins import BoolArray, FloatArray


class Order:
    """Rows that passed, best first: ``at(k)`` is the k-th as (row, weight), or None."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[int, float]] = []

    def at(self, k: int) -> tuple[int, float] | None:
        """The k-th host of the order."""
        raise NotImplementedError

    def choose_first(self, rng: random.Random, subset: int) -> None:
        """Move one of the first ``subset`` hosts, drawn at random, to the front."""
        if subset > 1:
            self.at(subset - 1)
            size = min(subset, len(self.items))
            if size > 1:
                self.items.insert(0, self.items.pop(rng.randrange(size)))

    def rows(self, count: int, skip: frozenset[int] | set[int]) -> list[int]:
        """The first ``count`` rows of the order that are not in ``skip``."""
        found = [row for row, _w in self.items if row not in skip]  # those known already
        if len(found) >= count:
            return found[:count]
        k = len(self.items)
        while len(found) < count:
            item = self.at(k)
            if item is None:
                break
            if item[0] not in skip:
                found.append(item[0])
            k += 1
        return found


class ListedOrder(Order):
    """An order whose first hosts are known; past them, if ``complete`` is False,
    ``rest()`` gives the full order (hosts already listed are not repeated)."""

    __slots__ = ("_complete", "_next", "_rest", "_restart", "_seen")

    def __init__(self, items: list[tuple[int, float]], complete: bool,
                 rest: Callable[[], Order | None]) -> None:
        self.items = items
        self._complete = complete
        self._restart = rest
        self._rest: Order | None = None
        self._next = 0
        self._seen: set[int] = set()

    def at(self, k: int) -> tuple[int, float] | None:
        """The k-th host, asking the full order past the listed ones."""
        items = self.items
        while len(items) <= k:
            if self._complete:
                return None
            if self._rest is None:
                self._rest = self._restart()
                self._seen = {row for row, _w in items}
                if self._rest is None:
                    self._complete = True
                    return None
            item = self._rest.at(self._next)
            self._next += 1
            if item is None:
                self._complete = True
                return None
            if item[0] not in self._seen:
                self._seen.add(item[0])
                items.append(item)
        return items[k]


class HostOrder(Order):
    """The order drawn from a score vector (see the module docstring)."""

    __slots__ = ("_fail", "_gave_up", "_mask", "_remaining", "_skips", "_work")

    def __init__(self, work: FloatArray, passing: int, mask: BoolArray | None = None,
                 fail: Callable[[], BoolArray] | None = None,
                 gave_up: Callable[[], None] | None = None) -> None:
        # ``work`` holds the weights of the ``passing`` rows; it is consumed. Without
        # ``mask``, every other row holds -inf. With it, the other rows are skipped as
        # they come up, until a third one does: then ``fail()`` masks them all at once,
        # and ``gave_up()`` is told (the failing rows weigh well for this kind of request).
        super().__init__()
        self._work = work
        self._remaining = passing
        self._mask = mask
        self._fail = fail
        self._gave_up = gave_up
        self._skips = 0

    def at(self, k: int) -> tuple[int, float] | None:
        """The k-th host of the order, drawing more from the scores as needed."""
        items, work = self.items, self._work
        while len(items) <= k:
            if not self._remaining:
                return None
            row = int(work.argmax())
            if self._mask is not None and not self._mask[row]:
                self._skip(row)
                continue
            items.append((row, float(work[row])))
            work[row] = -np.inf
            self._remaining -= 1
        return items[k]

    def _skip(self, row: int) -> None:
        assert self._fail is not None
        self._work[row] = -np.inf
        self._skips += 1
        if self._skips > 2:
            np.copyto(self._work, -np.inf, where=self._fail())
            self._mask = None
            if self._gave_up is not None:
                self._gave_up()

    def shuffle_best(self, rng: random.Random, k: int) -> None:
        """Put ``k`` randomly drawn hosts of those tied at the best weight first
        (every failing row must hold -inf: no ``mask``)."""
        assert self._mask is None, "shuffling needs the failing rows masked up front"
        if self.items or not self._remaining:
            return
        best = float(self._work.max())
        ties = np.flatnonzero(self._work == best)
        picks = rng.sample(range(len(ties)), min(k, len(ties)))
        for j in picks:
            row = int(ties[j])
            self.items.append((row, best))
            self._work[row] = -np.inf
        self._remaining -= len(picks)
