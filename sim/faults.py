"""Faults of a scenario, played in virtual time against a running :class:`SimRun`.

Each ``[[faults]]`` entry becomes a task that waits for its time, does the
damage and, when it has a duration or a repair time, undoes it:

* ``host_crash``, ``rack_outage``, ``zone_outage``: hosts lose power (guests
  stop, the compute service dies, heartbeats stop, so the scheduler drops the
  hosts once ``service_down_time`` passes) and come back later as a new compute
  service on the same hypervisor (``init_host`` reconciles what it finds);
* a host class's ``mtbf``/``mttr``: every host of the class crashes after an
  exponential time of mean ``mtbf`` and is repaired after one of mean ``mttr``,
  again and again;
* ``messages``: envelopes to matching topics are lost, delayed or duplicated
  with a probability (the sim transport's fault hooks);
* ``slow_database``: every transaction waits ``delay`` first;
* ``driver_failures``: the fake hypervisors' operations fail at given rates.

Random choices (which hosts, when) draw from the runtime's seeded rng.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nimbus.backends import fake
from nimbus.core.runtime import Task
from nimbus.sim.scenario import (
    DriverFailures,
    Fault,
    HostClass,
    HostCrash,
    MessageFault,
    RackOutage,
    SlowDatabase,
    ZoneOutage,
)
from nimbus.sim.transport import every, to_topic

if TYPE_CHECKING:
    from nimbus.sim.engine import SimRun


def schedule(run: SimRun, start: float) -> list[Task[None]]:
    """Start a task for each fault of the scenario (times from ``start``) and each
    host of a class that fails."""
    tasks: list[Task[None]] = [
        run.rt.spawn(_play(run, f, start), name=f"fault-{f.__class__.__name__}")
        for f in run.scenario.faults]
    for h in run.scenario.hosts:
        if h.mtbf > 0:
            for name in [n for n, info in run.hosts.items() if info.cls is h]:
                tasks.append(run.rt.spawn(_wear(run, h, name), name=f"wear-{name}"))
    return tasks


async def _at(run: SimRun, when: float) -> None:
    wait = when - run.rt.now()
    if wait > 0:
        await run.rt.sleep(wait)


async def _for(run: SimRun, duration: float, undo: Callable[[], Awaitable[None]]) -> None:
    """Undo after ``duration`` seconds (0: never)."""
    if duration > 0:
        await run.rt.sleep(duration)
        await undo()


async def _play(run: SimRun, f: Fault, start: float) -> None:
    await _at(run, start + f.at)
    if isinstance(f, HostCrash):
        names = list(f.hosts)
        if f.count:
            up = sorted(n for n, info in run.hosts.items() if info.up)
            names = run.rt.rng.sample(up, min(f.count, len(up)))
        await run.crash(names)
        await _for(run, f.repair, lambda: run.recover(names))
    elif isinstance(f, (RackOutage, ZoneOutage)):
        if isinstance(f, RackOutage):
            names = [n for n, info in run.hosts.items() if info.rack == f.rack]
        else:
            names = [n for n, info in run.hosts.items() if info.zone == f.zone]
        await run.crash(names)
        await _for(run, f.duration, lambda: run.recover(names))
    elif isinstance(f, MessageFault):
        match = to_topic(f.topic) if f.topic else every
        transport = run.transport
        if f.effect == "loss":
            hook = transport.drop(f.probability, match)
        elif f.effect == "delay":
            hook = transport.delay(f.delay, f.probability, match)
        else:
            hook = transport.duplicate(f.probability, f.delay, match)

        async def heal() -> None:
            transport.heal(hook)
        await _for(run, f.duration, heal)
    elif isinstance(f, SlowDatabase):
        run.db.delay += f.delay

        async def speed_up() -> None:
            run.db.delay -= f.delay
        await _for(run, f.duration, speed_up)
    elif isinstance(f, DriverFailures):
        await _driver_failures(run, f)


async def _driver_failures(run: SimRun, f: DriverFailures) -> None:
    assert run.cloud is not None
    drivers = [d for n, d in sorted(run.cloud.drivers.items())
               if (not f.hosts or n in f.hosts) and isinstance(d, fake.FakeDriver)]
    for d in drivers:
        d.set_failure_rates(f.rates)

    async def restore() -> None:
        for d in drivers:
            d.set_failure_rates({})
    await _for(run, f.duration, restore)


async def _wear(run: SimRun, h: HostClass, name: str) -> None:
    """A host of a class with ``mtbf`` crashing and being repaired, for ever."""
    rng = run.rt.rng
    while True:
        await run.rt.sleep(rng.expovariate(1.0 / h.mtbf))
        await run.crash([name])
        await run.rt.sleep(rng.expovariate(1.0 / h.mttr))
        await run.recover([name])
