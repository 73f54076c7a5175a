"""What a capacity simulation runs: a scenario file (TOML), parsed and checked.

A scenario names the fleet (host classes), the flavors, the projects and their
quotas, the workload (synthetic or a trace file), the scheduler settings, the
transport's latency, the fake driver's timings and the faults. Every table and
key is described in ``sim/scenarios/README.md``; :func:`load` turns a file into
a :class:`Scenario` or raises :class:`ScenarioError` naming the key at fault.
Times are virtual seconds from the start of the run.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from nimbus.core.errors import ConfigError


class ScenarioError(ConfigError):
    """A scenario that cannot be run, with the file and key at fault."""


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of the scenario file (unknown keys are errors)."""


class HostClass(_Spec, frozen=True):
    """``[[hosts]]``: ``count`` identical hosts, named ``<name>-<n>``."""

    name: str
    count: int
    vcpus: int
    memory_mb: int
    disk_gb: int = 1000
    #: zones the hosts are spread over, round-robin (none: the default zone)
    availability_zones: tuple[str, ...] = ()
    #: aggregates (host aggregates with no metadata) every host of the class joins
    aggregates: tuple[str, ...] = ()
    #: hosts per rack; racks are named ``<name>-rack<n>`` (for rack outages)
    rack_size: int = 20
    cpu_allocation_ratio: float = 1.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 0
    #: mean seconds between crashes of one host (0: it never crashes)
    mtbf: float = 0.0
    #: mean seconds to repair a crashed host
    mttr: float = 3600.0


class Flavor(_Spec, frozen=True):
    """``[[flavors]]``."""

    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int = 0
    extra_specs: dict[str, str] = {}


class Project(_Spec, frozen=True):
    """``[[projects]]``: a tenant, its quotas (-1: unlimited) and its share of the
    synthetic workload."""

    name: str
    share: float = 1.0
    instances: int = -1
    cores: int = -1
    ram: int = -1
    server_groups: int = -1
    server_group_members: int = -1


class Lognormal(_Spec, tag="lognormal", tag_field="distribution", frozen=True):
    """Lifetimes whose logarithm is normal: ``median`` seconds, spread ``sigma``."""

    median: float
    sigma: float = 1.0


class Pareto(_Spec, tag="pareto", tag_field="distribution", frozen=True):
    """Heavy-tailed lifetimes: at least ``scale`` seconds, tail index ``shape``."""

    scale: float
    shape: float = 1.5


class Exponential(_Spec, tag="exponential", tag_field="distribution", frozen=True):
    """Memoryless lifetimes with the given ``mean``."""

    mean: float


class Fixed(_Spec, tag="fixed", tag_field="distribution", frozen=True):
    """Every instance lives ``seconds``."""

    seconds: float


Lifetime = Lognormal | Pareto | Exponential | Fixed


class Groups(_Spec, frozen=True):
    """``[workload.groups]``: a ``share`` of arrivals come as server groups of ``size``."""

    share: float = 0.0
    size: int = 3
    policy: Literal["affinity", "anti-affinity", "soft-affinity",
                    "soft-anti-affinity"] = "anti-affinity"


class Actions(_Spec, frozen=True):
    """``[workload.actions]``: the chance that an instance, once ACTIVE, is resized
    (to another flavor of the mix, then confirmed), cold-migrated (then confirmed),
    stopped and started again, or rebooted, at a uniformly drawn moment of its life."""

    resize: float = 0.0
    migrate: float = 0.0
    stop_start: float = 0.0
    reboot: float = 0.0


class Workload(_Spec, frozen=True):
    """``[workload]``: synthetic arrivals, or a trace file."""

    kind: Literal["synthetic", "trace"] = "synthetic"
    #: synthetic: ``poisson`` (constant ``rate``) or ``diurnal`` (a sine of ``period``
    #: between ``rate / peak_ratio`` and ``rate``)
    arrival: Literal["poisson", "diurnal"] = "poisson"
    #: mean arrivals per second (the peak rate for ``diurnal``)
    rate: float = 1.0
    peak_ratio: float = 3.0
    period: float = 86400.0
    #: how many arrivals (synthetic), or the most rows read (trace; 0: all)
    count: int = 0
    #: synthetic: arrivals stop at this time (0: after ``count``)
    duration: float = 0.0
    lifetime: Lifetime = Lognormal(median=3600.0)
    #: flavor name -> weight (default: every flavor alike)
    flavor_mix: dict[str, float] = {}
    groups: Groups = Groups()
    actions: Actions = Actions()
    #: trace: the file (relative to the scenario file) and its layout
    trace: str = ""
    format: Literal["csv", "azure"] = "csv"
    #: trace: multiply trace times by this (0.1: ten times faster)
    time_scale: float = 1.0


