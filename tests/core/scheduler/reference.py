"""The reference scheduler: the same filters and weighers as a plain loop over host objects.

This is the shape of Nova's FilterScheduler (one object per host, each filter
asked about each host, each weigher's list normalized and added up) and the
yardstick of the columnar scheduler: on the same fleet and requests, with the
same config and rng, both must pick the same hosts, alternates and weights,
and fail with the same message. It reuses only the per-host predicates of
core (extra-spec operators, capability lookup, image support, tenant lists),
which have unit tests of their own; masks, caches, normalization, ordering,
claims and batch bookkeeping are written again here, the slow obvious way.

A :class:`Fleet` describes hosts, aggregates and instances; it builds both a
:class:`HostStates` (through its public methods) and the reference hosts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from nimbus.core.errors import NoValidHost
from nimbus.core.scheduler import HostSpec, HostStates, HostUsage, RequestSpec, SchedulerConfig
from nimbus.core.scheduler.filters.aggregate_instance_extra_specs import (
    requirements as aggregate_requirements,
)
from nimbus.core.scheduler.filters.aggregate_instance_extra_specs import values_match
from nimbus.core.scheduler.filters.aggregate_multitenancy_isolation import tenants
from nimbus.core.scheduler.filters.compute_capabilities import requirements, satisfies
from nimbus.core.scheduler.filters.image_properties import (
    bits_ok,
    host_supports,
    version_satisfies,
    wanted,
)
from nimbus.core.scheduler.request import Selection


@dataclass
class FleetHost:
    spec: HostSpec
    usage: HostUsage = field(default_factory=HostUsage)
    up: bool = True
    disabled: bool = False


@dataclass
class Fleet:
    """Hosts (None for a removed one), aggregates (name, metadata, host names) and
    instances already running (host name, uuid, server group)."""

    hosts: list[FleetHost | None]
    aggregates: list[tuple[str, dict[str, str], list[str]]] = field(default_factory=list)
    instances: list[tuple[str, str, str | None]] = field(default_factory=list)

    def states(self, default_az: str = "nova") -> HostStates:
        states = HostStates(default_az=default_az)
        for agg in self.aggregates:
            states.set_aggregate(*agg)
        for i, h in enumerate(self.hosts):
            spec = h.spec if h is not None else HostSpec(f"gone{i}", 1, 1, 1)
            row = states.add_host(spec, h.usage if h else None, up=h.up if h else True,
                                  disabled=h.disabled if h else False)
            assert row == i
        for i, h in enumerate(self.hosts):
            if h is None:
                states.remove_host(i)
        by_host: dict[int, list[tuple[str, str | None]]] = {}
        for host, uuid, group in self.instances:
            by_host.setdefault(states.index(host), []).append((uuid, group))
        for row, listed in by_host.items():
            states.set_instances(row, listed)
        return states

    def reference_hosts(self, default_az: str = "nova") -> list[RefHost | None]:
        out: list[RefHost | None] = []
        member_sets = [(md, set(members)) for _name, md, members in self.aggregates]
        running: dict[str, list[tuple[str | None, str | None]]] = {}
        for host, uuid, group in self.instances:
            running.setdefault(host, []).append((uuid, group))
        for i, h in enumerate(self.hosts):
            if h is None:
                out.append(None)
                continue
            s, u = h.spec, h.usage
            out.append(RefHost(
                index=i, name=s.name, spec=s, vcpus_used=u.vcpus_used, ram_used=u.memory_mb_used,
                disk_used=u.disk_gb_used, num_instances=u.num_instances, io_ops=u.io_ops,
                failed_builds=u.failed_builds, up=h.up, disabled=h.disabled,
                az=s.availability_zone or default_az,
                aggregates=[md for md, members in member_sets if s.name in members],
                instances=list(running.get(s.name, []))))
        return out


@dataclass
class RefHost:
    """One host, as Nova's HostState: attributes, aggregates' metadata, instances."""

    index: int
    name: str
    spec: HostSpec
    vcpus_used: float
    ram_used: float
    disk_used: float
    num_instances: int
    io_ops: int
    failed_builds: int
    up: bool
    disabled: bool
    az: str
    aggregates: list[dict[str, str]]
    instances: list[tuple[str | None, str | None]]

    def consume(self, r: RequestSpec, uuid: str | None, sign: int = 1) -> None:
        """Nova's consume_from_request (sign 1) and its undo (sign -1)."""
        self.vcpus_used += sign * r.vcpus
        self.ram_used += sign * r.memory_mb
        self.disk_used += sign * r.disk_gb
        self.num_instances += sign
        self.io_ops += sign
        entry = (uuid, r.group.uuid if r.group else None)
        if sign > 0:
            self.instances.append(entry)
        else:
            self.instances.remove(entry)

    def members(self, group: str) -> int:
        return sum(1 for _uuid, g in self.instances if g == group)

    def capacity(self, total: float, reserved: float, ratio: float) -> float:
        return (total - reserved) * ratio

    def fits(self, r: RequestSpec) -> bool:
        s = self.spec
        for asked, total, reserved, ratio, used in (
                (r.vcpus, s.vcpus, s.vcpus_reserved, s.cpu_allocation_ratio, self.vcpus_used),
                (r.memory_mb, s.memory_mb, s.memory_mb_reserved, s.ram_allocation_ratio,
                 self.ram_used),
                (r.disk_gb, s.disk_gb, s.disk_gb_reserved, s.disk_allocation_ratio,
                 self.disk_used)):
            if asked and (used + asked > (total - reserved) * ratio or asked > total):
                return False
        return True


