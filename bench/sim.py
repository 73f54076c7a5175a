"""Capacity simulation speed: instance lifecycles per second of wall time, fleet sized.

    nimbus bench sim [--hosts N] [--lifecycles N] [--baseline-hosts N] [--busy F]
                     [--lifetime S] [--lifetimes fixed|exponential|lognormal] [--seed S]
                     [--no-prefilter] [--usage-report-delay S]
                     [--curve N,N,...] [--max-seconds S] [--profile FILE]
    python -m nimbus.bench.sim

The scenario is built here, not read from a file: ``--hosts`` hosts of one class
(64 vCPU, 256 GiB, 4,000 GB disk, allocation ratios 4.0 CPU / 1.0 RAM, 4 GiB
reserved) over three zones; four flavors (1/2 GiB, 2/4, 4/8, 8/16 weighted
4:3:2:1); three projects with no quotas; ``--lifecycles`` Poisson arrivals whose
lifetimes have mean ``--lifetime`` s. The arrival rate is the fleet's
steady-state load over the mean lifetime (Little's law): ``--busy`` of the
fleet's memory in use once arrivals and deletes balance. Lifetimes are fixed by
default: the run ends at the last delete, and a long-tailed distribution would
add a long drain of periodic work alone. Compute periods are stretched as a big
fleet runs them (heartbeat 60 s, resource audit 600 s, power-state sync
3,600 s, the other periodic tasks 600 s), utilization is sampled every 600 s;
spawn takes 3-8 s, destroy 1 s; no faults, no actions, no server groups. Each
arrival boots through the Compute API, lives, and is deleted: one *lifecycle*.
The whole :class:`SimRun` is timed, starting the cloud included (printed apart
as start-up: until the first arrival).

The baseline, run first in the same command, is the same scenario at
``--baseline-hosts`` hosts (default 100) with the lifecycles scaled as the
hosts (so the same load, the same virtual duration and the same periodic work
per lifecycle). Their ratio of lifecycles/s is 1.0 if the cost of a lifecycle
does not depend on the size of the fleet and below 1.0 as far as it grows with
it. The other ratio is against the target of issue 7: 1,000 hosts x 100,000
lifecycles in 60 s, 1,667 lifecycles/s. Events/s counts the SimPy events the
runtime processed per wall second. Peak RSS is the process's (the main run's:
it is the larger one).

``--curve 10000,100000,1000000`` then runs one point per count, at ``--hosts``,
each in a fresh process (so peak RSS is the point's own). A point whose estimate
(its count over the previous point's rate, or the main run's for the first)
exceeds ``--max-seconds`` is skipped. ``--profile FILE`` runs the main run under
cProfile (which slows it) and writes the top 40 functions by cumulative and by
own time to FILE.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import pstats
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from nimbus.sim.engine import SimRun
from nimbus.sim.scenario import Scenario, parse

#: Issue 7's target: 1,000 hosts x 100,000 lifecycles in 60 s.
TARGET_RATE = 100_000 / 60

HOST: dict[str, Any] = {"name": "std", "vcpus": 64, "memory_mb": 262_144, "disk_gb": 4000,
        "availability_zones": ["az1", "az2", "az3"], "cpu_allocation_ratio": 4.0,
        "ram_allocation_ratio": 1.0, "reserved_host_memory_mb": 4096}
# (name, vcpus, memory_mb, disk_gb, weight)
FLAVORS = [("m1.small", 1, 2048, 20, 4.0), ("m1.medium", 2, 4096, 40, 3.0),
           ("m1.large", 4, 8192, 80, 2.0), ("m1.xlarge", 8, 16384, 160, 1.0)]
PROJECTS = [("web", 3.0), ("batch", 2.0), ("dev", 1.0)]
COMPUTE = {"report_interval": 60.0, "update_resources_interval": 600.0,
           "sync_power_state_interval": 3600.0, "periodic_interval": 600.0,
           "service_down_time": 180.0}
SAMPLE_INTERVAL = 600.0
#: spread of lognormal lifetimes
SIGMA = 1.0
DRIVER = {"timings": {"spawn": {"dist": "uniform", "low": 3.0, "high": 8.0}, "destroy": 1.0}}


def busy_instances(hosts: int, busy: float) -> float:
    """Instances alive at steady state for ``busy`` of the fleet's memory."""
    weight = sum(f[4] for f in FLAVORS)
    mean_memory = sum(f[2] * f[4] for f in FLAVORS) / weight
    usable = (HOST["memory_mb"] - HOST["reserved_host_memory_mb"]) * HOST["ram_allocation_ratio"]
    return hosts * usable * busy / mean_memory


