"""Each fault kind moves a run's outcome the expected way, and the invariants still hold.

Every test compares a run with one fault to the same scenario and seed without
it, on a fleet sized to be tight (4 hosts of 4 vCPUs, instances of 1 vCPU, more
live instances wanted than fit), so that losing capacity shows as refusals.
"""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.backends.fake import FakeDriver
from nimbus.sim.engine import SimRun, run
from nimbus.sim.outcome import Outcome
from nimbus.sim.scenario import Scenario, parse

HOSTS = 4


def tight(**changes: Any) -> Scenario:
    """4 hosts over two zones and two racks (h-0, h-1 in h-rack0; az1 holds h-0, h-2),
    50 arrivals over ~200 s living ~80 s, checked every 50 s and at 400 s."""
    data: dict[str, Any] = {
        "name": "tight", "seed": 5, "sample_interval": 10.0, "check_interval": 50.0,
        "horizon": 400.0,
        "hosts": [{"name": "h", "count": HOSTS, "vcpus": 4, "memory_mb": 8192,
                   "availability_zones": ["az1", "az2"], "rack_size": 2}],
        "flavors": [{"name": "one", "vcpus": 1, "memory_mb": 2048}],
        "workload": {"rate": 0.25, "count": 50,
                     "lifetime": {"distribution": "lognormal", "median": 80.0, "sigma": 1.0}},
        "driver": {"default_timing": 0.5, "timings": {"spawn": 2.0}},
        "compute": {"report_interval": 5.0, "service_down_time": 15.0},
    }
    data.update(changes)
    return parse(data)


def one(scenario: Scenario) -> Outcome:
    return run(scenario)[0]


@pytest.fixture(scope="module")
def base() -> Outcome:
    outcome = one(tight())
    assert outcome.violations == []
    assert outcome.host_failures == 0 and outcome.reschedules == 0
    assert {s.hosts_up for s in outcome.samples} == {HOSTS}
    return outcome


def failures(o: Outcome) -> int:
    return sum(o.failed.values())


def mean_vcpus_used(o: Outcome) -> float:
    return sum(s.used["VCPU"] for s in o.samples) / len(o.samples)


def hosts_up(o: Outcome) -> list[int]:
    return [s.hosts_up for s in o.samples]


def crash(**fault: Any) -> list[dict[str, Any]]:
    return [{"kind": "host_crash", "at": 60.0, "hosts": ["h-0", "h-1"], **fault}]


def test_host_crash_without_repair(base: Outcome) -> None:
    o = one(tight(faults=crash()))
    assert o.violations == []
    assert (o.host_failures, o.host_recoveries) == (2, 0)
    assert min(hosts_up(o)) == HOSTS - 2 and hosts_up(o)[-1] == HOSTS - 2
    assert failures(o) > failures(base)
    assert any(k == "NoValidHost:ComputeFilter" for k in o.failed)
    assert mean_vcpus_used(o) < mean_vcpus_used(base)


def test_host_crash_with_repair(base: Outcome) -> None:
    lasting = one(tight(faults=crash()))
    o = one(tight(faults=crash(repair=60.0)))
    assert o.violations == []
    assert (o.host_failures, o.host_recoveries) == (2, 2)
    assert min(hosts_up(o)) == HOSTS - 2 and hosts_up(o)[-1] == HOSTS
    # fewer hosts for a while: more failures than none down, fewer than down for good
    assert failures(base) < failures(o) < failures(lasting)
    assert mean_vcpus_used(base) > mean_vcpus_used(o) > mean_vcpus_used(lasting)


@pytest.mark.parametrize("fault", [
    {"kind": "rack_outage", "rack": "h-rack0"},
    {"kind": "zone_outage", "zone": "az1"},
], ids=["rack", "zone"])
def test_outage_takes_down_every_host_of_it(base: Outcome, fault: dict[str, Any]) -> None:
    o = one(tight(faults=[{**fault, "at": 60.0, "duration": 100.0}]))
    assert o.violations == []
    assert (o.host_failures, o.host_recoveries) == (2, 2)
    # the rack (h-0, h-1) and the zone (h-0, h-2) each hold 2 of the 4 hosts
    assert min(hosts_up(o)) == HOSTS - 2
    assert hosts_up(o)[:3] == [HOSTS] * 3 and hosts_up(o)[-1] == HOSTS
    assert failures(o) > failures(base)
    assert o.failed.get("NoValidHost:ComputeFilter", 0) > 0


