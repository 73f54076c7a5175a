"""Building a shortlist (:mod:`shortlist`): its candidates, and what bounds all the other hosts.

For one static mask, :func:`choose` takes, in a few passes over the hosts,

* the multipliers of the dense weighers over the spans of their columns on the
  whole mask (``A0``, ``beta0``), which give every host a linear score;
* as candidates, the hosts with the largest (and, for a weigher without
  ``minval``, the smallest) values of each column, and the best by linear score;
* tiers of the next best hosts by linear score, each with the level its
  promotion drops ``theta`` to (the shortlist promotes them when its candidates
  run out);
* for the hosts left out: ``theta``, the largest of their linear scores, and the
  range ``[wmin[c], wmax[c]]`` of each column.

When the mask has few hosts, all of them are candidates and the list is complete.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nimbus.core.scheduler.plugins import BoolArray, FloatArray, IntArray
from nimbus.core.scheduler.shortlist_terms import DenseTerm, Term

_SAMPLE = 256  # values sampled to set a threshold that keeps about q of them
_TIERS = 4  # tiers of hosts ranked by linear score at a build (the first are candidates)


@dataclass(slots=True)
class Built:
    """What :func:`choose` found (see the module docstring)."""

    member: BoolArray  # the candidates, over every row
    complete: bool  # every host of the mask is a candidate
    A0: dict[int, float]  # grid row -> multiplier over its span
    beta0: float
    theta: float
    wmax: dict[int, float]
    wmin: dict[int, float]
    tiers: list[tuple[IntArray, float]]  # (hosts, theta once they join)


def choose(grid: FloatArray, mask: BoolArray, size: int, columns: Sequence[int],
           low: frozenset[int], terms: Sequence[Term | None]) -> Built:
    """Candidates for about ``size`` hosts of ``mask``; ``columns`` are the grid rows of
    every dense weigher, ``low`` those whose minimum a weigher needs, ``terms`` the
    weighers of the plan that asked."""
    n = grid.shape[1]
    A0: dict[int, float] = {}
    beta0 = 0.0
    shown = {c: np.where(mask, grid[c], -np.inf) for c in columns}
    for t in terms:  # the multipliers over the spans of the whole mask: near enough
        if not isinstance(t, DenseTerm):
            continue
        hi = float(shown[t.row].max())
        lo = t.minval if t.minval is not None else float(
            np.where(mask, grid[t.row], np.inf).min())
        a = t.mult / (hi - lo) if math.isfinite(hi - lo) and hi > lo else 0.0
        A0[t.row] = A0.get(t.row, 0.0) + a
        beta0 -= a * lo
    built = Built(mask.copy(), True, A0, beta0, -math.inf, {}, {}, [])
    if int(np.count_nonzero(mask)) <= size:
        return built
    linear = np.full(n, beta0)
    for c, a in A0.items():
        if a:
            linear += grid[c] * a
    linear[~mask] = -np.inf
    quota = max(1, size // (4 * max(1, len(columns))))
    member = np.zeros(n, dtype=np.bool_)
    for c in columns:
        member |= _top(shown[c], quota)
        if c in low:
            member |= _top(-np.where(mask, grid[c], np.inf), quota)
    member &= mask
    # the best by linear score, in tiers: the first joins now, the next ones when the
    # candidates run out (see Shortlist._promote), each lowering theta to its own level
    step = max(1, size // 2)
    best = _top(np.where(member, -np.inf, linear), _TIERS * step)
    ranked = np.flatnonzero(best)
    ranked = ranked[np.argsort(-linear[ranked], kind="stable")]
    levels = linear[ranked].tolist()
    rest = float(np.where(best | member, -np.inf, linear).max())
    tiers = [(ranked[k:k + step], levels[k + step] if k + step < len(levels) else rest)
             for k in range(0, len(ranked), step)]
    first, built.theta = tiers.pop(0) if tiers else (ranked, rest)
    member[first] = True
    built.member = member
    others = mask & ~member
    if not others.any():
        return built  # complete after all
    cols = list(columns)
    values = grid[cols]
    built.wmax = dict(zip(cols, np.where(others, values, -np.inf).max(axis=1).tolist(),
                          strict=True))
    built.wmin = dict(zip(cols, np.where(others, values, np.inf).min(axis=1).tolist(),
                          strict=True))
    built.complete = False
    built.tiers = tiers
    return built


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