def lifetimes(kind: str, mean: float) -> dict[str, Any]:
    """The ``[workload.lifetime]`` table of this distribution and mean."""
    if kind == "fixed":
        return {"distribution": "fixed", "seconds": mean}
    if kind == "exponential":
        return {"distribution": "exponential", "mean": mean}
    return {"distribution": "lognormal", "median": mean / math.exp(SIGMA**2 / 2),
            "sigma": SIGMA}


def build(hosts: int, lifecycles: int, args: Any) -> Scenario:
    """The benchmark's scenario for ``hosts`` hosts and ``lifecycles`` arrivals."""
    rate = busy_instances(hosts, args.busy) / args.lifetime
    return parse({
        "name": f"bench-{hosts}x{lifecycles}", "seed": args.seed,
        "sample_interval": SAMPLE_INTERVAL,
        "hosts": [{**HOST, "count": hosts}],
        "flavors": [{"name": n, "vcpus": v, "memory_mb": m, "disk_gb": d}
                    for n, v, m, d, _w in FLAVORS],
        "projects": [{"name": n, "share": s} for n, s in PROJECTS],
        "workload": {"kind": "synthetic", "arrival": "poisson", "rate": rate,
                     "count": lifecycles, "flavor_mix": {f[0]: f[4] for f in FLAVORS},
                     "lifetime": lifetimes(args.lifetimes, args.lifetime)},
        "compute": {**COMPUTE, "usage_report_delay": args.usage_report_delay},
        "scheduler": {"placement_prefilter": not args.no_prefilter},
        "driver": DRIVER,
    }, "<bench>")


@dataclass(frozen=True, slots=True)
class Measured:
    """One timed run."""

    hosts: int
    lifecycles: int
    wall: float  # seconds of the whole run
    startup: float  # of which: starting the cloud and the operator's setup
    virtual: float
    events: int
    accepted: int
    failed: int
    refused: int
    to_active_p50: float
    violations: int
    rss_mib: float

    @property
    def rate(self) -> float:
        """Lifecycles per wall second."""
        return self.lifecycles / self.wall if self.wall > 0 else math.inf

    @property
    def events_rate(self) -> float:
        """SimPy events per wall second."""
        return self.events / self.wall if self.wall > 0 else math.inf


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(hosts: int, lifecycles: int, args: Any,
            profile: cProfile.Profile | None = None) -> Measured:
    """Build and run the scenario once; what it took."""
    scenario = build(hosts, lifecycles, args)
    first_arrival: list[float] = []

    def progress(_now: float, _events: int) -> None:
        if not first_arrival:
            first_arrival.append(time.perf_counter())

    t0 = time.perf_counter()
    sim = SimRun(scenario, progress=progress)
    if profile is not None:
        profile.enable()
    try:
        outcome = sim.run()
    finally:
        if profile is not None:
            profile.disable()
    wall = time.perf_counter() - t0
    return Measured(
        hosts=hosts, lifecycles=lifecycles, wall=wall,
        startup=(first_arrival[0] if first_arrival else t0 + wall) - t0,
        virtual=outcome.end_time, events=sim.rt.events_processed(),
        accepted=outcome.accepted, failed=sum(outcome.failed.values()),
        refused=sum(outcome.refused.values()), to_active_p50=outcome.time_to_active.p50,
        violations=len(outcome.violations), rss_mib=peak_rss_mib())


