"""The shortlist: the few hosts that can be among the best, and a bound on all the others.

Weighing every host costs a pass over each weigher's column per decision, and
at 100,000 hosts those passes are most of a decision. Yet a host that nothing
touched moves only through the normalization (each weigher's ``lo`` and ``hi``
over the passing hosts), and that moves little at a time. So, for one static
mask (the hosts one kind of request may go to), a :class:`Shortlist` keeps

* the *candidates*: the hosts of the mask with the largest (and, for a weigher
  without ``minval``, the smallest) values of each weigher's column, and those
  with the best linear score ``sum(A0[c] * w[c]) + beta0`` when it was built
  (``A0`` the weighers' multipliers over their columns' spans then). Hosts whose
  usage changes later (claims, compute updates) join them;
* for all the other hosts of the mask, unchanged since: ``theta``, the largest
  of their linear scores, and the range ``[wmin[c], wmax[c]]`` of each column;
* tiers of the next best hosts by linear score: when the candidates run out (the
  spread weighers level the best hosts, so every claim pulls one down), the next
  tier joins and ``theta`` drops to the level below it, without a pass.

A decision weighs the candidates only, with the very operations of the full
pass (:mod:`weighing`, via :mod:`shortlist_terms`), so each candidate gets the
same float. Its answer is the full pass's answer when two certificates hold:

1. *normalization*: the ``hi`` of each weigher over the passing candidates is at
   least the others' ``wmax`` (and ``lo`` at most ``wmin``), so it is the ``hi``
   over every passing host; a sparse weigher needs a passing candidate without a
   weight, so that ``0`` is known to be among the passing values;
2. *order*: each host handed out scores above ``U``, a bound on the score of any
   other host: ``theta``, plus the most that the new coefficients ``A`` can move a
   linear score from ``A0`` within the columns' ranges, plus what the sparse
   weighers give a host without a weight (a weight that raises a host above that
   makes it a candidate; one that lowers it keeps it under the bound), plus a
   tolerance far above rounding. A weigher that only lowers the hosts it weighs,
   from a base of 0 (failed builds), takes its weighed candidates out of the order
   with a bound of their own.

When one fails the shortlist is built again (a few passes over the hosts), and
if that does not help, the scheduler weighs every host. The shortlist only
decides how much work a decision takes, never what it answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, FloatArray, IntArray
from nimbus.core.scheduler.shortlist_terms import (
    ROOM_ROWS,
    TOLERANCE,
    DenseSet,
    DenseTerm,
    SparseTerm,
    Term,
    dense_terms,
    exact_sparse,
    lower,
    lowers,
    places,
)

_SAMPLE = 256  # values sampled to set a threshold that keeps about q of them
_REBUILD_AFTER = 4  # decisions a shortlist is asked before a failure may rebuild it
_TIERS = 4  # tiers of hosts ranked by linear score at a build (the first are candidates)


def _top(values: FloatArray, quota: int) -> BoolArray:
    """About the ``quota`` largest finite values (at least the largest one, if any)."""
    finite = values[values > -np.inf]  # a sample of every row could miss a masked stripe
    if len(finite) <= quota:
        chosen: BoolArray = values > -np.inf
        return chosen
    step = max(1, len(finite) // _SAMPLE)
    sample = np.ascontiguousarray(finite[::step])
    k = min(len(sample), max(1, -(-quota // step)))
    threshold = np.partition(sample, len(sample) - k)[len(sample) - k]
    chosen = values >= threshold
    if np.count_nonzero(chosen) > 4 * quota:  # many ties at the threshold: keep the larger
        chosen = values > threshold
        chosen[int(values.argmax())] = True
    return chosen


class Shortlist:
    """Candidates and certificates for one static mask (see the module docstring).

    ``columns`` are the grid rows of every dense weigher the scheduler has, ``low``
    those whose minimum a weigher needs (no ``minval``); ``size`` is about how many
    candidates to keep.
    """

    __slots__ = ("A0", "X", "_joined", "_linear", "_lows", "_place", "_ran_out", "_tiers",
                 "beta0", "builds", "columns", "complete", "low", "mask", "member", "misses",
                 "position", "rows", "size", "theta", "top", "uses", "wmax", "wmin")

    def __init__(self, mask: BoolArray, size: int, columns: tuple[int, ...],
                 low: frozenset[int]) -> None:
        self.mask = mask
        self.size = size
        self.columns = columns
        self.low = low
        self.top = 1 + max([*columns, ROOM_ROWS - 1])  # grid rows the candidates need
        self.X: FloatArray | None = None  # their values, rows 0..top of the grid
        self.member: BoolArray | None = None  # None until built
        self.rows: IntArray = np.empty(0, dtype=np.int64)
        self.complete = False  # every host of the mask is a candidate
        self.position = 0
        self.theta = -math.inf
        self.A0: dict[int, float] = {}
        self.beta0 = 0.0
        self.wmax: dict[int, float] = {}
        self.wmin: dict[int, float] = {}
        self.uses = 0
        self.builds = 0
        #: Why rankings were left to the full passes: reason -> count.
        self.misses: dict[str, int] = {}
        self._joined: list[IntArray] = []  # sparse row arrays already made candidates
        # (rows, values) -> _lowers of them, for weighers that hand out the same arrays
        self._lows: tuple[IntArray, FloatArray, tuple[float, float] | None] | None = None
        self._tiers: list[tuple[IntArray, float]] = []  # (hosts, theta once they join)
        self._ran_out = False  # the last miss was the order's: too few candidates above U
        # (sparse rows, candidates) -> positions of the rows' candidates, which rows they are
        self._place: tuple[IntArray, IntArray, IntArray, BoolArray | None] | None = None
        # (columns, A0, wmax, wmin) in the order of the columns at the last build
        self._linear: tuple[list[int], list[float], list[float], list[float]] = ([], [], [], [])

    # -- building -------------------------------------------------------------------
    def build(self, states: HostStates, terms: Sequence[Term | None]) -> None:
        """Choose the candidates and measure the others (a few passes over the hosts)."""
        grid, mask = states.grid, self.mask
        self.position = states.touch_count
        self.uses = 0
        self.builds += 1
        self._joined = []
        self.A0, self.beta0 = {}, 0.0
        shown = {c: np.where(mask, grid[c], -np.inf) for c in self.columns}
        for t in terms:  # the multipliers over the spans of the whole mask: near enough
            if not isinstance(t, DenseTerm):
                continue
            hi = float(shown[t.row].max())
            lo = t.minval if t.minval is not None else float(
                np.where(mask, grid[t.row], np.inf).min())
            a = t.mult / (hi - lo) if math.isfinite(hi - lo) and hi > lo else 0.0
            self.A0[t.row] = self.A0.get(t.row, 0.0) + a
            self.beta0 -= a * lo
        self.theta, self.wmax, self.wmin = -math.inf, {}, {}
        self._tiers = []
        self.complete = int(np.count_nonzero(mask)) <= self.size
        if self.complete:
            member: BoolArray = mask.copy()
        else:
            linear = np.full(states.n, self.beta0)
            for c, a in self.A0.items():
                if a:
                    linear += grid[c] * a
            linear[~mask] = -np.inf
            quota = max(1, self.size // (4 * max(1, len(self.columns))))
            member = np.zeros(states.n, dtype=np.bool_)
            for c in self.columns:
                member |= _top(shown[c], quota)
                if c in self.low:
                    member |= _top(-np.where(mask, grid[c], np.inf), quota)
            member &= mask
            # the best by linear score, in tiers: the first joins now, the next ones when
            # the candidates run out (see _promote), each lowering theta to its own level
            step = max(1, self.size // 2)
            best = _top(np.where(member, -np.inf, linear), _TIERS * step)
            ranked = np.flatnonzero(best)
            ranked = ranked[np.argsort(-linear[ranked], kind="stable")]
            levels = linear[ranked].tolist()
            rest = float(np.where(best | member, -np.inf, linear).max())
            self._tiers = [(ranked[k:k + step], levels[k + step] if k + step < len(levels)
                            else rest) for k in range(0, len(ranked), step)]
            first, self.theta = self._tiers.pop(0) if self._tiers else (ranked, rest)
            member[first] = True
            others = mask & ~member
            if others.any():
                cols = list(self.columns)
                values = grid[cols]
                tops = np.where(others, values, -np.inf).max(axis=1).tolist()
                lows = np.where(others, values, np.inf).min(axis=1).tolist()
                self.wmax = dict(zip(cols, tops, strict=True))
                self.wmin = dict(zip(cols, lows, strict=True))
            else:
                self.complete = True
                self._tiers = []
        self.member = member
        self.rows = np.flatnonzero(member)
        self.X = None
        cols = list(self.A0)
        self._linear = (cols, [self.A0[c] for c in cols], [self.wmax.get(c, 0.0) for c in cols],
                        [self.wmin.get(c, 0.0) for c in cols])

    def _follow(self, states: HostStates) -> bool:
        """Make the hosts touched since the last look candidates, and refresh their values;
        False when the shortlist must be built again (too many joined, or the record of
        changes was dropped)."""
        touched = states.touched_since(self.position)
        if touched is None:
            return False
        if touched:
            self.position = states.touch_count
            member, mask = self.member, self.mask
            assert member is not None
            moved = [r for r in set(touched) if mask[r]]
            joining = [r for r in moved if not member[r]]
            if joining:
                self._add(np.array(joining, dtype=np.int64))
                return self.complete or len(self.rows) <= 3 * self.size
            if len(moved) > 2:
                self.X = None  # one gather costs less than patching many columns
            elif moved and self.X is not None:
                X, grid = self.X, states.grid_head(self.top)
                for row, at in zip(moved, np.searchsorted(self.rows, moved).tolist(),
                                   strict=True):
                    X[:, at] = grid[:, row]  # basic indexing: far cheaper than fancy here
        return True

    def _join(self, rows: IntArray) -> bool:
        """Make the hosts of a sparse weigher candidates; False when there are too many."""
        if any(rows is j for j in self._joined):
            return True
        if len(rows) > self.size:
            return False
        member = self.member
        assert member is not None
        new = rows[self.mask[rows] & ~member[rows]]
        if len(new):
            self._add(new)
        self._joined = [rows, *self._joined[:3]]  # the last few (most come back every time)
        return True

    def _promote(self) -> bool:
        """The next tier joins the candidates and theta drops to its level; False if none.

        The columns' ranges measured at the build still bound the fewer hosts left out."""
        if not self._tiers:
            return False
        rows, self.theta = self._tiers.pop(0)
        assert self.member is not None
        new = rows[~self.member[rows]]
        if len(new):
            self._add(new)
        return True

    def _add(self, rows: IntArray) -> None:
        assert self.member is not None
        self.member[rows] = True
        rows = np.sort(rows)  # new to the list, so no repeats
        self.rows = np.insert(self.rows, np.searchsorted(self.rows, rows), rows)
        self.X = None

    # -- deciding -------------------------------------------------------------------
    def rank(self, states: HostStates, asks: FloatArray, masks: Sequence[BoolArray],
             terms: Sequence[Term | None], dense: DenseSet,
             need: int) -> tuple[list[tuple[int, float]], bool] | None:
        """The first ``need`` hosts of the full order as (row, weight), and whether they
        are all the passing hosts; None when the certificates do not hold (weigh all).

        ``asks`` is :func:`asks_column`'s; ``terms`` are the weighers' in order (None for
        one that adds nothing), the dense ones laid out in ``dense``.
        """
        lowering = [self._lowers(t) if isinstance(t, SparseTerm) else None for t in terms]
        for attempt in (0, 1):
            if self.member is None or not self._follow(states):
                self.build(states, terms)
            elif attempt:
                if self.uses <= _REBUILD_AFTER:
                    return None
                self.build(states, terms)
            for t, low in zip(terms, lowering, strict=True):
                if isinstance(t, SparseTerm) and low is None and t.mult:
                    raising = t.rows[t.values * t.mult > 0]  # they could lead: candidates
                    if len(raising) and not self._join(raising):
                        return None
            self.uses += 1
            got = self._rank(states, asks, masks, terms, lowering, dense, need)
            while got is None and self._ran_out and self._promote():
                got = self._rank(states, asks, masks, terms, lowering, dense, need)
            if got is not None or self.uses == 1:
                return got
        return None

    def _lowers(self, t: SparseTerm) -> tuple[float, float] | None:
        seen = self._lows
        if seen is not None and seen[0] is t.rows and seen[1] is t.values:
            return seen[2]
        found = lowers(t)
        self._lows = (t.rows, t.values, found)
        return found

    def _rank(self, states: HostStates, asks: FloatArray, masks: Sequence[BoolArray],
              terms: Sequence[Term | None], lowering: list[tuple[float, float] | None],
              dense: DenseSet,
              need: int) -> tuple[list[tuple[int, float]], bool] | None:
        cand = self.rows
        X = self.X
        if X is None:
            X = self.X = np.take(states.grid_head(self.top), cand, axis=1)
        fit = X[:ROOM_ROWS] >= asks  # ResourceFit
        passing = fit[0] & fit[1]
        passing &= fit[2]
        for m in masks:
            passing &= m[cand]
        count = int(np.count_nonzero(passing))
        if count < 2:
            self._miss("fewer than 2 pass")  # Nova weighs nothing then
            return None
        found = dense_terms(X, passing, dense, self.wmax, self.wmin)
        if found is None:
            self._miss("normalization")
            return None
        block, coef, los = found
        score: FloatArray | None = None
        c0_sum = mult_sum = 0.0
        bounded: list[IntArray] = []  # candidates whose score is an upper bound only
        sunk = False  # candidates that fell below every host without a weight
        for t, at, low in zip(terms, dense.at, lowering, strict=True):
            if t is None:
                continue
            if at >= 0:
                if not coef[at]:
                    continue  # lo == hi: _add_dense adds nothing
                mult_sum += abs(t.mult)  # a passing host weighs at most |mult| here
                score = block[at] if score is None else np.add(score, block[at], out=score)
                continue
            assert isinstance(t, SparseTerm)
            if score is None:
                score = np.zeros(len(cand))
            where, inside = self._places(t.rows, cand)
            if low is not None:
                if not len(where):
                    continue
                if lower(t, low, terms, where, inside, score):
                    sunk = True
                else:
                    bounded.append(where)
                continue
            c0 = exact_sparse(states, t, asks, self.mask, masks, where, inside, passing, count,
                              self.complete, score)
            if c0 is None:
                self._miss("sparse zeros")
                return None
            c0_sum += c0
        if score is None:
            score = np.zeros(len(cand))
        bound = self._bound(dense.rows, coef, los, c0_sum, mult_sum)
        score = np.where(passing, score, -np.inf)
        complete = self.complete and not sunk  # those come last: the list would end early
        for where in bounded:  # out of the order, but no host of the order may score less
            top = float(score[where].max())
            if top > -math.inf:
                bound = max(bound, top)
                score[where] = -np.inf
                complete = False
        items: list[tuple[int, float]] = []
        while len(items) < need:
            j = int(score.argmax())
            value = float(score[j])
            if not value > bound:  # -inf (no passing candidate left) included
                break
            items.append((int(cand[j]), value))
            score[j] = -np.inf
        self._ran_out = len(items) < need and not complete
        if self._ran_out:
            self._miss("order")
            return None
        return items, complete

    def _places(self, rows: IntArray, cand: IntArray) -> tuple[IntArray, BoolArray | None]:
        found = self._place
        if found is None or found[0] is not rows or found[1] is not cand:
            found = self._place = places(rows, cand)
        return found[2], found[3]

    def _miss(self, reason: str) -> None:
        if reason != "order":
            self._ran_out = False
        self.misses[reason] = self.misses.get(reason, 0) + 1

    def _bound(self, rows: list[int], coef: list[float], los: list[float], c0_sum: float,
               mult_sum: float) -> float:
        """U: no host off the shortlist scores more (see the module docstring)."""
        if self.complete:
            return -math.inf
        cols, A0, wmax, wmin = self._linear
        alos = [a * lo for a, lo in zip(coef, los, strict=True)]
        if rows != cols:  # other weighers than at the build: line the coefficients up
            A = dict.fromkeys(self.A0, 0.0)
            alo_of = dict.fromkeys(self.A0, 0.0)
            for row, a, x in zip(rows, coef, alos, strict=True):
                A[row] = A.get(row, 0.0) + a
                alo_of[row] = alo_of.get(row, 0.0) + x
            cols = list(A)
            coef = [A[c] for c in cols]
            alos = [alo_of[c] for c in cols]
            A0 = [self.A0.get(c, 0.0) for c in cols]
            wmax = [self.wmax[c] for c in cols]
            wmin = [self.wmin[c] for c in cols]
        theta, beta0 = self.theta, self.beta0
        bound = theta - beta0 + c0_sum
        size = 1.0 + mult_sum + abs(theta) + abs(beta0) + abs(c0_sum)
        for a, alo, a0, hi, low in zip(coef, alos, A0, wmax, wmin, strict=True):
            delta = a - a0
            bound -= alo
            bound += delta * hi if delta * hi > delta * low else delta * low
            size += (abs(a) + abs(a0)) * (abs(hi) if abs(hi) > abs(low) else abs(low)) + abs(alo)
        return bound + TOLERANCE * size