class Scheduler(_Spec, frozen=True):
    """``[scheduler]``: ``[filter_scheduler]`` settings, as ``nimbus serve`` takes them."""

    enabled_filters: tuple[str, ...] | None = None
    weighers: tuple[str, ...] | None = None
    ram_weight_multiplier: float | None = None
    cpu_weight_multiplier: float | None = None
    disk_weight_multiplier: float | None = None
    io_ops_weight_multiplier: float | None = None
    soft_affinity_weight_multiplier: float | None = None
    soft_anti_affinity_weight_multiplier: float | None = None
    build_failure_weight_multiplier: float | None = None
    host_subset_size: int | None = None
    max_attempts: int | None = None
    shuffle_best_same_weighed_hosts: bool | None = None
    placement_prefilter: bool | None = None

    def settings(self) -> dict[str, Any]:
        """The keys the scenario sets (the rest keep their defaults)."""
        return {name: getattr(self, name) for name in self.__struct_fields__
                if getattr(self, name) is not None}


class Transport(_Spec, frozen=True):
    """``[transport]``: how long a message takes between services."""

    latency: Literal["constant", "lognormal"] = "constant"
    #: seconds (constant), or the median (lognormal)
    seconds: float = 0.0005
    sigma: float = 0.5


class Compute(_Spec, frozen=True):
    """``[compute]``: the periods of the compute hosts' and the conductor's work, as
    ``nimbus serve`` takes them (a bigger fleet over a longer time may stretch them:
    each heartbeat and resource audit is a message and database work, as in Nova)."""

    report_interval: float = 10.0
    update_resources_interval: float = 60.0
    sync_power_state_interval: float = 600.0
    #: seconds between a host's other periodic tasks (unconfirmed resizes, build
    #: timeouts, reclaiming soft deletes)
    periodic_interval: float = 60.0
    #: a host whose last heartbeat is older than this is down (``service_down_time``)
    service_down_time: float = 60.0
    #: a resized or migrated server is confirmed by its user this long after it is
    #: ready (VERIFY_RESIZE)
    confirm_after: float = 10.0
    #: seconds between the simulated users' polls of a server they wait on
    poll_interval: float = 1.0
    #: seconds a host's usage report waits so that the instance changes of that time
    #: share it (``[compute] usage_report_delay``; 0: every change reports)
    usage_report_delay: float = 0.0


class Driver(_Spec, frozen=True):
    """``[driver]``: the fake hypervisor's timings (seconds, or ``{mean, jitter}``
    tables) and failure rates per operation, as the ``[fake_driver]`` section."""

    timings: dict[str, Any] = {}
    default_timing: Any = 0.0
    failure_rates: dict[str, float] = {}


class HostCrash(_Spec, tag="host_crash", tag_field="kind", frozen=True):
    """Hosts stop at ``at`` (their guests are lost) and come back ``repair`` later
    (0: never). ``hosts`` names them, or ``count`` random ones are taken."""

    at: float
    hosts: tuple[str, ...] = ()
    count: int = 0
    repair: float = 0.0


class RackOutage(_Spec, tag="rack_outage", tag_field="kind", frozen=True):
    """Every host of ``rack`` stops at ``at`` for ``duration`` seconds (0: for good)."""

    at: float
    rack: str
    duration: float = 0.0


class ZoneOutage(_Spec, tag="zone_outage", tag_field="kind", frozen=True):
    """Every host of availability zone ``zone`` stops at ``at`` for ``duration``."""

    at: float
    zone: str
    duration: float = 0.0


class MessageFault(_Spec, tag="messages", tag_field="kind", frozen=True):
    """From ``at`` for ``duration`` seconds, messages to topics starting with ``topic``
    (empty: every one) are lost, delayed by ``delay`` or duplicated, with ``probability``."""

    at: float = 0.0
    duration: float = 0.0
    effect: Literal["loss", "delay", "duplicate"] = "loss"
    probability: float = 0.01
    delay: float = 1.0
    topic: str = ""


class SlowDatabase(_Spec, tag="slow_database", tag_field="kind", frozen=True):
    """From ``at`` for ``duration`` seconds every database transaction takes ``delay``
    seconds more."""

    at: float = 0.0
    duration: float = 0.0
    delay: float = 0.05