@dataclass
class Ctx:
    instance_uuid: str | None
    group_total: int = 0  # members of the request's group on any host


# -- filters: host -> bool ---------------------------------------------------------
def f_compute(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    return h.up and not h.disabled


def f_az(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    return not r.availability_zone or h.az == r.availability_zone


def f_capabilities(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    return satisfies(h.spec.capabilities(), requirements(r.extra_spec_dict()))


def f_image(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    props = r.image_property_dict()
    want = wanted(props, cfg.image_properties_default_architecture)
    if not any(want):
        return True
    supported = tuple(tuple(t) for t in h.spec.supported_instances)
    if not supported or not host_supports(supported, want):
        return False
    predicate = props.get("img_hv_requested_version")
    version = h.spec.hypervisor_version
    if predicate and version and not version_satisfies(version, predicate):
        return False
    return bits_ok(h.spec.capabilities(), props.get("hw_maxphysaddr_bits"))


def f_aggregate_specs(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    for key, requirement in aggregate_requirements(r.extra_spec_dict()):
        values = [md[key] for md in h.aggregates if key in md]
        if not any(values_match(v, requirement) for v in values):
            return False
    return True


def f_tenancy(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    allowed: set[str] = set()
    restricted = False
    for md in h.aggregates:
        t = tenants(md)
        if t is not None:
            restricted = True
            allowed |= t
    return not restricted or r.project_id in allowed


def f_affinity(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    g = r.group
    return g is None or g.policy != "affinity" or not c.group_total or h.members(g.uuid) > 0


def f_anti_affinity(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    g = r.group
    if g is None or g.policy != "anti-affinity":
        return True
    if c.instance_uuid is not None and any(u == c.instance_uuid for u, _g in h.instances):
        return True
    return h.members(g.uuid) < g.max_server_per_host


def f_same_host(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    wanted_uuids = set(r.hint("same_host"))
    return not wanted_uuids or any(u in wanted_uuids for u, _g in h.instances)


def f_different_host(h: RefHost, r: RequestSpec, c: Ctx, cfg: SchedulerConfig) -> bool:
    avoid = set(r.hint("different_host"))
    return not any(u in avoid for u, _g in h.instances)


FilterFn = Callable[[RefHost, RequestSpec, Ctx, SchedulerConfig], bool]
FILTERS: dict[str, FilterFn] = {
    "ComputeFilter": f_compute, "AvailabilityZoneFilter": f_az,
    "ComputeCapabilitiesFilter": f_capabilities, "ImagePropertiesFilter": f_image,
    "AggregateInstanceExtraSpecsFilter": f_aggregate_specs,
    "AggregateMultiTenancyIsolation": f_tenancy, "ServerGroupAffinityFilter": f_affinity,
    "ServerGroupAntiAffinityFilter": f_anti_affinity, "SameHostFilter": f_same_host,
    "DifferentHostFilter": f_different_host,
}


# -- weighers: (raw weight fn, config option, minval, negate) -----------------------------
def _soft(policy: str, sign: int) -> Callable[[RefHost, RequestSpec], float]:
    def weigh(h: RefHost, r: RequestSpec) -> float:
        g = r.group
        return 0.0 if g is None or g.policy != policy else float(sign * h.members(g.uuid))
    return weigh


WEIGHERS: dict[str, tuple[Callable[[RefHost, RequestSpec], float], str, float | None, bool]] = {
    "RAMWeigher": (lambda h, r: h.spec.memory_mb - h.spec.memory_mb_reserved - h.ram_used,
                   "ram_weight_multiplier", 0.0, False),
    "CPUWeigher": (lambda h, r: h.spec.vcpus * h.spec.cpu_allocation_ratio - h.vcpus_used,
                   "cpu_weight_multiplier", 0.0, False),
    "DiskWeigher": (lambda h, r: h.spec.disk_gb - h.spec.disk_gb_reserved - h.disk_used,
                    "disk_weight_multiplier", 0.0, False),
    "IoOpsWeigher": (lambda h, r: h.io_ops, "io_ops_weight_multiplier", 0.0, False),
    "ServerGroupSoftAffinityWeigher": (_soft("soft-affinity", 1),
                                       "soft_affinity_weight_multiplier", None, False),
    "ServerGroupSoftAntiAffinityWeigher": (_soft("soft-anti-affinity", -1),
                                           "soft_anti_affinity_weight_multiplier", None, False),
    "BuildFailureWeigher": (lambda h, r: h.failed_builds,
                            "build_failure_weight_multiplier", None, True),
}


def host_multiplier(h: RefHost, option: str, default: float) -> float:
    """Nova's get_weight_multiplier: the smallest aggregate value, else the default."""
    values = {md[option] for md in h.aggregates if option in md}
    if not values:
        return default
    try:
        return min(float(v) for v in values)
    except ValueError:
        return default


def normalize(weights: list[float], minval: float | None) -> list[float]:
    """Nova's normalize: to [0, 1] between minval (or the minimum) and the maximum
    (times the inverse of the span where Nova divides by it; see core's weighing)."""
    hi = float(max(weights))
    lo = float(min(weights)) if minval is None else float(minval)
    if lo == hi:
        return [0.0] * len(weights)
    inv = 1.0 / (hi - lo)
    return [(w - lo) * inv for w in weights]


class ReferenceScheduler:
    """select_destinations as a loop over RefHost objects (no claimer: claims always fit)."""

    def __init__(self, hosts: list[RefHost | None], config: SchedulerConfig,
                 rng: random.Random) -> None:
        self.hosts = hosts
        self.config = config
        self.rng = rng

    def weighed(self, passed: list[RefHost], r: RequestSpec) -> list[tuple[RefHost, float]]:
        totals = [0.0] * len(passed)
        if len(passed) > 1:
            for name in self.config.weighers:
                fn, option, minval, negate = WEIGHERS[name]
                raw = [fn(h, r) for h in passed]
                if minval is not None:
                    raw = [max(w, minval) for w in raw]
                for i, w in enumerate(normalize(raw, minval)):
                    m = host_multiplier(passed[i], option, self.config.multiplier(option))
                    totals[i] += (-m if negate else m) * w
        pairs = list(zip(passed, totals, strict=True))
        return sorted(pairs, key=lambda p: p[1], reverse=True)  # stable: row order on ties

    def ordered(self, passed: list[RefHost], r: RequestSpec) -> list[tuple[RefHost, float]]:
        order = self.weighed(passed, r)
        cfg = self.config
        if cfg.shuffle_best_same_weighed_hosts and order:
            best = order[0][1]
            ties = [p for p in order if p[1] == best]
            k = min(cfg.host_subset_size + cfg.max_attempts, len(ties))
            picks = self.rng.sample(range(len(ties)), k)
            first = [ties[j] for j in picks]
            taken = {id(p[0]) for p in first}
            order = first + [p for p in order if id(p[0]) not in taken]
        if cfg.host_subset_size > 1:
            size = min(cfg.host_subset_size, len(order))
            if size > 1:
                order.insert(0, order.pop(self.rng.randrange(size)))
        return order

    def passing(self, r: RequestSpec, c: Ctx) -> tuple[list[RefHost], list[str]]:
        """Hosts passing every step, and the steps' report as the columnar one words it."""
        g = r.group
        c.group_total = sum(h.members(g.uuid) for h in self.hosts if h) if g else 0
        alive = [h for h in self.hosts if h is not None]
        steps: list[tuple[str, Callable[[RefHost], bool]]] = [("ResourceFit", lambda h: h.fits(r))]
        def bound(fn: FilterFn) -> Callable[[RefHost], bool]:
            return lambda h: fn(h, r, c, self.config)

        steps += [(name, bound(FILTERS[name])) for name in self.config.enabled_filters]
        report = []
        for name, keep in steps:
            before = len(alive)
            alive = [h for h in alive if keep(h)]
            report.append(f"{name} removed {before - len(alive)} of {before} hosts")
            if not alive:
                break
        return alive, report

    def select_destinations(self, r: RequestSpec) -> list[Selection]:
        if not any(self.hosts):
            raise NoValidHost("No valid host was found: there are no compute hosts")
        placed: list[tuple[RefHost, float, str | None]] = []
        order: list[tuple[RefHost, float]] = []
        failure = None
        c = Ctx(None)
        for n in range(r.num_instances):
            c.instance_uuid = r.instance_uuid(n)
            passed, report = self.passing(r, c)
            if not passed:
                failure = NoValidHost(f"No valid host was found for instance {n + 1} of "
                                      f"{r.num_instances}: {'; '.join(report)}")
                break
            order = self.ordered(passed, r)
            host, weight = order[0]
            assert host.fits(r)
            host.consume(r, c.instance_uuid)
            placed.append((host, weight, c.instance_uuid))
        if failure is not None and len(placed) < r.min_instances:
            for host, _w, uuid in reversed(placed):
                host.consume(r, uuid, -1)
            raise failure
        wanted = self.config.max_attempts - 1
        alternates: list[RefHost] = []
        if wanted:
            if r.num_instances > 1:
                passed, _ = self.passing(r, c)
                order = self.ordered(passed, r) if passed else []
            chosen = {id(h) for h, _w, _u in placed}
            alternates = [h for h, _w in order if id(h) not in chosen][:wanted]
        return [Selection(u, h.name, h.index, w, tuple(a.name for a in alternates),
                          tuple(a.index for a in alternates)) for h, w, u in placed]
