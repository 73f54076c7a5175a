"""Adding up the weighers' scores over the hosts that passed, as Nova does, in numpy.

For each weigher, in order: raw weights ``w``; ``lo`` and ``hi`` over the
passing hosts (``lo`` is the weigher's ``minval`` when set); skip it when
``lo == hi`` (every host normalizes to 0); else add ``m * ((w - lo) * (1 / (hi -
lo)))`` to the total, starting from 0. That is Nova's normalization and sum,
except that dividing by ``hi - lo`` is multiplying by its inverse (a division
costs twice a multiplication here), which may differ from Nova's quotient in
the last bit. The reference loop in the tests does the same operations in the
same order, and both get the same floats.

Only the rows that passed matter: the others may hold anything, and the caller
masks them. Three shortcuts keep a decision to a few passes over the arrays:

* the extreme over all rows is the extreme over the passing rows whenever a
  passing row holds it (one ``argmax``, no masking);
* a weigher that is 0 on most hosts (failed builds, server group members)
  gives its non-zero rows only, and only those rows are computed;
* multiplying by 1 and adding the negation are skipped or folded (exact).
"""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import (
    BoolArray,
    FloatArray,
    HostWeigher,
    IntArray,
    ScheduleContext,
)
from nimbus.core.scheduler.request import RequestSpec

Multiplier = float | FloatArray


class Buffers:
    """Arrays reused from one decision to the next while the number of rows stays."""

    __slots__ = ("fail", "fail_ready", "n", "passf", "passf_ready", "passing", "score",
                 "scratch", "tmp")

    def __init__(self, n: int) -> None:
        self.n = n
        self.passing: BoolArray = np.empty(n, dtype=np.bool_)
        self.scratch: BoolArray = np.empty(n, dtype=np.bool_)
        self.fail: BoolArray = np.empty(n, dtype=np.bool_)
        self.passf: FloatArray = np.empty(n, dtype=np.float64)
        self.score: FloatArray = np.empty(n, dtype=np.float64)
        self.tmp: FloatArray = np.empty(n, dtype=np.float64)
        self.fail_ready = self.passf_ready = False

    def failing(self) -> BoolArray:
        """``~passing``, computed once per decision."""
        if not self.fail_ready:
            np.logical_not(self.passing, out=self.fail)
            self.fail_ready = True
        return self.fail


def total_scores(weighers: list[tuple[HostWeigher, Multiplier]], states: HostStates,
                 request: RequestSpec, ctx: ScheduleContext, b: Buffers,
                 count: int) -> FloatArray:
    """The weighed total of each row (meaningful on the ``count`` passing rows)."""
    score = b.score
    started = False
    if count > 1:  # Nova weighs nothing when one host is left
        for weigher, mult in weighers:
            sparse = weigher.sparse_weights(states, request, ctx)
            if sparse is not None:
                started = _add_sparse(sparse, weigher.minval, mult, b, count, started)
                continue
            raw = weigher.weights(states, request, ctx)
            if raw is not None:
                started = _add_dense(raw, weigher, mult, b, started)
    if not started:
        score.fill(0.0)
    return score


def _add_dense(raw: FloatArray, weigher: HostWeigher, mult: Multiplier, b: Buffers,
               started: bool) -> bool:
    lo, hi = _bounds(raw, weigher, b)
    if lo == hi:
        return started
    score, inv = b.score, 1.0 / (hi - lo)
    out = b.tmp if started else score
    scalar = not isinstance(mult, np.ndarray)
    # m * norm with m = +-1 is norm scaled by +-inv: negation is exact, so fold it in
    sign = mult if scalar and mult in (1.0, -1.0) else 1.0
    if lo:
        np.subtract(raw, lo, out=out)
        np.multiply(out, sign * inv, out=out)
    else:
        np.multiply(raw, sign * inv, out=out)  # w - 0.0 is w
    if not scalar or sign != mult:
        np.multiply(out, mult, out=out)
    if started:
        np.add(score, out, out=score)
    return True


def _bounds(raw: FloatArray, weigher: HostWeigher, b: Buffers) -> tuple[float, float]:
    """(lo, hi) of ``raw`` over the passing rows; ``lo`` is ``minval`` when set."""
    minval = weigher.minval
    row = int(raw.argmax())
    hi = float(raw[row]) if b.passing[row] else _masked_max(raw, minval, b)
    if minval is not None:
        return minval, hi
    row = int(raw.argmin())
    if b.passing[row]:
        return float(raw[row]), hi
    np.copyto(b.tmp, raw)
    np.copyto(b.tmp, np.inf, where=b.failing())
    return float(b.tmp.min()), hi


def _masked_max(raw: FloatArray, minval: float | None, b: Buffers) -> float:
    if minval is not None and minval >= 0:
        # weights are clamped at minval >= 0, so zeroing the failing rows keeps the max
        if not b.passf_ready:
            np.copyto(b.passf, b.passing)
            b.passf_ready = True
        np.multiply(raw, b.passf, out=b.tmp)
    else:
        np.copyto(b.tmp, raw)
        np.copyto(b.tmp, -np.inf, where=b.failing())
    return float(b.tmp.max())


def _add_sparse(sparse: tuple[IntArray, FloatArray], minval: float | None, mult: Multiplier,
                b: Buffers, count: int, started: bool) -> bool:
    rows, values = sparse
    if not len(rows):
        return started  # 0 everywhere
    passing_values = values[b.passing[rows]]
    zeros = count > len(passing_values)  # some passing host weighs 0
    hi = max(float(passing_values.max()) if len(passing_values) else -np.inf,
             0.0 if zeros else -np.inf)
    if minval is not None:
        lo = minval
    else:
        lo = min(float(passing_values.min()) if len(passing_values) else np.inf,
                 0.0 if zeros else np.inf)
    if lo == hi:
        return started
    inv = 1.0 / (hi - lo)
    at_rows = (values - lo) * inv
    at_zero = (0.0 - lo) * inv
    score = b.score
    if isinstance(mult, np.ndarray):
        at_rows *= mult[rows]
        if not started:
            np.multiply(mult, at_zero, out=score)
        else:
            before = score[rows]
            np.add(score, mult * at_zero, out=score)
            at_rows += before
        score[rows] = at_rows
        return True
    at_rows *= mult
    if not started:
        score.fill(mult * at_zero)
    else:
        before = score[rows]
        if mult * at_zero != 0.0:  # adding 0 changes nothing
            np.add(score, mult * at_zero, out=score)
        at_rows += before
    score[rows] = at_rows
    return True