class DriverFailures(_Spec, tag="driver_failures", tag_field="kind", frozen=True):
    """From ``at`` for ``duration`` seconds the hypervisor operations fail at ``rates``
    (operation name -> probability) on ``hosts`` (default: every host)."""

    at: float = 0.0
    duration: float = 0.0
    rates: dict[str, float] = {}
    hosts: tuple[str, ...] = ()


Fault = HostCrash | RackOutage | ZoneOutage | MessageFault | SlowDatabase | DriverFailures


class Scenario(_Spec, frozen=True, kw_only=True):
    """A whole scenario file."""

    name: str = "scenario"
    description: str = ""
    seed: int = 0
    hosts: tuple[HostClass, ...]
    flavors: tuple[Flavor, ...]
    projects: tuple[Project, ...] = (Project(name="demo"),)
    workload: Workload = Workload()
    scheduler: Scheduler = Scheduler()
    transport: Transport = Transport()
    compute: Compute = Compute()
    driver: Driver = Driver()
    faults: tuple[Fault, ...] = ()
    #: seconds of virtual time between samples of utilization and queues
    sample_interval: float = 60.0
    #: check the invariants every this many virtual seconds too (0: at the end only)
    check_interval: float = 0.0
    #: stop the run at this virtual time even if lifecycles remain (0: run them all)
    horizon: float = 0.0
    #: where the scenario came from (set by :func:`load`; trace paths are relative to it)
    path: str = ""


def load(path: str | Path) -> Scenario:
    """The scenario in TOML file ``path``; :class:`ScenarioError` if it is not valid."""
    where = Path(path)
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{where}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: not valid TOML: {exc}") from None
    return parse(data, str(where))


