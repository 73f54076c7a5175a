"""Instance lifecycles per second, in simulation and in real time, in the same run.

    nimbus bench lifecycle [--hosts N] [--count N] [--aio-count N] [--concurrency C]
                           [--poll S] [--seed S]

One *lifecycle* is what a user's boot and delete set going through the whole
control plane: ``ComputeAPI.create`` (records, then a cast to the conductor, which
asks the scheduler, which claims in placement; the compute host spawns on its fake
hypervisor, through the conductor for every Store call), polling the Store until
the instance is ACTIVE, then ``ComputeAPI.delete`` and polling until it is deleted.
C lifecycles are in flight at once, over N fake hosts (no modelled boot time: what
is measured is the control plane). The cloud is built by
:func:`nimbus.sim.cloud.start_cloud` on

* (a) SimRuntime, the sim transport (0.5 ms per message) and a Store on SimDatabase:
  lifecycles per second of wall-clock time, and per second of virtual time;
* (b) AsyncioRuntime, the in-process transport and a Store on SqlDatabase over
  aiosqlite on a file in a temporary directory (real I/O: every transaction commits);

and prints both rates and their ratio (sim / asyncio). Ten lifecycles are run
first, untimed, in each. Starting the hosts is timed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.context import RequestContext
from nimbus.core.db.store import Store, metadata
from nimbus.core.metrics import Metrics
from nimbus.core.runtime import Runtime
from nimbus.core.scheduler.service import SchedulerServiceConfig
from nimbus.core.transport import InProcessTransport, Transport
from nimbus.db import SqlDatabase
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.cloud import Cloud, StateWatch, start_cloud
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.transport import SimTransport, constant_latency

FLAVOR = {"flavorid": "1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}

#: The project every lifecycle's instance belongs to (what the watch lists).
PROJECT = "bench"

#: Untimed lifecycles before the timed ones.
WARMUP = 10

#: Seconds to let the hosts' last usage reports finish before the services stop.
SETTLE = 0.2


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run measured."""

    count: int
    failed: int  # lifecycles whose instance went to ERROR
    wall: float  # seconds of wall-clock time for the timed lifecycles
    virtual: float  # seconds of the runtime's clock for them (equal to wall in real time)
    startup: float  # wall-clock seconds to start the services and register the hosts

    @property
    def rate(self) -> float:
        """Lifecycles per second of wall-clock time."""
        return self.count / self.wall if self.wall > 0 else float("inf")

    @property
    def virtual_rate(self) -> float:
        """Lifecycles per second of the runtime's clock."""
        return self.count / self.virtual if self.virtual > 0 else float("inf")


async def one_lifecycle(cloud: Cloud, watch: StateWatch, user: RequestContext, n: int) -> bool:
    """Boot an instance until ACTIVE, delete it until deleted; False if it went to ERROR."""
    since = cloud.runtime.wall_time()
    (inst,) = await cloud.api.create(user.with_request(f"req-{n}-boot"), flavor=FLAVOR,
                                     image_ref="img-1", name=f"vm-{n}")
    booted = await watch.wait(inst.uuid, states.ACTIVE, since)
    since = cloud.runtime.wall_time()
    await cloud.api.delete(user.with_request(f"req-{n}-delete"), inst.uuid)
    gone = await watch.wait(inst.uuid, states.DELETED, since)
    return booted.vm_state == states.ACTIVE and gone.vm_state == states.DELETED


async def lifecycles(cloud: Cloud, watch: StateWatch, count: int, concurrency: int,
                     first: int = 0) -> int:
    """Run ``count`` lifecycles, ``concurrency`` at a time; how many failed."""
    rt, user = cloud.runtime, RequestContext(PROJECT, PROJECT, "req-0")
    failed = 0
    todo = iter(range(first, first + count))

    async def worker() -> None:
        nonlocal failed
        for n in todo:
            if not await one_lifecycle(cloud, watch, user, n):
                failed += 1

    tasks = [rt.spawn(worker(), name=f"bench-worker-{i}") for i in range(concurrency)]
    for task in tasks:
        await task.join()
    return failed


