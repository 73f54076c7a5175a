"""Weighers as the shortlist (:mod:`shortlist`) sees them, and their terms over its hosts.

A dense weigher reads one HostStates column (:class:`DenseTerm`); a sparse one
gives the few hosts it weighs (:class:`SparseTerm`). Each function here does what
:mod:`weighing` does over every host, operation for operation, over the
shortlist's candidates only, so that every candidate gets the very same float.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, FloatArray, IntArray

TOLERANCE = 1e-9  # relative; rounding in a few dozen float operations is below 1e-14
ROOM_ROWS = 3  # the room columns (RAM, VCPU, disk) are the grid's first rows


class DenseTerm(NamedTuple):
    """A weigher whose raw weights are HostStates column ``grid[row]``."""

    row: int
    minval: float | None
    mult: float


class SparseTerm(NamedTuple):
    """A weigher that gave its non-zero weights only (``rows`` ascending)."""

    rows: IntArray
    values: FloatArray
    minval: float | None
    mult: float


Term = DenseTerm | SparseTerm
ROOM_ROWS = 3  # the room columns (RAM, VCPU, disk) are the grid's first rows


def asks_column(memory_mb: float, vcpus: float, disk_gb: float) -> FloatArray:
    """What a request asks of the room columns, as a (3, 1) column for one comparison
    (-inf where it asks nothing: any room passes, as ResourceFit does)."""
    return np.array([[a if a else -np.inf] for a in (memory_mb, vcpus, disk_gb)])


class DenseSet:
    """The dense terms of one plan, in the weighers' order, laid out for whole-array work."""

    __slots__ = ("at", "count", "index", "k1", "lows", "minvals", "mults", "rows")

    def __init__(self, terms: Sequence[Term | None]) -> None:
        dense = [t for t in terms if isinstance(t, DenseTerm)]
        #: position of each term in the dense block, or -1
        self.at = [-1] * len(terms)
        k = 0
        for i, t in enumerate(terms):
            if isinstance(t, DenseTerm):
                self.at[i] = k
                k += 1
        self.count = len(dense)
        self.rows = [t.row for t in dense]
        first = self.rows[0] if self.rows else 0
        contiguous = self.rows == list(range(first, first + len(self.rows)))
        self.index: slice | IntArray = (slice(first, first + len(self.rows)) if contiguous
                                        else np.array(self.rows, dtype=np.int64))
        self.mults = [t.mult for t in dense]
        self.minvals = [t.minval for t in dense]
        self.lows = [0.0 if m is None else float(m) for m in self.minvals]
        self.k1 = np.zeros((len(dense), 1))  # the terms' scale factors, rewritten per decision


def dense_terms(X: FloatArray, passing: BoolArray, dense: DenseSet, wmax: dict[int, float],
                wmin: dict[int, float]) -> tuple[FloatArray, list[float], list[float]] | None:
    """The dense weighers' terms over the candidates ``X`` (one row each), their linear
    coefficients and ``lo``; None when a host off the list may hold a weigher's extreme
    (``wmax``, ``wmin``: the columns' ranges there)."""
    if not dense.count:
        return np.empty((0, len(passing))), [], []
    block = X[dense.index]
    # hi over the passing candidates: the largest of all, when a passing one holds it
    tops = block.argmax(axis=1).tolist()
    if all(passing[j] for j in tops):
        his = [float(block[i, j]) for i, j in enumerate(tops)]
    else:
        his = np.where(passing, block, -np.inf).max(axis=1).tolist()
    los = (np.where(passing, block, np.inf).min(axis=1).tolist()
           if None in dense.minvals else dense.lows)
    # _add_dense's operations: x * (sign * inv), after x - lo when lo, then * mult when
    # the sign did not fold it in. A weigher with lo == hi gets k1 = 0 and is skipped.
    coef: list[float] = []
    k1s: list[float] = []
    m2s: list[float] | None = None
    for i, (row, hi, lo, mult, minval) in enumerate(zip(
            dense.rows, his, los, dense.mults, dense.minvals, strict=True)):
        if hi < wmax.get(row, -math.inf) or (minval is None and lo > wmin[row]):
            return None
        if lo == hi:
            k1s.append(0.0)
            coef.append(0.0)
            continue
        inv = 1.0 / (hi - lo)
        if mult == 1.0 or mult == -1.0:
            k1s.append(mult * inv)
        else:
            k1s.append(inv)
            if m2s is None:
                m2s = [1.0] * dense.count
            m2s[i] = mult
        coef.append(mult * inv)
    if any(los):
        block = block - np.array(los)[:, None]
    k1 = dense.k1
    k1[:, 0] = k1s
    block = block * k1
    if m2s is not None:
        block *= np.array(m2s)[:, None]
    return block, coef, [float(lo) for lo in los]


