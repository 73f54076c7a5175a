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

When one fails the shortlist is built again (a few passes over the hosts,
:mod:`shortlist_build`), and if that does not help, the scheduler weighs every
host. The shortlist only decides how much work a decision takes, never what it
answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, FloatArray, IntArray
from nimbus.core.scheduler.shortlist_build import choose
from nimbus.core.scheduler.shortlist_terms import (
    ROOM_ROWS,
    TOLERANCE,
    DenseSet,
    SparseTerm,
    Term,
    dense_sum,
    dense_terms,
    exact_sparse,
    lower,
    lowers,
    places,
    sinks,
)

_REBUILD_AFTER = 4  # decisions a shortlist is asked before a failure may rebuild it
#: a sparse term as a ranking sees it: (position, term, lowers(term), the rows it could
#: raise to the lead, whether its weighed hosts sink below all others)
_Sparse = tuple[int, SparseTerm | None, tuple[float, float] | None, IntArray | None, bool]


def _first(step: _Sparse) -> int:
    return step[0]


class Shortlist:
    """Candidates and certificates for one static mask (see the module docstring).

    ``columns`` are the grid rows of every dense weigher the scheduler has, ``low``
    those whose minimum a weigher needs (no ``minval``); ``size`` is about how many
    candidates to keep.
    """

    __slots__ = ("A0", "X", "_aligned", "_joined", "_linear", "_lows", "_place", "_ran_out",
                 "_tiers", "beta0", "builds", "columns", "complete", "low", "mask", "member",
                 "misses", "position", "rows", "size", "theta", "top", "uses", "wmax", "wmin")

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
        # (dense set, _Sparse) of the last sparse terms seen: the scheduler hands out the
        # same terms while the weighers hand out the same arrays
        self._lows: list[tuple[DenseSet, _Sparse]] = []
        self._tiers: list[tuple[IntArray, float]] = []  # (hosts, theta once they join)
        self._ran_out = False  # the last miss was the order's: too few candidates above U
        # (sparse rows, candidates, positions of the rows' candidates, which rows they are)
        self._place: list[tuple[IntArray, IntArray, IntArray, BoolArray | None]] = []
        # (columns, A0, wmax, wmin, max(|wmax|, |wmin|)) in the order of the columns at the
        # last build
        self._linear: tuple[list[int], list[float], list[float], list[float], list[float]] = (
            [], [], [], [], [])
        # (dense set, wmax and wmin of its terms' columns), for the dense set last seen
        self._aligned: tuple[DenseSet, list[float], list[float]] | None = None

    # -- building -------------------------------------------------------------------
    def build(self, states: HostStates, terms: Sequence[Term | None]) -> None:
        """Choose the candidates and measure the others (a few passes over the hosts; see
        :func:`shortlist_build.choose`)."""
        built = choose(states.grid, self.mask, self.size, self.columns, self.low, terms)
        self.position = states.touch_count
        self.uses = 0
        self.builds += 1
        self._joined = []
        self.A0, self.beta0, self.theta = built.A0, built.beta0, built.theta
        self.wmax, self.wmin, self._tiers = built.wmax, built.wmin, built.tiers
        self.complete = built.complete
        self.member = built.member
        self.rows = np.flatnonzero(built.member)
        self.X = None
        cols = list(self.A0)
        highs = [self.wmax.get(c, 0.0) for c in cols]
        lows = [self.wmin.get(c, 0.0) for c in cols]
        self._linear = (cols, [self.A0[c] for c in cols], highs, lows,
                        [max(abs(h), abs(w)) for h, w in zip(highs, lows, strict=True)])
        self._aligned = None

    def _follow(self, states: HostStates) -> bool:
        """Make the hosts touched since the last look candidates, and refresh their values;
        False when the shortlist must be built again (too many joined, or the record of
        changes was dropped)."""
        start = self.position - states.touched_base
        if start < 0:
            return False
        touched = states.touched
        if start == len(touched):
            return True
        self.position = states.touched_base + len(touched)
        mask, member = self.mask, self.member
        assert member is not None
        new = set(touched[start:])
        if len(new) == 1:  # most often: the host the last decision claimed, a candidate
            row = new.pop()
            if not mask[row]:
                return True
            moved = [row]
            joining = [] if member[row] else moved
        else:
            moved = [r for r in new if mask[r]]
            joining = [r for r in moved if not member[r]]
        if joining:
            self._add(np.array(joining, dtype=np.int64))
            return self.complete or len(self.rows) <= 3 * self.size
        X = self.X
        if X is None or not moved:
            return True
        grid = states.grid_head(self.top)
        if len(moved) == 1:  # basic indexing: far cheaper than fancy here
            row = moved[0]
            X[:, int(self.rows.searchsorted(row))] = grid[:, row]
        elif 8 * len(moved) < len(self.rows):
            X[:, self.rows.searchsorted(moved)] = grid[:, moved]
        else:
            self.X = None  # one gather costs less than patching many columns
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
        merged = np.concatenate((self.rows, rows))  # new to the list, so no repeats
        merged.sort()
        self.rows = merged
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
        sparse = [self._sparse(i, t, dense) for i in dense.rest
                  if isinstance(t := terms[i], SparseTerm)]
        for attempt in (0, 1):
            if self.member is None or not self._follow(states):
                self.build(states, terms)
            elif attempt:
                if self.uses <= _REBUILD_AFTER:
                    return None
                self.build(states, terms)
            for _i, _t, _low, raising, _sinks in sparse:
                if raising is not None and not self._join(raising):
                    return None
            self.uses += 1
            got = self._rank(states, asks, masks, terms, sparse, dense, need)
            while got is None and self._ran_out and self._promote():
                got = self._rank(states, asks, masks, terms, sparse, dense, need)
            if got is not None or self.uses == 1:
                return got
        return None

    def _sparse(self, i: int, t: SparseTerm, dense: DenseSet) -> _Sparse:
        """(position, term, :func:`lowers` of it, the weighed rows the term could raise to
        the lead or None, whether its weighed hosts sink (:func:`sinks`)), worked out once
        for the same term in the same plan."""
        for seen, found in self._lows:
            if found[1] is t and found[0] == i and seen is dense:
                return found
        low = lowers(t)
        raising = None
        if low is None and t.mult:
            raising = t.rows[t.values * t.mult > 0]  # they could lead: candidates
            if not len(raising):
                raising = None
        found = (i, t, low, raising, low is not None and sinks(t, low, dense.spans[i]))
        self._lows = [(dense, found), *self._lows[:3]]
        return found

    def _rank(self, states: HostStates, asks: FloatArray, masks: Sequence[BoolArray],
              terms: Sequence[Term | None], sparse: list[_Sparse], dense: DenseSet,
              need: int) -> tuple[list[tuple[int, float]], bool] | None:
        cand = self.rows
        X = self.X
        if X is None:
            X = self.X = states.grid_head(self.top).take(cand, axis=1)
        fit = X[:ROOM_ROWS] >= asks  # ResourceFit
        passing = fit[0] & fit[1]
        passing &= fit[2]
        for m in masks:
            passing &= m[cand]
        count = int(np.count_nonzero(passing))
        if count < 2:
            self._miss("fewer than 2 pass")  # Nova weighs nothing then
            return None
        aligned = self._aligned
        if aligned is None or aligned[0] is not dense:
            aligned = self._aligned = (dense, [self.wmax.get(r, -math.inf) for r in dense.rows],
                                       [self.wmin.get(r, math.inf) for r in dense.rows])
        found = dense_terms(X, passing, dense, aligned[1], aligned[2])
        if found is None:
            self._miss("normalization")
            return None
        block, coef, los, mult_sum = found
        if dense.first:  # the dense terms lead: add them up at once, then the others
            score = dense_sum(block) if dense.count else np.zeros(len(cand))
            steps = sparse
        else:  # interleaved: one by one, in the weighers' order
            score = np.zeros(len(cand))
            steps = sorted([*sparse, *((i, None, None, None, False)
                                       for i, k in enumerate(dense.at) if k >= 0)], key=_first)
        c0_sum = 0.0
        bounded: list[IntArray] = []  # candidates whose score is an upper bound only
        sunk = False  # candidates that fell below every host without a weight
        for i, t, low, _raising, sink in steps:
            if t is None:  # a dense term, interleaved: 0 + x is x, as the full pass starts
                k = dense.at[i]
                if coef[k]:  # lo == hi: _add_dense adds nothing
                    score += block[k]
                continue
            where, inside = self._places(t.rows, cand)
            if low is not None:
                if not len(where):
                    continue
                if sink:
                    score[where] = -np.inf
                    sunk = True
                else:
                    lower(t, low, where, inside, score)
                    bounded.append(where)
                continue
            c0 = exact_sparse(states, t, asks, self.mask, masks, where, inside, passing, count,
                              self.complete, score)
            if c0 is None:
                self._miss("sparse zeros")
                return None
            c0_sum += c0
        bound = self._bound(dense.rows, coef, los, c0_sum, mult_sum)
        score[~passing] = -np.inf
        complete = self.complete and not sunk  # those come last: the list would end early
        for where in bounded:  # out of the order, but no host of the order may score less
            top = float(np.maximum.reduce(score[where]))
            if top > -math.inf:
                bound = max(bound, top)
                score[where] = -np.inf
                complete = False
        items: list[tuple[int, float]] = []
        while len(items) < need:
            j = int(score.argmax())
            value = score.item(j)
            if not value > bound:  # -inf (no passing candidate left) included
                break
            items.append((cand.item(j), value))
            score[j] = -np.inf
        self._ran_out = len(items) < need and not complete
        if self._ran_out:
            self._miss("order")
            return None
        return items, complete

    def _places(self, rows: IntArray, cand: IntArray) -> tuple[IntArray, BoolArray | None]:
        for found in self._place:
            if found[0] is rows and found[1] is cand:
                return found[2], found[3]
        found = places(rows, cand)
        self._place = [found, *self._place[:2]]
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
        cols, A0, wmax, wmin, mags = self._linear
        alos = [a * lo for a, lo in zip(coef, los, strict=True)] if any(los) else None
        if rows != cols:  # other weighers than at the build: line the coefficients up
            A = dict.fromkeys(self.A0, 0.0)
            alo_of = dict.fromkeys(self.A0, 0.0)
            for row, a, x in zip(rows, coef, alos or [0.0] * len(rows), strict=True):
                A[row] = A.get(row, 0.0) + a
                alo_of[row] = alo_of.get(row, 0.0) + x
            cols = list(A)
            coef = [A[c] for c in cols]
            alos = [alo_of[c] for c in cols]
            A0 = [self.A0.get(c, 0.0) for c in cols]
            wmax = [self.wmax[c] for c in cols]
            wmin = [self.wmin[c] for c in cols]
            mags = [max(abs(h), abs(w)) for h, w in zip(wmax, wmin, strict=True)]
        theta, beta0 = self.theta, self.beta0
        bound = theta - beta0 + c0_sum
        size = 1.0 + mult_sum + abs(theta) + abs(beta0) + abs(c0_sum)
        for a, a0, hi, low, mag in zip(coef, A0, wmax, wmin, mags, strict=True):
            d = a - a0  # the drift of a coefficient, at its largest over [wmin, wmax]
            bound += d * hi if d * hi > d * low else d * low
            size += (abs(a) + abs(a0)) * mag
        if alos is not None:  # - sum(A * lo)
            for alo in alos:
                bound -= alo
                size += abs(alo)
        return bound + TOLERANCE * size