def parse(data: Mapping[str, Any], path: str = "<scenario>") -> Scenario:
    """Check ``data`` (a parsed scenario file) and return it as a :class:`Scenario`."""
    try:
        scenario = msgspec.convert({**data, "path": path}, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{path}: {_where(str(exc))}") from None
    problems = check(scenario)
    if problems:
        raise ScenarioError(f"{path}: " + "; ".join(problems))
    return scenario


def _where(message: str) -> str:
    """msgspec's ``... - at `$.hosts[0].vcpus``` as ``hosts[0].vcpus: ...``."""
    text, sep, at = message.rpartition(" - at `")
    if not sep:
        return message
    return f"{at.rstrip('`').removeprefix('$.')}: {text}"


def check(s: Scenario) -> list[str]:
    """What is wrong with ``s`` beyond types: counts, names, references, ranges."""
    out: list[str] = []

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            out.append(f"{where}: {what}")

    need(bool(s.hosts), "hosts", "at least one host class is needed")
    need(bool(s.flavors), "flavors", "at least one flavor is needed")
    need(bool(s.projects), "projects", "at least one project is needed")
    _unique(out, "hosts", [h.name for h in s.hosts])
    _unique(out, "flavors", [f.name for f in s.flavors])
    _unique(out, "projects", [p.name for p in s.projects])
    for i, h in enumerate(s.hosts):
        w = f"hosts[{i}]"
        need(h.count >= 1, f"{w}.count", "must be 1 or more")
        for key in ("vcpus", "memory_mb", "rack_size"):
            need(getattr(h, key) >= 1, f"{w}.{key}", "must be 1 or more")
        need(h.disk_gb >= 0 and h.reserved_host_memory_mb >= 0, w,
             "disk_gb and reserved_host_memory_mb must be 0 or more")
        for key in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
            need(getattr(h, key) > 0, f"{w}.{key}", "must be above 0")
        need(h.mtbf >= 0 and h.mttr > 0, w, "mtbf must be 0 or more and mttr above 0")
    for i, f in enumerate(s.flavors):
        need(f.vcpus >= 1 and f.memory_mb >= 1 and f.disk_gb >= 0, f"flavors[{i}]",
             "vcpus and memory_mb must be 1 or more, disk_gb 0 or more")
    for i, p in enumerate(s.projects):
        need(p.share >= 0, f"projects[{i}].share", "must be 0 or more")
        for key in ("instances", "cores", "ram", "server_groups", "server_group_members"):
            need(getattr(p, key) >= -1, f"projects[{i}].{key}", "must be -1 (unlimited) or more")
    need(sum(p.share for p in s.projects) > 0, "projects", "some project needs a share above 0")
    _check_workload(s, need)
    _check_faults(s, need)
    need(s.sample_interval > 0, "sample_interval", "must be above 0")
    need(s.check_interval >= 0 and s.horizon >= 0, "check_interval/horizon", "must be 0 or more")
    for key in Compute.__struct_fields__:
        if key != "usage_report_delay":
            need(getattr(s.compute, key) > 0, f"compute.{key}", "must be above 0")
    need(s.compute.usage_report_delay >= 0, "compute.usage_report_delay", "must be 0 or more")
    need(s.transport.seconds >= 0 and s.transport.sigma >= 0, "transport",
         "seconds and sigma must be 0 or more")
    return out


def _unique(out: list[str], where: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            out.append(f"{where}: the name {name!r} is used twice")
        seen.add(name)


def _check_workload(s: Scenario, need: Any) -> None:
    w = s.workload
    flavors = {f.name for f in s.flavors}
    for name, weight in w.flavor_mix.items():
        need(name in flavors, f"workload.flavor_mix.{name}", "no such flavor")
        need(weight >= 0, f"workload.flavor_mix.{name}", "a weight must be 0 or more")
    need(not w.flavor_mix or sum(w.flavor_mix.values()) > 0, "workload.flavor_mix",
         "some flavor needs a weight above 0")
    if w.kind == "synthetic":
        need(w.rate > 0, "workload.rate", "must be above 0")
        need(w.count > 0 or w.duration > 0, "workload",
             "a synthetic workload needs count or duration")
        need(w.peak_ratio >= 1 and w.period > 0, "workload",
             "peak_ratio must be 1 or more and period above 0")
    else:
        need(bool(w.trace), "workload.trace", "a trace workload needs the file")
    need(w.count >= 0 and w.duration >= 0 and w.time_scale > 0, "workload",
         "count and duration must be 0 or more, time_scale above 0")
    lt = w.lifetime
    positive = {Lognormal: ("median",), Pareto: ("scale", "shape"),
                Exponential: ("mean",), Fixed: ("seconds",)}[type(lt)]
    for key in positive:
        value = getattr(lt, key)
        need(value > 0 and math.isfinite(value), f"workload.lifetime.{key}", "must be above 0")
    need(0 <= w.groups.share <= 1 and w.groups.size >= 1, "workload.groups",
         "share must be in [0, 1] and size 1 or more")
    for key in Actions.__struct_fields__:
        need(0 <= getattr(w.actions, key) <= 1, f"workload.actions.{key}",
             "must be a probability in [0, 1]")


def _check_faults(s: Scenario, need: Any) -> None:
    hosts = {f"{h.name}-{n}" for h in s.hosts for n in range(h.count)}
    racks = {f"{h.name}-rack{r}" for h in s.hosts
             for r in range((h.count + h.rack_size - 1) // h.rack_size)}
    zones = {z for h in s.hosts for z in h.availability_zones}
    for i, f in enumerate(s.faults):
        w = f"faults[{i}]"
        need(getattr(f, "at", 0.0) >= 0, f"{w}.at", "must be 0 or more")
        if isinstance(f, HostCrash):
            for name in f.hosts:
                need(name in hosts, f"{w}.hosts", f"no host {name!r}")
            need(bool(f.hosts) != (f.count > 0), w, "name hosts or give a count, not both")
            need(f.count <= len(hosts), f"{w}.count", "more hosts than the fleet has")
        elif isinstance(f, RackOutage):
            need(f.rack in racks, f"{w}.rack", f"no rack {f.rack!r}")
        elif isinstance(f, ZoneOutage):
            need(f.zone in zones, f"{w}.zone", f"no availability zone {f.zone!r}")
        elif isinstance(f, MessageFault):
            need(0 <= f.probability <= 1, f"{w}.probability", "must be in [0, 1]")
            need(f.delay >= 0, f"{w}.delay", "must be 0 or more")
        elif isinstance(f, SlowDatabase):
            need(f.delay >= 0, f"{w}.delay", "must be 0 or more")
        elif isinstance(f, DriverFailures):
            for op, p in f.rates.items():
                need(0 <= p <= 1, f"{w}.rates.{op}", "must be a probability in [0, 1]")
            for name in f.hosts:
                need(name in hosts, f"{w}.hosts", f"no host {name!r}")


def host_names(h: HostClass) -> list[str]:
    """The hosts of a class, in order."""
    return [f"{h.name}-{n}" for n in range(h.count)]


def rack_of(h: HostClass, n: int) -> str:
    """The rack of the ``n``-th host of class ``h``."""
    return f"{h.name}-rack{n // h.rack_size}"


def zone_of(h: HostClass, n: int, default: str = "nova") -> str:
    """The availability zone of the ``n``-th host of class ``h``."""
    zones = h.availability_zones
    return zones[n % len(zones)] if zones else default
