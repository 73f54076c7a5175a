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

The decision is written once, as steps (:meth:`Scheduler.placing`, :mod:`steps`)
that yield what they need of the claimer: :meth:`Scheduler.select_destinations`
answers them with a synchronous claimer (in memory), and
:meth:`Scheduler.select_destinations_async` with one that waits (placement
through the Store, :mod:`placement_claimer`).

Steps 1 to 4 usually run on a shortlist of hosts (:mod:`shortlist`), which
gives the same hosts and weights as the passes over every host and says when
it cannot; then the passes run. What a request needs besides its amounts (the
static mask, the plug-ins that apply, the weighers' multipliers) is planned once
per request shape and reused until hosts, services or aggregates change.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nimbus.core.errors import NotFound, NoValidHost
from nimbus.core.scheduler.claims import Claimer, InMemoryClaimer
from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.filters import FILTERS
from nimbus.core.scheduler.filters.resource_fit import ResourceFit
from nimbus.core.scheduler.host_state import GRID_ROW, HostStates
from nimbus.core.scheduler.ordering import HostOrder, ListedOrder, Order
from nimbus.core.scheduler.planning import Plan, Planner
from nimbus.core.scheduler.plugins import (
    BoolArray,
    FloatArray,
    HostFilter,
    HostWeigher,
    IntArray,
    ScheduleContext,
)
from nimbus.core.scheduler.request import RequestSpec, Selection
from nimbus.core.scheduler.shortlist import Shortlist
from nimbus.core.scheduler.shortlist_terms import SparseTerm, Term
from nimbus.core.scheduler.steps import (
    OFFER,
    AsyncClaimer,
    Claim,
    Release,
    Steps,
    drive,
    drive_async,
)
from nimbus.core.scheduler.weighers import WEIGHERS
from nimbus.core.scheduler.weighing import Buffers, total_scores

#: Hosts from which the shortlist is used unless a size is given; below, the passes over
#: every host cost about as little.
SHORTLIST_FROM = 4096


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


class Scheduler:
    """Places requests on the hosts of ``states``, claiming through ``claimer`` (see
    :mod:`steps` for one whose calls wait).

    ``rng`` (the Runtime's) is drawn from only to shuffle equal best hosts or to
    pick among the best ``host_subset_size``.
    """

    def __init__(self, states: HostStates, config: SchedulerConfig,
                 claimer: Claimer | AsyncClaimer, rng: random.Random, *,
                 shortlist_size: int | None = None) -> None:
        self.states = states
        self.config = config
        self.claimer = claimer
        self.rng = rng
        self.filters: list[HostFilter] = [cls(config) for cls in
                                          FILTERS.resolve(config.enabled_filters)]
        self.weighers: list[HostWeigher] = [cls(config) for cls in
                                            WEIGHERS.resolve(config.weighers)]
        self.planner = Planner(states, config, self.filters, self.weighers)
        #: Hosts the shortlist keeps (see :mod:`shortlist`): None picks a size that grows
        #: with the fleet, from SHORTLIST_FROM hosts up; 0 never uses one.
        self.shortlist_size = shortlist_size
        columns = {GRID_ROW[w.column]: w.minval for w in self.weighers if w.column in GRID_ROW}
        self._columns = tuple(sorted(columns))
        self._low = frozenset(c for c, minval in columns.items() if minval is None)
        self._buffers = Buffers(0)
        self._terms: dict[HostWeigher, SparseTerm] = {}
        self.decisions = 0
        self.conflicts = 0
        self.failures = 0
        self.shortlisted = 0  # rankings the shortlist answered

    # -- the pipeline ------------------------------------------------------------
    def select_destinations(self, request: RequestSpec) -> list[Selection]:
        """One Selection per placed instance (chosen host, weight, alternates), claiming
        with a synchronous claimer (such as :class:`InMemoryClaimer`; one that waits is a
        TypeError: use :meth:`select_destinations_async`)."""
        return drive(self.placing(request), self.claimer, request)

    async def select_destinations_async(self, request: RequestSpec) -> list[Selection]:
        """:meth:`select_destinations` with a claimer whose calls may wait (placement
        through the Store); the array work between claims does not."""
        return await drive_async(self.placing(request), self.claimer, request)

    def placing(self, request: RequestSpec) -> Steps:
        """The decision as steps (see :mod:`steps`): the claims it needs are yielded."""
        states = self.states
        if not len(states):
            self.failures += 1
            raise HostsFilteredOut("No valid host was found: there are no compute hosts", ())
        plan = self.planner.plan(request)
        # InMemoryClaimer's own candidates() is always None: no need to ask it
        offers = type(self.claimer).candidates is not InMemoryClaimer.candidates
        allowed = self._allowed((yield OFFER)) if offers else None
        if request.ignore_hosts:  # a pre-mask, like placement's offer: no cache keys on it
            keep = self._not_ignored(request)
            allowed = keep if allowed is None else keep & allowed
        group = request.group.uuid if request.group is not None else None
        ctx = ScheduleContext(self.config)
        self._group_into(ctx, group)
        config = self.config
        # hosts each ranking must find: the claim's, and a single instance's alternates
        need = config.host_subset_size
        if request.num_instances == 1:
            need = max(need, config.max_attempts)
        placed: list[tuple[int, float, str | None]] = []
        order: Order | None = None
        failure: NoValidHost | None = None
        try:
            for n in range(request.num_instances):
                uuid = request.instance_uuid(n)
                ctx.instance_uuid = uuid
                order = self._rank(request, ctx, plan, allowed, need)
                if order is None:
                    failure = self._explain(request, ctx, plan, allowed, n)
                    break
                chosen = None
                k = 0
                while (item := order.at(k)) is not None:
                    if (yield Claim(item[0], uuid)):
                        chosen = item
                        break
                    self.conflicts += 1
                    # see the rest of the order now, before a claim changes the hosts
                    order.at(k + config.max_attempts)
                    k += 1
                if chosen is None:
                    failure = NoValidHost(f"No valid host was found for instance {n + 1} of "
                                          f"{request.num_instances}: every host that passed "
                                          f"the filters refused the claim")
                    break
                states.add_instance(chosen[0], uuid, group)
                placed.append((chosen[0], chosen[1], uuid))
                if request.num_instances > 1:  # the next ranking sees this member
                    self._group_into(ctx, group)
                self.decisions += 1
            if failure is not None and len(placed) < request.min_instances:
                raise failure
            return self._selections(request, ctx, plan, allowed, placed, order)
        except GeneratorExit:
            raise  # abandoned: no one is left to answer the releases
        except BaseException:
            for row, _weight, uuid in reversed(placed):  # roll the batch back
                yield Release(row, uuid)
                states.remove_instance(uuid, row=row, group=group, io_ops=1)
            if failure is not None:
                self.failures += 1
            raise

    def _rank(self, request: RequestSpec, ctx: ScheduleContext, plan: Plan,
              allowed: BoolArray | None, need: int) -> Order | None:
        """The passing hosts in order, ``need`` of them at least known; None if none pass."""
        if plan.dense_at is not None:
            order = self._rank_short(request, ctx, plan, allowed, need)
            if order is not None:
                return order
        full = self._order(request, ctx, plan, allowed)
        if full is not None:
            full.choose_first(self.rng, self.config.host_subset_size)
        return full

    def _rank_short(self, request: RequestSpec, ctx: ScheduleContext, plan: Plan,
                    allowed: BoolArray | None, need: int) -> Order | None:
        """The order's first hosts from the shortlist, or None when it cannot tell."""
        states = self.states
        assert plan.dense_at is not None and plan.dense is not None
        own: list[Term | None] | None = None  # the plan's terms with the sparse ones
        for i, w, m in plan.sparse:
            sparse = w.sparse_weights(states, request, ctx)
            if sparse is None:
                if w.weights(states, request, ctx) is not None:
                    return None  # a dense weigher the shortlist cannot read
            elif len(sparse[0]):
                if own is None:
                    own = list(plan.dense_at)
                own[i] = self._sparse_term(w, sparse, m)
        terms: Sequence[Term | None] = plan.dense_at if own is None else own
        masks: list[BoolArray] = []
        for f in plan.dynamic:
            mask = f.mask(states, request, ctx)
            if mask is not None:
                masks.append(mask)
        if allowed is not None:
            masks.append(allowed)
        shortlist = plan.static.shortlist or self._shortlist(plan)
        if shortlist is None:
            return None
        got = shortlist.rank(states, self.planner.asks(request), masks, terms, plan.dense, need)
        if got is None:
            return None
        self.shortlisted += 1
        order = ListedOrder(got[0], got[1], lambda: self._order(request, ctx, plan, allowed))
        if self.config.host_subset_size > 1:
            order.choose_first(self.rng, self.config.host_subset_size)
        return order

    def _shortlist(self, plan: Plan) -> Shortlist | None:
        """A new shortlist for the plan's static mask; None (and no shortlist for this plan
        from now on) when the fleet is too small for one to pay."""
        size = self.shortlist_size
        entry = plan.static
        if size is None and self.states.n >= SHORTLIST_FROM:
            size = max(64, min(1024, int(4 * math.sqrt(self.states.n))))
        if not size:
            plan.dense_at = None  # weigh every host for this plan from now on
            return None
        entry.shortlist = Shortlist(entry.mask, size, self._columns, self._low)
        return entry.shortlist

    def _order(self, request: RequestSpec, ctx: ScheduleContext, plan: Plan,
               allowed: BoolArray | None) -> HostOrder | None:
        """The full passes: every host's mask and score (before ``choose_first``)."""
        states = self.states
        b = self._buffers
        if b.n != states.n:
            b = self._buffers = Buffers(states.n)
        b.fail_ready = b.passf_ready = False
        passing, scratch = b.passing, b.scratch
        first = True  # ResourceFit: room >= amount for each resource asked
        for amount, room in ((request.memory_mb, states.ram_room),
                             (request.vcpus, states.vcpu_room),
                             (request.disk_gb, states.disk_room)):
            if amount:
                if first:
                    np.greater_equal(room, amount, out=passing)
                    first = False
                else:
                    np.greater_equal(room, amount, out=scratch)
                    np.logical_and(passing, scratch, out=passing)
        if first:
            np.copyto(passing, states.present)
        static = plan.static.mask
        np.logical_and(passing, static, out=passing)
        if allowed is not None:
            np.logical_and(passing, allowed, out=passing)
        for f in plan.dynamic:
            mask = f.mask(states, request, ctx)
            if mask is not None:
                np.logical_and(passing, mask, out=passing)
        count = int(np.count_nonzero(passing))
        if not count:
            return None
        score = total_scores(plan.weighers, states, request, ctx, b, count)
        shuffle = self.config.shuffle_best_same_weighed_hosts
        key = id(static)
        if shuffle or key in self.planner.eager:
            np.copyto(score, -np.inf, where=b.failing())
            order = HostOrder(score, count)
        else:  # failing rows usually weigh little: skip the few that come up
            order = HostOrder(score, count, passing, b.failing, lambda: self.planner.eager.add(key))
        if shuffle:
            order.shuffle_best(self.rng, self.config.host_subset_size + self.config.max_attempts)
        return order

    def _selections(self, request: RequestSpec, ctx: ScheduleContext, plan: Plan,
                    allowed: BoolArray | None, placed: list[tuple[int, float, str | None]],
                    order: Order | None) -> list[Selection]:
        alternates: list[int] = []
        wanted = self.config.max_attempts - 1
        if wanted:
            chosen = {row for row, _w, _u in placed}
            if request.num_instances > 1:  # rank again with the whole batch placed, as Nova does
                order = self._rank(request, ctx, plan, allowed, wanted + len(chosen))
            if order is not None:
                alternates = order.rows(wanted, chosen)
        name = self.states.names  # rows that passed hold hosts
        names = tuple([name[r] for r in alternates])
        rows = tuple(alternates)
        return [Selection(uuid, name[row], row, weight, names, rows)  # type: ignore[arg-type]
                for row, weight, uuid in placed]

    def _sparse_term(self, weigher: HostWeigher, weights: tuple[IntArray, FloatArray],
                     mult: float) -> SparseTerm:
        """The weigher's SparseTerm: the same one while it hands out the same arrays."""
        term = self._terms.get(weigher)
        if term is None or term.rows is not weights[0] or term.values is not weights[1] or (
                term.mult != mult):
            term = self._terms[weigher] = SparseTerm(weights[0], weights[1], weigher.minval,
                                                     mult)
        return term

    def _allowed(self, offered: IntArray | None) -> BoolArray | None:
        if offered is None:
            return None
        allowed = np.zeros(self.states.n, dtype=np.bool_)
        allowed[offered] = True
        return allowed

    def _not_ignored(self, request: RequestSpec) -> BoolArray:
        """Present hosts but those the request ignores (unknown names ignore nothing)."""
        states = self.states
        keep = states.present.copy()
        for host in request.ignore_hosts:
            try:
                keep[states.index(host)] = False
            except NotFound:
                pass
        return keep

    def _group_into(self, ctx: ScheduleContext, group: str | None) -> None:
        if group is not None:
            members = self.states.group_members(group)
            ctx.group = members
            ctx.group_total = 0 if members is None else members.total

    # -- NoValidHost ---------------------------------------------------------------
    def _explain(self, request: RequestSpec, ctx: ScheduleContext, plan: Plan,
                 allowed: BoolArray | None, n: int) -> HostsFilteredOut:
        """Apply the steps one by one, counting what each removes, up to the one that
        leaves no host."""
        states = self.states
        alive = states.present.copy()
        steps: list[FilterStep] = []
        masks: list[tuple[str, BoolArray | None]] = [
            ("ResourceFit", ResourceFit(self.config).mask(states, request, ctx))]
        if request.ignore_hosts:  # Nova strips them before filtering
            masks.insert(0, ("IgnoreHosts", self._not_ignored(request)))
        if allowed is not None:
            masks.append(("Placement", allowed))
        for f in self.filters:
            if f.watches:
                masks.append((f.name, self.planner.filter_mask(f, f.cache_key(request), request)))
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
