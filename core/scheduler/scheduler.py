"""select_destinations: resource fit, filters, weighers, a claim, alternates.

For each instance of a request the scheduler

1. keeps the hosts with room (:class:`ResourceFit`, placement's test) and, if
   the claimer offers candidates, only those;
2. ANDs the enabled filters' masks: the static ones (zone, capabilities,
   image, aggregates, service status) come from a cache keyed by the part of
   the request they read, the dynamic ones (server groups, hints) are computed;
3. adds up the weighers' normalized, multiplied weights over the hosts that
   passed (see :class:`HostWeigher`);
4. orders the hosts best first (:mod:`ordering`: ties go to the lowest row,
   unless shuffling) and claims the first; on a ConflictError it claims the next;
5. records the instance in :class:`HostStates`, so the next instance of a
   multi-create batch sees it (its group's members included).

A request no host can take raises :class:`NoValidHost` naming how many hosts
each step removed; claims already made for the batch are released first.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from nimbus.core.errors import ConflictError, NoValidHost
from nimbus.core.scheduler.claims import Claimer
from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.filters import FILTERS
from nimbus.core.scheduler.filters.resource_fit import ResourceFit
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.multipliers import multiplier
from nimbus.core.scheduler.ordering import HostOrder
from nimbus.core.scheduler.plugins import (
    BoolArray,
    FloatArray,
    HostFilter,
    HostWeigher,
    ScheduleContext,
)
from nimbus.core.scheduler.request import RequestSpec, Selection
from nimbus.core.scheduler.weighers import WEIGHERS
from nimbus.core.scheduler.weighing import Buffers, total_scores

_CACHE_LIMIT = 512  # cached masks per kind; the cache is dropped whole beyond this


@dataclass(frozen=True, slots=True)
class FilterStep:
    """How many hosts one step of the pipeline kept out of how many it was given."""

    name: str
    before: int
    after: int


class HostsFilteredOut(NoValidHost):
    """No host passed the filters; ``steps`` tells how many hosts each step removed."""

    def __init__(self, message: str, steps: tuple[FilterStep, ...]) -> None:
        super().__init__(message)
        self.steps = steps


@dataclass(slots=True)
class _Plan:
    """What holds for every instance of one request."""

    static: BoolArray
    allowed: BoolArray | None
    weighers: list[tuple[HostWeigher, float | FloatArray]]
    group: str | None
    dynamic: list[HostFilter]
    asks: list[tuple[float, str]]  # (amount, room column) of each resource asked


class Scheduler:
    """Places requests on the hosts of ``states``, claiming through ``claimer``.

    ``rng`` (the Runtime's) is drawn from only to shuffle equal best hosts or to
    pick among the best ``host_subset_size``.
    """

    def __init__(self, states: HostStates, config: SchedulerConfig, claimer: Claimer,
                 rng: random.Random) -> None:
        self.states = states
        self.config = config
        self.claimer = claimer
        self.rng = rng
        self.filters: list[HostFilter] = [cls(config) for cls in
                                          FILTERS.resolve(config.enabled_filters)]
        self.weighers: list[HostWeigher] = [cls(config) for cls in
                                            WEIGHERS.resolve(config.weighers)]
        self._static = [f for f in self.filters if f.watches]
        self._dynamic = [f for f in self.filters if not f.watches]
        # plug-ins that may not apply to a request, asked per request
        self._conditional: set[HostFilter | HostWeigher] = set()
        self._conditional.update(f for f in self.filters
                                 if type(f).applies is not HostFilter.applies)
        self._conditional.update(w for w in self.weighers
                                 if type(w).applies is not HostWeigher.applies)
        self._masks: dict[tuple[str, Hashable], tuple[tuple[int, ...], BoolArray | None]] = {}
        self._combined: dict[tuple[Hashable, ...], BoolArray] = {}  # valid at self._version
        # Static masks (by id) whose failing hosts weigh well (disabled hosts keep their
        # free resources): their scores are masked before ordering, not while drawing.
        self._eager: set[int] = set()
        self._version = -1
        self._weighing: list[tuple[HostWeigher, float | FloatArray]] = []
        self._buffers = Buffers(0)
        self.decisions = 0
        self.conflicts = 0
        self.failures = 0

    # -- the pipeline ------------------------------------------------------------
    def select_destinations(self, request: RequestSpec) -> list[Selection]:
        """One Selection per placed instance (chosen host, weight, alternates)."""
        states = self.states
        if not len(states):
            self.failures += 1
            raise HostsFilteredOut("No valid host was found: there are no compute hosts", ())
        plan = self._plan(request)
        ctx = ScheduleContext(self.config)
        self._group_into(ctx, plan)
        placed: list[tuple[int, float, str | None]] = []
        order: HostOrder | None = None
        failure: NoValidHost | None = None
        try:
            for n in range(request.num_instances):
                uuid = request.instance_uuid(n)
                ctx.instance_uuid = uuid
                order = self._rank(request, ctx, plan)
                if order is None:
                    failure = self._explain(request, ctx, plan, n)
                    break
                chosen = self._claim(order, request, uuid)
                if chosen is None:
                    failure = NoValidHost(f"No valid host was found for instance {n + 1} of "
                                          f"{request.num_instances}: every host that passed "
                                          f"the filters refused the claim")
                    break
                states.add_instance(chosen[0], uuid, plan.group)
                placed.append((chosen[0], chosen[1], uuid))
                self._group_into(ctx, plan)
                self.decisions += 1
            if failure is not None and len(placed) < request.min_instances:
                raise failure
            return self._selections(request, ctx, plan, placed, order)
        except BaseException:
            self._roll_back(request, plan, placed)
            if failure is not None:
                self.failures += 1
            raise

    def _rank(self, request: RequestSpec, ctx: ScheduleContext, plan: _Plan) -> HostOrder | None:
        states = self.states
        b = self._buffers
        if b.n != states.n:
            b = self._buffers = Buffers(states.n)
        b.fail_ready = b.passf_ready = False
        passing, scratch = b.passing, b.scratch
        if plan.asks:  # ResourceFit, inline
            amount, room = plan.asks[0]
            np.greater_equal(getattr(states, room), amount, out=passing)
            for amount, room in plan.asks[1:]:
                np.greater_equal(getattr(states, room), amount, out=scratch)
                np.logical_and(passing, scratch, out=passing)
            np.logical_and(passing, plan.static, out=passing)
        else:
            np.copyto(passing, plan.static)
        if plan.allowed is not None:
            np.logical_and(passing, plan.allowed, out=passing)
        for f in plan.dynamic:
            mask = f.mask(states, request, ctx)
            if mask is not None:
                np.logical_and(passing, mask, out=passing)
        count = int(np.count_nonzero(passing))
        if not count:
            return None
        score = total_scores(plan.weighers, states, request, ctx, b, count)
        shuffle = self.config.shuffle_best_same_weighed_hosts
        key = id(plan.static)
        if shuffle or key in self._eager:
            np.copyto(score, -np.inf, where=b.failing())
            order = HostOrder(score, count)
        else:  # failing rows usually weigh little: skip the few that come up
            order = HostOrder(score, count, passing, b.failing, lambda: self._eager.add(key))
        if shuffle:
            order.shuffle_best(self.rng, self.config.host_subset_size + self.config.max_attempts)
        order.choose_first(self.rng, self.config.host_subset_size)
        return order

    def _claim(self, order: HostOrder, request: RequestSpec,
               uuid: str | None) -> tuple[int, float] | None:
        k = 0
        while (item := order.at(k)) is not None:
            try:
                self.claimer.claim(item[0], request, uuid)
                return item
            except ConflictError:
                self.conflicts += 1
                k += 1
        return None

    def _selections(self, request: RequestSpec, ctx: ScheduleContext, plan: _Plan,
                    placed: list[tuple[int, float, str | None]],
                    order: HostOrder | None) -> list[Selection]:
        alternates: list[int] = []
        wanted = self.config.max_attempts - 1
        chosen = {row for row, _w, _u in placed}
        if wanted:
            if request.num_instances > 1:  # rank again with the whole batch placed, as Nova does
                order = self._rank(request, ctx, plan)
            if order is not None:
                alternates = order.rows(wanted, chosen)
        names = tuple(self.states.name(r) for r in alternates)
        return [Selection(uuid, self.states.name(row), row, weight, names, tuple(alternates))
                for row, weight, uuid in placed]

    def _roll_back(self, request: RequestSpec, plan: _Plan,
                   placed: list[tuple[int, float, str | None]]) -> None:
        for row, _weight, uuid in reversed(placed):
            self.claimer.release(row, request, uuid)
            self.states.remove_instance(uuid, row=row, group=plan.group, io_ops=1)
        placed.clear()

    # -- per-request preparation -------------------------------------------------
    def _plan(self, request: RequestSpec) -> _Plan:
        states = self.states
        version = states.static_version
        if version != self._version:  # hosts, services or aggregates changed
            self._version = version
            self._combined.clear()
            self._eager.clear()
            self._weighing = [(w, m) for w in self.weighers
                              if isinstance(m := self._multiplier(w), np.ndarray) or m != 0.0]
        allowed = None
        offered = self.claimer.candidates(request)
        if offered is not None:
            allowed = np.zeros(states.n, dtype=np.bool_)
            allowed[offered] = True
        group = request.group.uuid if request.group is not None else None
        asks = [(float(amount), room) for amount, room in (
            (request.memory_mb, "ram_room"), (request.vcpus, "vcpu_room"),
            (request.disk_gb, "disk_room")) if amount]
        cond = self._conditional
        return _Plan(self._static_mask(request), allowed,
                     [(w, m) for w, m in self._weighing if w not in cond or w.applies(request)],
                     group, [f for f in self._dynamic if f not in cond or f.applies(request)],
                     asks)

    def _group_into(self, ctx: ScheduleContext, plan: _Plan) -> None:
        if plan.group is not None:
            counts = self.states.group_counts(plan.group)
            ctx.group_counts = counts
            ctx.group_total = 0 if counts is None else int(counts.sum())

    def _token(self, watches: tuple[str, ...]) -> tuple[int, ...]:
        states = self.states
        return (states.n, *(getattr(states, w) for w in watches))

    def _static_mask(self, request: RequestSpec) -> BoolArray:
        keys = tuple([f.cache_key(request) for f in self._static])
        found = self._combined.get(keys)
        if found is None:
            mask = self.states.present.copy()
            for f, key in zip(self._static, keys, strict=True):
                part = self._filter_mask(f, key, request)
                if part is not None:
                    mask &= part
            if len(self._combined) >= _CACHE_LIMIT:
                self._combined.clear()
                self._eager.clear()
            found = self._combined[keys] = mask
        return found

    def _filter_mask(self, f: HostFilter, key: Hashable, request: RequestSpec) -> BoolArray | None:
        token = self._token(f.watches)
        hit = self._masks.get((f.name, key))
        if hit is not None and hit[0] == token:
            return hit[1]
        mask = f.mask(self.states, request, ScheduleContext(self.config))
        mask = None if mask is None else mask.copy()
        if len(self._masks) >= _CACHE_LIMIT:
            self._masks.clear()
        self._masks[(f.name, key)] = (token, mask)
        return mask

    def _multiplier(self, weigher: HostWeigher) -> float | FloatArray:
        value = multiplier(self.states, weigher.option, self.config.multiplier(weigher.option))
        return -value if weigher.negate else value

    # -- NoValidHost ---------------------------------------------------------------
    def _explain(self, request: RequestSpec, ctx: ScheduleContext, plan: _Plan,
                 n: int) -> HostsFilteredOut:
        """Apply the steps one by one, counting what each removes, up to the one that
        leaves no host."""
        states = self.states
        alive = states.present.copy()
        steps: list[FilterStep] = []
        masks: list[tuple[str, BoolArray | None]] = [
            ("ResourceFit", ResourceFit(self.config).mask(states, request, ctx))]
        if plan.allowed is not None:
            masks.append(("Placement", plan.allowed))
        for f in self.filters:
            if f.watches:
                masks.append((f.name, self._filter_mask(f, f.cache_key(request), request)))
            else:
                masks.append((f.name, f.mask(states, request, ctx)))
        for name, mask in masks:
            before = int(np.count_nonzero(alive))
            if mask is not None:
                alive &= mask
            steps.append(FilterStep(name, before, int(np.count_nonzero(alive))))
            if not steps[-1].after:
                break
        reasons = "; ".join(f"{s.name} removed {s.before - s.after} of {s.before} hosts"
                            for s in steps)
        return HostsFilteredOut(f"No valid host was found for instance {n + 1} of "
                                f"{request.num_instances}: {reasons}", tuple(steps))