HEADER = (f"{'run':<22} {'hosts':>6} {'lifecycles':>10} {'wall s':>8} {'start-up s':>10} "
          f"{'lifecycles/s':>12} {'virtual s':>10} {'events/s':>9} {'accepted':>9} "
          f"{'failed':>6} {'refused':>7} {'ACTIVE p50':>10} {'peak RSS MiB':>12}")


def row(name: str, m: Measured) -> str:
    """One line of the table."""
    line = (f"{name:<22} {m.hosts:>6,} {m.lifecycles:>10,} {m.wall:>8.1f} {m.startup:>10.1f} "
            f"{m.rate:>12,.1f} {m.virtual:>10,.0f} {m.events_rate:>9,.0f} {m.accepted:>9,} "
            f"{m.failed:>6,} {m.refused:>7,} {m.to_active_p50:>9.2f}s {m.rss_mib:>12,.0f}")
    if m.violations:
        line += f"  {m.violations} INVARIANT VIOLATIONS"
    return line


def describe(args: Any) -> list[str]:
    """What the scenario is, in a few lines."""
    h = HOST
    alive = busy_instances(args.hosts, args.busy)
    mean = args.lifetime
    flavors = ", ".join(f"{n} {v}/{m // 1024}G x{w:g}" for n, v, m, _d, w in FLAVORS)
    return [
        f"fleet: {args.hosts:,} hosts of {h['vcpus']} vCPU, {h['memory_mb'] // 1024} GiB "
        f"(cpu {h['cpu_allocation_ratio']} / ram {h['ram_allocation_ratio']}) over 3 zones; "
        f"{len(PROJECTS)} projects, no quotas; flavors {flavors}",
        f"workload: {args.lifecycles:,} Poisson arrivals at {alive / mean:,.2f}/s; "
        f"{args.lifetimes} lifetimes of mean {mean:,.0f} s"
        + (f" (sigma {SIGMA:g})" if args.lifetimes == "lognormal" else "")
        + f"; {alive:,.0f} alive at steady state ({args.busy:.0%} of memory)",
        "periods: " + ", ".join(f"{k} {v:g} s" for k, v in COMPUTE.items())
        + f", sample_interval {SAMPLE_INTERVAL:g} s; spawn 3-8 s, destroy 1 s; no faults",
    ]


def curve(args: Any, counts: list[int], rate: float) -> int:
    """The scaling curve: one fresh process per count; 1 if a point failed."""
    print(f"\nscaling curve at {args.hosts:,} hosts, each point in a fresh process")
    print(f"{'lifecycles':>10} {'wall s':>8} {'lifecycles/s':>12} {'events/s':>9} "
          f"{'peak RSS MiB':>12}", flush=True)
    for count in counts:
        estimate = count / rate
        if args.max_seconds and estimate > args.max_seconds:
            print(f"{count:>10,} skipped: estimated {estimate:,.0f} s", flush=True)
            continue
        command = [sys.executable, "-m", "nimbus.bench.sim", "--point", "--baseline-hosts", "0",
                   "--hosts", str(args.hosts), "--lifecycles", str(count), "--busy", str(args.busy),
                   "--lifetime", str(args.lifetime), "--lifetimes", args.lifetimes,
                   "--seed", str(args.seed),
                   "--usage-report-delay", str(args.usage_report_delay),
                   *(["--no-prefilter"] if args.no_prefilter else [])]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"{count:>10,} FAILED ({done.returncode}): {done.stderr[-2000:]}")
            return 1
        m = Measured(**json.loads(done.stdout.splitlines()[-1]))
        rate = m.rate
        print(f"{count:>10,} {m.wall:>8.1f} {m.rate:>12,.1f} {m.events_rate:>9,.0f} "
              f"{m.rss_mib:>12,.0f}", flush=True)
    return 0