def messages(**fault: Any) -> list[dict[str, Any]]:
    return [{"kind": "messages", "probability": 1.0, **fault}]


def test_message_loss_keeps_allocations_and_quotas(base: Outcome) -> None:
    """Casts lost on their way to a compute host leave builds and deletes where they
    were (stuck, as they would be in Nova with no build timeout), but nothing may be
    allocated twice, leaked or over quota."""
    o = one(tight(faults=messages(effect="loss", probability=0.9, topic="compute",
                                  at=50.0, duration=60.0)))
    assert [v for v in o.violations if v.invariant != "stuck"] == []
    assert o.time_to_active.count < base.time_to_active.count
    assert failures(o) + sum(v.invariant == "stuck" for v in o.violations) > failures(base)


def test_message_delay_slows_builds(base: Outcome) -> None:
    """Every message to a compute host waits 5 s more; a build waits for several
    (the request and each reply to the host's database calls), so time to ACTIVE
    grows by a small multiple of the delay."""
    delay = 5.0
    # run to the end (no horizon): deletes in flight at a horizon would count as stuck
    plain = one(tight(horizon=0.0))
    o = one(tight(horizon=0.0, faults=messages(effect="delay", delay=delay, topic="compute")))
    assert o.violations == []
    grown = o.time_to_active.p50 - plain.time_to_active.p50
    assert delay <= grown <= 4 * delay


def kept_guests(scenario: Scenario) -> tuple[Outcome, int]:
    """The outcome and the guests left on the fake hypervisors at the end."""
    sim = SimRun(scenario)
    outcome = sim.run()
    assert sim.cloud is not None
    drivers = [d for d in sim.cloud.drivers.values() if isinstance(d, FakeDriver)]
    assert len(drivers) == HOSTS
    return outcome, sum(len(d._guests) for d in drivers)


def long_lived(**changes: Any) -> Scenario:
    """Servers that outlive the run (stopped at 200 s): the check at the end sees them."""
    return tight(horizon=200.0, check_interval=0.0, workload={
        "rate": 0.25, "count": 30, "lifetime": {"distribution": "fixed", "seconds": 1000.0}},
        **changes)


@pytest.fixture(scope="module")
def long_plain() -> tuple[Outcome, int]:
    return kept_guests(long_lived())


@pytest.mark.parametrize("topic", ["compute", "scheduler", "conductor"])
def test_message_duplication_makes_no_extra_instances(
        long_plain: tuple[Outcome, int], topic: str) -> None:
    plain, plain_guests = long_plain
    o, guests = kept_guests(long_lived(faults=messages(effect="duplicate", delay=0.1,
                                                       topic=topic)))
    assert plain.violations == []
    assert o.violations == []
    assert o.accepted == plain.accepted
    assert guests == o.active <= HOSTS * 4
    assert plain_guests == plain.active


def test_slow_database_slows_builds(base: Outcome) -> None:
    o = one(tight(faults=[{"kind": "slow_database", "delay": 0.2}]))
    assert o.violations == []
    assert o.time_to_active.p50 > base.time_to_active.p50 + 0.2


def test_driver_failures_reschedule_and_fail_builds(base: Outcome) -> None:
    o = one(tight(faults=[{"kind": "driver_failures", "rates": {"spawn": 0.5}}]))
    assert o.violations == []
    assert o.reschedules > 0
    assert o.failed.get("MaxRetriesExceeded", 0) > 0
    assert o.time_to_active.count < base.time_to_active.count


def worn(seed: int) -> Outcome:
    return run(tight(hosts=[{"name": "h", "count": HOSTS, "vcpus": 4, "memory_mb": 8192,
                             "mtbf": 150.0, "mttr": 40.0}]), seed=seed)[0]


def test_host_class_mtbf_fails_and_repairs_hosts(base: Outcome) -> None:
    o = worn(5)
    assert o.violations == []
    assert o.host_failures > 0 and o.host_recoveries > 0
    assert o.host_failures - o.host_recoveries <= HOSTS
    assert min(hosts_up(o)) < HOSTS
    assert failures(o) > failures(base)
    # one seed, one history of crashes; another seed, another
    assert worn(5).to_json() == o.to_json()
    assert hosts_up(worn(6)) != hosts_up(o)
