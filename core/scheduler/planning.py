"""Planning: what holds for every request of one shape, worked out once and reused.

Two requests have the same shape when the static filters read the same parts of
them (their ``cache_key``) and the same conditional plug-ins apply. For a shape
the :class:`Planner` keeps the combined static mask (shared by every shape that
passes the same hosts, with its shortlist), the weighers with their multipliers,
the dynamic filters, and how the shortlist reads the weighers. It all holds until
hosts, services or aggregates change (``HostStates.static_version``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.host_state import GRID_ROW, HostStates
from nimbus.core.scheduler.multipliers import multiplier
from nimbus.core.scheduler.plugins import (
    BoolArray,
    FloatArray,
    HostFilter,
    HostWeigher,
    ScheduleContext,
)
from nimbus.core.scheduler.request import RequestSpec
from nimbus.core.scheduler.shortlist import Shortlist
from nimbus.core.scheduler.shortlist_terms import DenseSet, DenseTerm, asks_column

CACHE_LIMIT = 512  # cached entries per kind; a cache is dropped whole beyond this


@dataclass(slots=True)
class Static:
    """One combined static mask, and the shortlist of its hosts once one is asked for."""

    mask: BoolArray
    shortlist: Shortlist | None = None


@dataclass(slots=True)
class Plan:
    """What holds for every request of one shape (same static keys, same plug-ins)."""

    static: Static
    weighers: list[tuple[HostWeigher, float | FloatArray]]
    dynamic: list[HostFilter]
    #: Per weigher, its DenseTerm when it reads a column; None for the whole list when
    #: the shortlist cannot serve this plan (shuffling, a multiplier per host).
    dense_at: list[DenseTerm | None] | None
    dense: DenseSet | None
    #: (position, weigher, multiplier) of the weighers that are not dense
    sparse: list[tuple[int, HostWeigher, float]]


class Planner:
    """Plans per request shape for a scheduler's filters and weighers over ``states``."""

    def __init__(self, states: HostStates, config: SchedulerConfig,
                 filters: list[HostFilter], weighers: list[HostWeigher]) -> None:
        self.states = states
        self.config = config
        self.weighers = weighers
        self.static_filters = [f for f in filters if f.watches]
        self.dynamic_filters = [f for f in filters if not f.watches]
        # plug-ins that may not apply to a request, asked per request
        self.conditional: set[HostFilter | HostWeigher] = set()
        self.conditional.update(f for f in filters
                                if type(f).applies is not HostFilter.applies)
        self.conditional.update(w for w in weighers
                                if type(w).applies is not HostWeigher.applies)
        self._asked: list[HostFilter | HostWeigher] = [
            p for p in [*filters, *weighers] if p in self.conditional]
        self._key_of = [f.cache_key for f in self.static_filters]
        self._applies = [p.applies for p in self._asked]
        self._plans: dict[tuple[Hashable, ...], Plan] = {}
        self._asks: dict[tuple[int, int, int], FloatArray] = {}
        self._masks: dict[tuple[str, Hashable], tuple[tuple[int, ...], BoolArray | None]] = {}
        self._combined: dict[tuple[Hashable, ...], Static] = {}  # valid at self._version
        self._alike: dict[bytes, Static] = {}  # the same entries by mask
        #: Static masks (by id) whose failing hosts weigh well (disabled hosts keep their
        #: free resources): the full passes mask their scores before ordering.
        self.eager: set[int] = set()
        self._version = -1
        self._weighing: list[tuple[HostWeigher, float | FloatArray]] = []

    def plan(self, request: RequestSpec) -> Plan:
        """The plan of the request's shape."""
        version = self.states.static_version
        if version != self._version:  # hosts, services or aggregates changed
            self._version = version
            self._combined.clear()
            self._alike.clear()
            self._plans.clear()
            self.eager.clear()
            self._weighing = [(w, m) for w in self.weighers
                              if isinstance(m := self._multiplier(w), np.ndarray) or m != 0.0]
        keys = tuple([key(request) for key in self._key_of])
        shape = (keys, tuple([applies(request) for applies in self._applies]))
        plan = self._plans.get(shape)
        if plan is None:
            if len(self._plans) >= CACHE_LIMIT:
                self._plans.clear()
            plan = self._plans[shape] = self._new_plan(request, keys)
        return plan

    def shortlists(self) -> list[Shortlist]:
        """The shortlists of the current static masks."""
        found = {id(e): e.shortlist for e in self._alike.values() if e.shortlist is not None}
        return list(found.values())

    def asks(self, request: RequestSpec) -> FloatArray:
        """The request's amounts as :func:`asks_column` gives them (cached per flavor)."""
        amounts = (request.memory_mb, request.vcpus, request.disk_gb)
        found = self._asks.get(amounts)
        if found is None:
            if len(self._asks) >= CACHE_LIMIT:
                self._asks.clear()
            found = self._asks[amounts] = asks_column(*amounts)
        return found

    def filter_mask(self, f: HostFilter, key: Hashable, request: RequestSpec) -> BoolArray | None:
        """A static filter's mask for the part ``key`` of the request (cached)."""
        token = self._token(f.watches)
        hit = self._masks.get((f.name, key))
        if hit is not None and hit[0] == token:
            return hit[1]
        mask = f.mask(self.states, request, ScheduleContext(self.config))
        mask = None if mask is None else mask.copy()
        if len(self._masks) >= CACHE_LIMIT:
            self._masks.clear()
        self._masks[(f.name, key)] = (token, mask)
        return mask

    def _new_plan(self, request: RequestSpec, keys: tuple[Hashable, ...]) -> Plan:
        cond = self.conditional
        weighers = [(w, m) for w, m in self._weighing if w not in cond or w.applies(request)]
        dynamic = [f for f in self.dynamic_filters if f not in cond or f.applies(request)]
        dense_at: list[DenseTerm | None] | None = None
        if not self.config.shuffle_best_same_weighed_hosts and not any(
                isinstance(m, np.ndarray) for _w, m in weighers):
            dense_at = [DenseTerm(GRID_ROW[w.column], w.minval, float(m))
                        if w.column in GRID_ROW else None for w, m in weighers]
        dense = (DenseSet(dense_at, [float(m) for _w, m in weighers])
                 if dense_at is not None else None)
        sparse = [(i, w, float(m)) for i, (w, m) in enumerate(weighers)
                  if dense_at is not None and dense_at[i] is None]
        return Plan(self._static_entry(request, keys), weighers, dynamic, dense_at, dense,
                    sparse)

    def _token(self, watches: tuple[str, ...]) -> tuple[int, ...]:
        states = self.states
        return (states.n, *(getattr(states, w) for w in watches))

    def _static_entry(self, request: RequestSpec, keys: tuple[Hashable, ...]) -> Static:
        found = self._combined.get(keys)
        if found is None:
            mask = self.states.present.copy()
            for f, key in zip(self.static_filters, keys, strict=True):
                part = self.filter_mask(f, key, request)
                if part is not None:
                    mask &= part
            if len(self._combined) >= CACHE_LIMIT:
                self._combined.clear()
                self._alike.clear()
                self._plans.clear()
                self.eager.clear()
            # requests that differ but pass the same hosts share one entry (and shortlist)
            found = self._alike.setdefault(mask.tobytes(), Static(mask))
            self._combined[keys] = found
        return found

    def _multiplier(self, weigher: HostWeigher) -> float | FloatArray:
        value = multiplier(self.states, weigher.option, self.config.multiplier(weigher.option))
        return -value if weigher.negate else value
