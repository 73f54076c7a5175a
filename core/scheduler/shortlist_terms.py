"""Weighers as the shortlist (:mod:`shortlist`) sees them, and their terms over its hosts.

A dense weigher reads one HostStates column (:class:`DenseTerm`); a sparse one
gives the few hosts it weighs (:class:`SparseTerm`). Each function here does what
:mod:`weighing` does over every host, operation for operation, over the
shortlist's candidates only, so that every candidate gets the very same float.
"""

from __future__ import annotations

import math
import operator
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


def asks_column(memory_mb: float, vcpus: float, disk_gb: float) -> FloatArray:
    """What a request asks of the room columns, as a (3, 1) column for one comparison
    (-inf where it asks nothing: any room passes, as ResourceFit does). Floats, as the
    rooms are: comparing them with integers would cast on every comparison."""
    return np.array([[a if a else -np.inf] for a in (memory_mb, vcpus, disk_gb)],
                    dtype=np.float64)


class DenseSet:
    """The dense terms of one plan, in the weighers' order, laid out for whole-array work.

    ``terms`` has a DenseTerm for each weigher that reads a column and None for the
    others (the sparse ones); ``mults`` are every weigher's multipliers.
    """

    __slots__ = ("at", "count", "first", "index", "k1", "lift", "lows", "minvals", "mults",
                 "rest", "rows", "spans", "unit")

    def __init__(self, terms: Sequence[Term | None], mults: Sequence[float]) -> None:
        dense = [t for t in terms if isinstance(t, DenseTerm)]
        #: position of each term in the dense block, or -1
        self.at = [-1] * len(terms)
        k = 0
        for i, t in enumerate(terms):
            if isinstance(t, DenseTerm):
                self.at[i] = k
                k += 1
        self.count = len(dense)
        #: the dense terms come first in the weighers' order (then the block's rows add up
        #: in that order with one ``np.add.reduce``), and the positions of the others
        self.first = self.at[: self.count] == list(range(self.count))
        self.rest = [i for i, at in enumerate(self.at) if at < 0]
        self.rows = [t.row for t in dense]
        first = self.rows[0] if self.rows else 0
        contiguous = self.rows == list(range(first, first + len(self.rows)))
        self.index: slice | IntArray = (slice(first, first + len(self.rows)) if contiguous
                                        else np.array(self.rows, dtype=np.int64))
        self.mults = [t.mult for t in dense]
        self.minvals = [t.minval for t in dense]
        self.lows = [0.0 if m is None else float(m) for m in self.minvals]
        self.lift = np.array(self.lows)[:, None] if any(self.lows) else None
        #: every minval set and every multiplier +-1 (Nova's defaults): the short way
        self.unit = None not in self.minvals and all(m in (1.0, -1.0) for m in self.mults)
        self.k1 = np.zeros((len(dense), 1))  # the terms' scale factors, rewritten per decision
        #: for each other position, the sums of the positive and of the negative multipliers
        #: of all the other weighers: what they add up to at most and at least (lower())
        self.spans = {i: (math.fsum(m for j, m in enumerate(mults) if j != i and m > 0),
                          math.fsum(m for j, m in enumerate(mults) if j != i and m < 0))
                      for i in self.rest}


def dense_terms(X: FloatArray, passing: BoolArray, dense: DenseSet, wmax: list[float],
                wmin: list[float]) -> tuple[FloatArray, list[float], list[float], float] | None:
    """The dense weighers' terms over the candidates ``X`` (one row each), their linear
    coefficients, ``lo``, and the sum of ``|mult|`` of those that add something; None when
    a host off the list may hold a weigher's extreme (``wmax``, ``wmin``: the columns'
    ranges there, one per dense term)."""
    if not dense.count:
        return np.empty((0, len(passing))), [], [], 0.0
    block = X[dense.index]
    # hi over the passing candidates: the largest of all, when a passing one holds it
    tops = block.argmax(axis=1).tolist()
    if all(map(passing.__getitem__, tops)):
        his = list(map(block.item, range(len(tops)), tops))
    else:
        his = np.maximum.reduce(np.where(passing, block, -np.inf), axis=1).tolist()
    if any(map(operator.lt, his, wmax)):
        return None
    # _add_dense's operations: x * (sign * inv), after x - lo when lo, then * mult when
    # the sign did not fold it in. A weigher with lo == hi gets k1 = 0 and is skipped.
    if dense.unit:  # minval for lo, and the multiplier is the sign
        los = dense.lows
        coef = [m * (1.0 / (h - lo)) if h != lo else 0.0
                for m, h, lo in zip(dense.mults, his, los, strict=True)]
        k1s: list[float] = coef
        m2s: list[float] | None = None
        mult_sum = float(len(coef) - coef.count(0.0))
    else:
        los = (np.minimum.reduce(np.where(passing, block, np.inf), axis=1).tolist()
               if None in dense.minvals else dense.lows)
        if any(map(operator.gt, los, wmin)):  # only a weigher without minval has a wmin
            return None
        coef, k1s, m2s, mult_sum = _scales(his, los, dense)
    if dense.lift is not None:
        block = block - dense.lift
    elif not dense.unit and any(los):
        block = block - np.array(los)[:, None]
    k1 = dense.k1
    k1[:, 0] = k1s
    block = block * k1
    if m2s is not None:
        block *= np.array(m2s)[:, None]
    return block, coef, los, mult_sum