async def measure(runtime: Runtime, transport: Transport, store: Store, args: Any) -> Outcome:
    """Start the cloud, warm up, time ``args.count`` lifecycles, stop the cloud."""
    t0 = time.perf_counter()
    cloud = await start_cloud(
        runtime, transport, store, hosts=args.hosts, metrics=Metrics(),
        compute_config=ComputeConfig(reserved_host_memory_mb=0),
        scheduler_config=SchedulerServiceConfig(refresh_interval=30.0))
    startup = time.perf_counter() - t0
    watch = StateWatch(runtime, store, poll=args.poll, project_id=PROJECT)
    try:
        await lifecycles(cloud, watch, min(WARMUP, args.count), args.concurrency)
        t1, v1 = time.perf_counter(), runtime.now()
        failed = await lifecycles(cloud, watch, args.count, args.concurrency, WARMUP)
        wall, virtual = time.perf_counter() - t1, runtime.now() - v1
        await runtime.sleep(SETTLE)
    finally:
        await cloud.stop()
    return Outcome(args.count, failed, wall, virtual, startup)


def in_simulation(args: Any) -> Outcome:
    """(a): SimRuntime, sim transport, Store on SimDatabase."""
    rt = SimRuntime(args.seed)
    store = Store(SimDatabase())

    async def main() -> Outcome:
        try:
            return await measure(rt, SimTransport(rt, latency=constant_latency(0.0005)), store,
                                 args)
        finally:
            await store.close()

    return rt.run(main())


def in_real_time(args: Any) -> Outcome:
    """(b): AsyncioRuntime, in-process transport, Store on aiosqlite in a temporary dir."""
    rt = AsyncioRuntime(args.seed)
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        db = SqlDatabase(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}")

        async def main() -> Outcome:
            async with db.engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            store = Store(db)
            try:
                return await measure(rt, InProcessTransport(rt), store, args)
            finally:
                await store.close()

        return asyncio.run(main())


def report(name: str, out: Outcome, *, virtual: bool) -> str:
    """One line of the table."""
    line = (f"{name:<40} {out.rate:9,.1f} lifecycles/s  ({out.count} in {out.wall:.2f} s"
            f", hosts started in {out.startup:.2f} s")
    if out.failed:
        line += f", {out.failed} FAILED"
    line += ")"
    if virtual:
        line += f"\n{'':<40} {out.virtual_rate:9,.1f} lifecycles per virtual s"
    return line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nimbus bench lifecycle", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hosts", type=int, default=100, help="fake compute hosts")
    p.add_argument("--count", type=int, default=1000, help="timed lifecycles in simulation")
    p.add_argument("--aio-count", type=int, default=None,
                   help="timed lifecycles in real time (default: --count, at most 200)")
    p.add_argument("--concurrency", type=int, default=10, help="lifecycles in flight")
    p.add_argument("--poll", type=float, default=0.02,
                   help="seconds between Store queries for instances that changed state")
    p.add_argument("--seed", type=int, default=0, help="seed of both runtimes")
    a = p.parse_args(argv)
    if min(a.hosts, a.count, a.concurrency) < 1 or (a.aio_count is not None and a.aio_count < 1):
        p.error("--hosts, --count, --aio-count and --concurrency must be 1 or more")

    print(f"{a.hosts} fake hosts, {a.concurrency} lifecycles in flight, boot + delete each, "
          f"states watched every {a.poll} s")
    sim = in_simulation(a)
    print(report("SimRuntime + sim transport + SimDatabase", sim, virtual=True), flush=True)
    aio_args = argparse.Namespace(**{**vars(a), "count": a.aio_count or min(a.count, 200)})
    aio = in_real_time(aio_args)
    print(report("asyncio + in-process + aiosqlite file", aio, virtual=False))
    print(f"ratio sim / asyncio (wall clock)         {sim.rate / aio.rate:9.2f}")
    return 1 if sim.failed or aio.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