def write_profile(profile: cProfile.Profile, path: str, title: str) -> None:
    """The top 40 functions by cumulative and by own time, as text."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"{title}\n\n")
        stats = pstats.Stats(profile, stream=out).strip_dirs()
        for key in ("cumulative", "tottime"):
            out.write(f"=== top 40 by {key} ===\n")
            stats.sort_stats(key).print_stats(40)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="nimbus bench sim", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hosts", type=int, default=1000, help="hosts of the main run")
    p.add_argument("--lifecycles", type=int, default=100_000, help="arrivals of the main run")
    p.add_argument("--baseline-hosts", type=int, default=100,
                   help="hosts of the baseline run, lifecycles scaled alike (0: no baseline)")
    p.add_argument("--busy", type=float, default=0.65,
                   help="share of the fleet's memory in use at steady state")
    p.add_argument("--lifetime", type=float, default=1800.0,
                   help="mean lifetime, virtual seconds")
    p.add_argument("--lifetimes", choices=("fixed", "exponential", "lognormal"),
                   default="fixed", help="distribution of lifetimes (lognormal: sigma 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-prefilter", action="store_true",
                   help="[filter_scheduler] placement_prefilter = false: plain requests "
                        "skip placement's candidates")
    p.add_argument("--usage-report-delay", type=float, default=0.0, metavar="S",
                   help="[compute] usage_report_delay: instance changes of S seconds share "
                        "one usage report")
    p.add_argument("--curve", metavar="N,N,...",
                   help="then lifecycles per point of a scaling curve at --hosts")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="skip a curve point estimated to take longer (0: run them all)")
    p.add_argument("--profile", metavar="FILE",
                   help="cProfile the main run; write the top 40 functions to FILE")
    p.add_argument("--point", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if min(a.hosts, a.lifecycles) < 1 or a.baseline_hosts < 0:
        p.error("--hosts and --lifecycles must be 1 or more, --baseline-hosts 0 or more")
    if a.baseline_hosts >= a.hosts:
        p.error("--baseline-hosts must be below --hosts (0: no baseline)")
    if not 0 < a.busy < 1 or a.lifetime <= 0:
        p.error("--busy must be in (0, 1) and --lifetime above 0")
    counts = [int(c) for c in a.curve.split(",")] if a.curve else []
    if any(c < 1 for c in counts):
        p.error("--curve takes lifecycle counts of 1 or more")

    if a.point:  # one curve point, for the parent process
        print(json.dumps(asdict(measure(a.hosts, a.lifecycles, a))))
        return 0

    print("\n".join(describe(a)))
    print(HEADER, flush=True)
    baseline = None
    if a.baseline_hosts:
        count = max(1, round(a.lifecycles * a.baseline_hosts / a.hosts))
        baseline = measure(a.baseline_hosts, count, a)
        print(row("baseline", baseline), flush=True)
    profile = cProfile.Profile() if a.profile else None
    main_run = measure(a.hosts, a.lifecycles, a, profile)
    print(row("main" + (" (cProfiled)" if profile else ""), main_run), flush=True)
    if baseline is not None:
        print(f"{'ratio main / baseline (lifecycles/s)':<40} {main_run.rate / baseline.rate:8.3f}")
    target = f"ratio main / target ({TARGET_RATE:,.0f} lifecycles/s)"
    print(f"{target:<40} {main_run.rate / TARGET_RATE:8.3f}")
    if profile is not None:
        write_profile(profile, a.profile, f"nimbus bench sim: {a.hosts} hosts x "
                      f"{a.lifecycles} lifecycles, wall {main_run.wall:.1f} s under cProfile")
        print(f"profile written to {a.profile}")
    failed = bool(main_run.violations or (baseline and baseline.violations))
    if counts and curve(a, counts, main_run.rate):
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
