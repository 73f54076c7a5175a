"""Scheduler decisions per second: the columnar scheduler against the per-host reference loop.

    nimbus bench scheduler [--sizes 100,1000,10000,100000] [--decisions N] [--seed S]
                           [--repeat R] [--clock wall|cpu]
    python -m nimbus.bench.scheduler

For each fleet size, one realistic mixed fleet (four host types over three
zones, partly used, a few hosts down or disabled, a few with failed builds, an
SSD aggregate and a tenant-isolated one) and one stream of boot requests (a
flavor mix, some asking for a zone or an image architecture, some in
anti-affinity or soft-anti-affinity groups). Both schedulers run the default
filters and weighers and claim in memory (no placement DB); each decision is
one instance, claim included. Instances are deleted oldest first to keep the
fleet about half full; deletes are not timed. ``--plain`` drops the zones,
images, groups, failed builds and hosts down, leaving the flavor mix alone.

The reference loop (tests/core/scheduler/reference.py: one object per host,
as Nova's FilterScheduler) runs on a sample of the same stream; the columnar
scheduler must pick the same hosts on it (checked). Prints decisions/s of
both and their ratio. ``--repeat R`` runs the columnar scheduler R times per
size (a fresh fleet, the same stream, the same picks) and keeps the fastest
run: on a shared machine, other work only ever slows a run down. ``--clock cpu``
times decisions by the thread's CPU time instead of the wall clock, which leaves
out the time spent waiting for a core (each reading costs about 0.5 us more).

``--nova-venv PATH`` first runs bench/nova_scheduler.py (Nova 34's own
scheduler, in-process, same fleet and requests) with that virtual environment's
python, then adds its decisions/s and the ratio columnar/Nova per size and mode.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from nimbus.core.errors import NoValidHost
from nimbus.core.scheduler import (
    HostSpec,
    HostUsage,
    InMemoryClaimer,
    RequestSpec,
    Scheduler,
    SchedulerConfig,
    ServerGroupSpec,
)

try:
    from tests.core.scheduler.reference import Fleet, FleetHost, ReferenceScheduler
except ImportError:  # run from elsewhere: the reference lives in the repository's tests
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.core.scheduler.reference import Fleet, FleetHost, ReferenceScheduler

# (share, vcpus, memory_mb, disk_gb, cpu ratio)
HOST_TYPES = [(0.55, 32, 262144, 2000, 4.0), (0.25, 64, 262144, 1000, 4.0),
              (0.12, 48, 1048576, 2000, 2.0), (0.08, 16, 131072, 500, 8.0)]
# (share, name, vcpus, memory_mb, root_gb)
FLAVORS = [(0.15, "m1.tiny", 1, 512, 1), (0.35, "m1.small", 1, 2048, 20),
           (0.30, "m1.medium", 2, 4096, 40), (0.15, "m1.large", 4, 8192, 80),
           (0.05, "m1.xlarge", 8, 16384, 160)]
ZONES = ["az1", "az2", "az3"]


def make_fleet(size: int, rng: random.Random, plain: bool = False) -> Fleet:
    hosts: list[FleetHost | None] = []
    shares = [t[0] for t in HOST_TYPES]
    for i in range(size):
        _s, vcpus, ram, disk, ratio = rng.choices(HOST_TYPES, shares)[0]
        spec = HostSpec(
            f"cmp{i:06d}", vcpus, ram, disk, vcpus_reserved=0, memory_mb_reserved=4096,
            disk_gb_reserved=50, cpu_allocation_ratio=ratio, availability_zone=ZONES[i % 3],
            hypervisor_type="QEMU", hypervisor_version=rng.choice([6002000, 8000000]),
            cpu_info={"arch": "x86_64", "features": ["avx2", "sse4"]},
            supported_instances=(("x86_64", "qemu", "hvm"),))
        fill = rng.random() * 0.5
        usage = HostUsage(vcpus_used=int(vcpus * ratio * fill), memory_mb_used=int(ram * fill),
                          disk_gb_used=int(disk * fill), num_instances=int(20 * fill),
                          io_ops=rng.choice([0, 0, 0, 1, 2]),
                          failed_builds=1 if rng.random() < 0.01 else 0)
        if plain:
            usage = HostUsage(usage.vcpus_used, usage.memory_mb_used, usage.disk_gb_used,
                              usage.num_instances, usage.io_ops)
        hosts.append(FleetHost(spec, usage, up=plain or rng.random() > 0.01,
                               disabled=not plain and rng.random() < 0.01))
    names = [h.spec.name for h in hosts if h is not None]
    aggregates = [
        ("ssd", {"ssd": "true"}, [n for n in names if rng.random() < 0.3]),
        ("tenant-a", {"filter_tenant_id": "tenant-a"}, [n for n in names if rng.random() < 0.02]),
    ]
    return Fleet(hosts, aggregates)


def make_requests(count: int, rng: random.Random, plain: bool = False) -> list[RequestSpec]:
    shares = [f[0] for f in FLAVORS]
    groups = [ServerGroupSpec(f"group{g}", "anti-affinity" if g % 2 else "soft-anti-affinity")
              for g in range(20)]
    out = []
    for k in range(count):
        _s, name, vcpus, ram, disk = rng.choices(FLAVORS, shares)[0]
        roll = 0.5 if plain else rng.random()
        out.append(RequestSpec.build(
            vcpus, ram, disk, flavor_name=name, project_id=rng.choice(["p1", "p2", "p3"]),
            availability_zone=rng.choice(ZONES) if roll < 0.2 else None,
            image_properties={"hw_architecture": "x86_64"} if 0.2 <= roll < 0.3 else None,
            group=rng.choice(groups) if roll >= 0.9 else None,
            instance_uuids=[f"vm{k}"]))
    return out


class Driver:
    """Feeds one scheduler the request stream, deleting the oldest instances as it goes."""

    def __init__(self, scheduler: Scheduler | ReferenceScheduler, live_limit: int,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.live: deque[tuple[int, RequestSpec, str | None]] = deque()
        self.live_limit = live_limit
        self.picks: list[int] = []

    def delete_oldest(self) -> None:
        row, request, uuid = self.live.popleft()
        s = self.scheduler
        if isinstance(s, Scheduler):
            s.claimer.release(row, request, uuid)
            s.states.remove_instance(uuid, row=row, group=request.group.uuid
                                     if request.group else None, io_ops=1)
        else:
            host = s.hosts[row]
            assert host is not None
            host.consume(request, uuid, -1)

    def run(self, requests: list[RequestSpec]) -> float:
        """Seconds spent in select_destinations over ``requests``."""
        spent = 0.0
        clock = self.clock
        for request in requests:
            while len(self.live) >= self.live_limit:
                self.delete_oldest()
            t0 = clock()
            try:
                [selection] = self.scheduler.select_destinations(request)
            except NoValidHost:
                spent += clock() - t0
                self.picks.append(-1)
                continue
            spent += clock() - t0
            self.picks.append(selection.host_index)
            self.live.append((selection.host_index, request, selection.instance_uuid))
        return spent


def measure(size: int, decisions: int, sample: int, seed: int, plain: bool, repeat: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> tuple[float, float, int]:
    fleet = make_fleet(size, random.Random(seed), plain)
    requests = make_requests(decisions, random.Random(seed + 1), plain)
    config = SchedulerConfig()
    live_limit = max(size * 20, 1)
    fast = math.inf
    for _ in range(repeat):  # the same stream on a fresh fleet: the fastest run counts
        states = fleet.states()
        columnar = Driver(Scheduler(states, config, InMemoryClaimer(states),
                                    random.Random(seed)), live_limit, clock)
        columnar.run(requests[:200])  # warm the caches, as a running scheduler has them
        fast = min(fast, columnar.run(requests[200:]))
    reference = Driver(ReferenceScheduler(fleet.reference_hosts(), config, random.Random(seed)),
                       live_limit, clock)
    slow = reference.run(requests[:sample])
    if reference.picks != columnar.picks[:sample]:
        raise SystemExit(f"{size} hosts: the columnar scheduler and the reference loop differ")
    return (decisions - 200) / fast, sample / slow, sample


def nova_baseline(venv: str, sizes: str, seed: int, plain: bool,
                  modes: str) -> dict[tuple[int, str], float]:
    """Decisions/s of Nova's scheduler per (size, mode), from bench/nova_scheduler.py --json."""
    command = [str(Path(venv) / "bin" / "python"), str(Path(__file__).with_name(
        "nova_scheduler.py")), "--sizes", sizes, "--seed", str(seed), "--modes", modes, "--json"]
    if plain:
        command.append("--plain")
    print(f"running Nova's scheduler first: {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench/nova_scheduler.py failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {(r["hosts"], r["mode"]): r["decisions_per_s"] for r in rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nimbus bench scheduler", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100,1000,10000,100000", help="fleet sizes")
    p.add_argument("--decisions", type=int, default=20_000,
                   help="columnar decisions per size (a quarter at 100,000 hosts)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1,
                   help="columnar runs per size, the fastest counts (a shared machine's\n"
                        "load only ever slows a run down)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time decisions by the wall clock, or by this thread's CPU time\n"
                        "(time spent waiting for a core left out; each reading costs ~0.5 us)")
    p.add_argument("--plain", action="store_true",
                   help="flavors only: no zones, images, groups, failed builds or hosts down")
    p.add_argument("--nova-venv", metavar="PATH",
                   help="a virtualenv with PyPI nova 34: also measure Nova's own scheduler")
    p.add_argument("--nova-modes", default="legacy,full",
                   help="bench/nova_scheduler.py modes: legacy (filters + weighers),\n"
                        "claim, full (plus its per-request HostState rebuild)")
    a = p.parse_args(argv)
    clocks = {"wall": time.perf_counter, "cpu": time.thread_time}
    nova_modes = a.nova_modes.split(",") if a.nova_venv else []
    nova = (nova_baseline(a.nova_venv, a.sizes, a.seed, a.plain, a.nova_modes)
            if a.nova_venv else {})
    print(f"{'hosts':>8} {'columnar':>16} {'reference loop':>22} {'ratio':>8}"
          + "".join(f" {'Nova ' + m:>15} {'col/Nova':>9}" for m in nova_modes))
    for size in (int(s) for s in a.sizes.split(",")):
        decisions = a.decisions if size < 100_000 else max(a.decisions // 4, 400)
        sample = max(3, min(2000, 400_000 // size))
        fast, slow, sampled = measure(size, decisions + 200, sample, a.seed, a.plain,
                                      max(1, a.repeat), clocks[a.clock])
        print(f"{size:>8,} {fast:>11,.0f} dec/s {slow:>11,.1f} dec/s (n={sampled:>4}) "
              f"{fast / slow:>7,.0f}x" + "".join(
                  f" {nova[size, m]:>9,.3f} dec/s {fast / nova[size, m]:>8,.0f}x"
                  if (size, m) in nova else f" {'-':>15} {'-':>9}" for m in nova_modes),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
