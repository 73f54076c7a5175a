"""The workload of a simulation: when instances arrive, what they are, how long they live.

:func:`arrivals` turns a scenario's ``[workload]`` into a lazy, time-ordered stream
of :class:`Arrival` records: synthetic (a Poisson or diurnal arrival process with
drawn lifetimes, projects, flavors, server groups and actions) or read from a
trace file (:mod:`nimbus.sim.traces`). Every draw comes from the ``random.Random``
passed in, in a fixed order, so one seed gives one workload.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nimbus.sim.scenario import (
    Exponential,
    Fixed,
    Flavor,
    Lifetime,
    Lognormal,
    Pareto,
    Scenario,
    Workload,
)

#: The actions an instance may take once ACTIVE, in the order their chances are drawn.
ACTIONS: tuple[str, ...] = ("resize", "migrate", "stop_start", "reboot")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One instance to boot at virtual time ``t``.

    ``lifetime`` is seconds from the request to the delete (None: it lives to the
    end of the run). Members of one server group share ``group`` (an id unique to
    that group) and ``group_policy``. ``action`` (None, or one of :data:`ACTIONS`)
    happens at ``action_at`` (a fraction of the lifetime, in (0, 1));
    ``resize_to`` names the new flavor of a resize.
    """

    t: float
    project: str
    flavor: str
    lifetime: float | None
    group: int | None = None
    group_policy: str | None = None
    action: str | None = None
    action_at: float = 0.0
    resize_to: str | None = None


def _fast_arrival() -> Callable[..., Arrival]:
    """``Arrival(...)`` at a third of the cost, for the millions a run may draw.

    A frozen dataclass's ``__init__`` writes each field through
    ``object.__setattr__``; writing the slots through their descriptors makes the
    same object (equal, hashable, still frozen to callers).
    """
    new = object.__new__
    s_t, s_p, s_f, s_l, s_g, s_gp, s_a, s_at, s_r = (
        getattr(Arrival, name).__set__ for name in Arrival.__slots__)

    def make(t: float, project: str, flavor: str, lifetime: float | None, group: int | None,
             group_policy: str | None, action: str | None, action_at: float,
             resize_to: str | None) -> Arrival:
        a = new(Arrival)
        s_t(a, t)
        s_p(a, project)
        s_f(a, flavor)
        s_l(a, lifetime)
        s_g(a, group)
        s_gp(a, group_policy)
        s_a(a, action)
        s_at(a, action_at)
        s_r(a, resize_to)
        return a

    return make


new_arrival = _fast_arrival()


class Picker:
    """Draws one name by weight, with one ``rng.random()`` per draw."""

    __slots__ = ("_cum", "_last", "_names", "_total")

    def __init__(self, names: Sequence[str], weights: Sequence[float]) -> None:
        pairs = [(n, w) for n, w in zip(names, weights, strict=True) if w > 0]
        if not pairs:
            raise ValueError("no name has a weight above 0")
        self._names = [n for n, _ in pairs]
        self._cum: list[float] = []
        total = 0.0
        for _, w in pairs:
            total += w
            self._cum.append(total)
        self._total = total
        self._last = len(self._names) - 1

    @property
    def names(self) -> list[str]:
        """The names that can be drawn (weight above 0), in order."""
        return list(self._names)

    def __call__(self, rng: random.Random) -> str:
        i = bisect.bisect_right(self._cum, rng.random() * self._total)
        return self._names[i if i < self._last else self._last]


def project_picker(scenario: Scenario) -> Picker:
    """Projects drawn by their ``share``."""
    return Picker([p.name for p in scenario.projects], [p.share for p in scenario.projects])


def flavor_picker(workload: Workload, flavors: Sequence[Flavor]) -> Picker:
    """Flavors drawn by ``flavor_mix`` (every flavor alike when the mix is empty)."""
    if workload.flavor_mix:
        return Picker(list(workload.flavor_mix), list(workload.flavor_mix.values()))
    return Picker([f.name for f in flavors], [1.0] * len(flavors))


def lifetime_sampler(lifetime: Lifetime, rng: random.Random) -> Callable[[], float]:
    """A function drawing one lifetime (seconds) from ``rng`` per call."""
    if isinstance(lifetime, Lognormal):
        mu, sigma, gauss, exp = math.log(lifetime.median), lifetime.sigma, rng.gauss, math.exp
        return lambda: exp(gauss(mu, sigma))
    if isinstance(lifetime, Pareto):
        scale, shape = lifetime.scale, lifetime.shape
        return lambda: scale * rng.paretovariate(shape)
    if isinstance(lifetime, Exponential):
        lam = 1.0 / lifetime.mean
        return lambda: rng.expovariate(lam)
    assert isinstance(lifetime, Fixed)
    seconds = lifetime.seconds
    return lambda: seconds