def lowers(t: SparseTerm) -> tuple[float, float] | None:
    """(smallest, largest weight) if a sparse weigher only lowers the hosts it weighs from
    a base of exactly 0 (weights > 0, a multiplier <= 0, and ``lo`` 0: ``minval`` 0, or none
    and a passing host without a weight, which the order's first host shows); else None."""
    if t.mult > 0.0 or t.minval not in (None, 0.0):
        return None
    least, most = float(t.values.min()), float(t.values.max())
    return (least, most) if least > 0.0 else None


def lower(t: SparseTerm, low: tuple[float, float], terms: Sequence[Term | None],
          where: IntArray, inside: BoolArray | None, score: FloatArray) -> bool:
    """A lowering weigher (see :func:`lowers`) gives a host without a weight exactly 0, so
    ``score`` is untouched but for its weighed candidates (at ``where``; ``inside`` tells
    which weighed hosts those are, None: all). They leave the order with an upper bound of
    their score: -inf when even the least lowered one falls below every host without a
    weight (then True), else the term with ``hi`` at the largest weight, which it is at
    most."""
    least, most = low
    sink = t.mult * (least / most)  # the term is at most this, on any weighed host
    others = [u.mult for u in terms if u is not None and u is not t]
    ceiling = sum(m for m in others if m > 0)
    floor = sum(m for m in others if m < 0)
    slack = TOLERANCE * (1.0 + ceiling - floor - sink)
    if ceiling + sink + slack < floor - slack:
        score[where] = -np.inf
        return True
    values = t.values if inside is None else t.values[inside]
    # (v - 0) * inv * mult with inv >= 1 / most and mult <= 0: never above this
    score[where] += (values * (1.0 / most)) * t.mult
    return False


def exact_sparse(states: HostStates, t: SparseTerm, asks: FloatArray, mask: BoolArray,
                 masks: Sequence[BoolArray], where: IntArray, inside: BoolArray | None,
                 passing: BoolArray, count: int, complete: bool,
                 score: FloatArray) -> float | None:
    """:func:`weighing._add_sparse` over the candidates, value for value, added to ``score``
    in place (weighed candidates at ``where``, as in :func:`lower`); returns the term of a
    host without a weight, or None when no passing candidate is known to weigh 0 (and not
    every host of the ``mask`` is a candidate). A weighed host that the term raises above
    that must be a candidate; the others are bounded by it, as hosts off the list."""
    rows, values = t.rows, t.values
    at = np.take(states.grid_head(ROOM_ROWS), rows, axis=1)
    fit = at >= asks  # which weighed hosts pass: all of them count for lo and hi
    ok = fit[0] & fit[1]
    ok &= fit[2]
    ok &= mask[rows]
    for m in masks:
        ok &= m[rows]
    passing_values = values[ok]
    # some passing host weighs 0: a passing candidate that is not weighed shows it
    zeros = count > int(np.count_nonzero(passing[where]))
    if not zeros and not complete:
        return None
    hi = max(float(passing_values.max()) if len(passing_values) else -math.inf,
             0.0 if zeros else -math.inf)
    if t.minval is not None:
        lo = t.minval
    else:
        lo = min(float(passing_values.min()) if len(passing_values) else math.inf,
                 0.0 if zeros else math.inf)
    if lo == hi:
        return 0.0
    inv = 1.0 / (hi - lo)
    c0 = t.mult * ((0.0 - lo) * inv)
    before = score[where]
    if c0 != 0.0:
        score += c0
    if len(where):
        at_rows = ((values if inside is None else values[inside]) - lo) * inv
        at_rows *= t.mult
        at_rows += before
        score[where] = at_rows
    return c0


def places(rows: IntArray, cand: IntArray) -> tuple[IntArray, IntArray, IntArray,
                                                    BoolArray | None]:
    """(rows, cand, where the rows that are candidates are in cand, which rows those are
    (None: all))."""
    found = np.minimum(np.searchsorted(cand, rows), len(cand) - 1)
    inside = cand[found] == rows
    if inside.all():
        return rows, cand, found, None
    return rows, cand, found[inside], inside