def _scales(his: list[float], los: list[float], dense: DenseSet
            ) -> tuple[list[float], list[float], list[float] | None, float]:
    """(coefficients, factors before the multiplier, multipliers still to apply or None,
    sum of |mult|) for any minvals and multipliers."""
    coef: list[float] = []
    k1s: list[float] = []
    m2s: list[float] | None = None
    mult_sum = 0.0
    for i, (hi, lo, mult) in enumerate(zip(his, los, dense.mults, strict=True)):
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
        mult_sum += abs(mult)
    return coef, k1s, m2s, mult_sum


def dense_sum(block: FloatArray) -> FloatArray:
    """The block's rows added up in order, as the full pass adds the weighers' scores.

    Along axis 0 of a C-ordered block ``np.add.reduce`` adds row after row, element by
    element (numpy sums pairwise only along the contiguous axis), so each total is the
    very float of ``((t0 + t1) + t2) + ...``; a row of a skipped weigher is +-0, which
    changes no sum. tests/core/scheduler/test_shortlist.py checks it."""
    summed: FloatArray = block[0] if len(block) == 1 else np.add.reduce(block, axis=0)
    return summed


def lowers(t: SparseTerm) -> tuple[float, float] | None:
    """(smallest, largest weight) if a sparse weigher only lowers the hosts it weighs from
    a base of exactly 0 (weights > 0, a multiplier <= 0, and ``lo`` 0: ``minval`` 0, or none
    and a passing host without a weight, which the order's first host shows); else None."""
    if t.mult > 0.0 or t.minval not in (None, 0.0):
        return None
    least, most = float(np.minimum.reduce(t.values)), float(np.maximum.reduce(t.values))
    return (least, most) if least > 0.0 else None


def sinks(t: SparseTerm, low: tuple[float, float], span: tuple[float, float]) -> bool:
    """Whether a lowering weigher (see :func:`lowers`) drops even the least lowered host it
    weighs below every host without a weight, whatever the other weighers give: ``span``
    is what they add up to at most and at least (:attr:`DenseSet.spans`). Such hosts leave
    the order (their score is -inf: they come after every other host)."""
    least, most = low
    sink = t.mult * (least / most)  # the term is at most this, on any weighed host
    ceiling, floor = span
    slack = TOLERANCE * (1.0 + ceiling - floor - sink)
    return ceiling + sink + slack < floor - slack


def lower(t: SparseTerm, low: tuple[float, float], where: IntArray, inside: BoolArray | None,
          score: FloatArray) -> None:
    """A lowering weigher (see :func:`lowers`) gives a host without a weight exactly 0, so
    ``score`` is untouched but for its weighed candidates (at ``where``; ``inside`` tells
    which weighed hosts those are, None: all). When they do not sink (:func:`sinks`) they
    leave the order with an upper bound of their score: the term with ``hi`` at the
    largest weight, which it is at most."""
    values = t.values if inside is None else t.values[inside]
    # (v - 0) * inv * mult with inv >= 1 / most and mult <= 0: never above this
    score[where] += (values * (1.0 / low[1])) * t.mult


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
    at = states.grid_head(ROOM_ROWS).take(rows, axis=1)
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
    hi = max(float(np.maximum.reduce(passing_values)) if len(passing_values) else -math.inf,
             0.0 if zeros else -math.inf)
    if t.minval is not None:
        lo = t.minval
    else:
        lo = min(float(np.minimum.reduce(passing_values)) if len(passing_values) else math.inf,
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
    found = np.minimum(cand.searchsorted(rows), len(cand) - 1)
    inside = cand[found] == rows
    if np.logical_and.reduce(inside):
        return rows, cand, found, None
    return rows, cand, found[inside], inside