class ActionDrawer:
    """Draws at most one action per instance, from ``[workload.actions]``.

    The chances form a categorical with "none" taking the rest when they sum
    below 1; above 1 they are scaled to sum to 1. A resize goes to another
    flavor of the mix, drawn by weight; with one flavor in the mix there is no
    resize (its chance counts as "none").
    """

    __slots__ = ("_cum", "_mix", "_resize_to")

    def __init__(self, workload: Workload, flavors: Picker) -> None:
        acts = workload.actions
        chances = [acts.resize, acts.migrate, acts.stop_start, acts.reboot]
        total = sum(chances)
        scale = 1.0 / total if total > 1.0 else 1.0
        if len(flavors.names) < 2:
            chances[0] = 0.0
        self._cum: list[float] = []
        run = 0.0
        for c in chances:
            run += c * scale
            self._cum.append(run)
        self._mix = {n: workload.flavor_mix.get(n, 1.0) for n in flavors.names}
        self._resize_to: dict[str, Picker] = {}

    @property
    def active(self) -> bool:
        """Whether any action can be drawn at all."""
        return self._cum[-1] > 0.0

    def draw(self, rng: random.Random, flavor: str) -> tuple[str | None, float, str | None]:
        """``(action, action_at, resize_to)`` for one instance of ``flavor``."""
        i = bisect.bisect_right(self._cum, rng.random())
        if i >= len(ACTIONS):
            return None, 0.0, None
        at = rng.random()
        while at == 0.0:  # action_at lies in (0, 1)
            at = rng.random()
        if i == 0:
            return "resize", at, self._resize_picker(flavor)(rng)
        return ACTIONS[i], at, None

    def _resize_picker(self, flavor: str) -> Picker:
        """The mix without ``flavor`` (a trace flavor may be outside the mix)."""
        picker = self._resize_to.get(flavor)
        if picker is None:
            others = [n for n in self._mix if n != flavor]
            picker = self._resize_to[flavor] = Picker(others, [self._mix[n] for n in others])
        return picker


def arrivals(scenario: Scenario, rng: random.Random,
             base_dir: Path | None = None) -> Iterator[Arrival]:
    """The scenario's arrivals, in time order (ties keep their drawn order).

    A trace workload's file is found relative to ``base_dir`` (default: the
    directory of the scenario file).
    """
    if scenario.workload.kind == "trace":
        from nimbus.sim.traces import trace_arrivals  # traces imports this module

        return trace_arrivals(scenario, rng, base_dir)
    return synthetic_arrivals(scenario, rng)


def synthetic_arrivals(scenario: Scenario, rng: random.Random) -> Iterator[Arrival]:
    """Arrivals of a synthetic workload, drawn lazily.

    Arrival events come as a Poisson process of ``rate`` per second, or for
    ``diurnal`` as a non-homogeneous one (thinning) whose rate follows
    ``rate * (m + (1 - m) * (1 - cos(2 pi t / period)) / 2)`` with
    ``m = 1 / peak_ratio``: the trough at t = 0, the peak at half a period. An
    event is a server group of ``groups.size`` members with chance
    ``groups.share``, else one instance. The stream stops after ``count``
    instances (the last group cut to fit) or at ``duration``, whichever is first.
    """
    w = scenario.workload
    flavors = flavor_picker(w, scenario.flavors)
    projects = project_picker(scenario)
    lifetime = lifetime_sampler(w.lifetime, rng)
    actions = ActionDrawer(w, flavors)
    acting = actions.active
    count = w.count if w.count > 0 else sys.maxsize
    end = w.duration if w.duration > 0 else math.inf
    rate, diurnal = w.rate, w.arrival == "diurnal"
    trough, omega = 1.0 / w.peak_ratio, 2.0 * math.pi / w.period
    group_share, size, policy = w.groups.share, w.groups.size, w.groups.policy
    uniform, log = rng.random, math.log
    t, made, group_id = 0.0, 0, 0
    while made < count:
        t -= log(1.0 - uniform()) / rate  # an exponential gap, as rng.expovariate draws it
        if diurnal:
            while uniform() > trough + (1.0 - trough) * 0.5 * (1.0 - math.cos(omega * t)):
                t -= log(1.0 - uniform()) / rate
        if t >= end:
            return
        grouped = group_share > 0.0 and uniform() < group_share
        project = projects(rng)
        flavor = flavors(rng)
        members = min(size, count - made) if grouped else 1
        for _ in range(members):
            action, at, resize_to = actions.draw(rng, flavor) if acting else (None, 0.0, None)
            yield new_arrival(t, project, flavor, lifetime(),
                              group_id if grouped else None, policy if grouped else None,
                              action, at, resize_to)
        made += members
        if grouped:
            group_id += 1


def flavor_for(vcpus: int, memory_mb: int, flavors: Sequence[Flavor]) -> str:
    """The smallest scenario flavor with at least ``vcpus`` and ``memory_mb`` (fewest
    vcpus, then least memory, then the first listed); none fits: the ad-hoc name
    ``trace-<vcpus>c-<memory_mb>m``, a flavor the engine creates for the run."""
    best: Flavor | None = None
    for f in flavors:
        if f.vcpus >= vcpus and f.memory_mb >= memory_mb and (
                best is None or (f.vcpus, f.memory_mb) < (best.vcpus, best.memory_mb)):
            best = f
    return best.name if best is not None else f"trace-{vcpus}c-{memory_mb}m"


_ADHOC = re.compile(r"trace-([0-9]+)c-([0-9]+)m")


def adhoc_flavor(name: str) -> tuple[int, int]:
    """``(vcpus, memory_mb)`` of an ad-hoc flavor name made by :func:`flavor_for`;
    ValueError for any other name."""
    m = _ADHOC.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not an ad-hoc trace flavor (trace-<vcpus>c-<memory_mb>m)")
    return int(m.group(1)), int(m.group(2))
