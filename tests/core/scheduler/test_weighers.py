"""Each weigher, and how the scheduler normalizes and adds them up."""

from __future__ import annotations

import pytest

from nimbus.core.scheduler import HostStates, HostUsage, RequestSpec, ServerGroupSpec
from tests.core.scheduler.conftest import scheduler, spec


def pick(states: HostStates, request: RequestSpec | None = None, **config: object) -> str:
    [sel] = scheduler(states, **config).select_destinations(request or RequestSpec.build(1, 1))
    return sel.host


def weight(states: HostStates, host: str, **config: object) -> float:
    sched = scheduler(states, max_attempts=len(states), **config)
    [sel] = sched.select_destinations(RequestSpec.build(0, 0))  # asks nothing, changes nothing
    assert sel.host == host
    return sel.weight


@pytest.fixture
def fleet(states: HostStates) -> HostStates:
    states.add_host(spec("small", vcpus=4, memory_mb=4096, disk_gb=100))
    states.add_host(spec("big", vcpus=16, memory_mb=16384, disk_gb=50))
    states.add_host(spec("mid", vcpus=8, memory_mb=8192, disk_gb=400))
    return states


def test_ram_weigher_spreads_and_stacks(fleet: HostStates) -> None:
    assert pick(fleet, weighers=("RAMWeigher",)) == "big"
    assert pick(fleet, weighers=("RAMWeigher",), ram_weight_multiplier=-1.0) == "small"


def test_ram_normalizes_from_zero_not_from_the_minimum(fleet: HostStates) -> None:
    # minval is 0 for the RAM weigher: 16384 -> 1.0, and the multiplier scales it
    assert weight(fleet, "big", weighers=("RAMWeigher",), ram_weight_multiplier=2.5) == 2.5


def test_cpu_weigher_counts_the_allocation_ratio(states: HostStates) -> None:
    states.add_host(spec("a", vcpus=8, cpu_allocation_ratio=1.0))
    states.add_host(spec("b", vcpus=4, cpu_allocation_ratio=4.0))
    assert pick(states, weighers=("CPUWeigher",)) == "b"


def test_disk_weigher(fleet: HostStates) -> None:
    assert pick(fleet, weighers=("DiskWeigher",)) == "mid"


def test_io_ops_weigher_prefers_idle_hosts(fleet: HostStates) -> None:
    fleet.update_usage(1, HostUsage(io_ops=3))
    fleet.update_usage(2, HostUsage(io_ops=1))
    fleet.update_usage(0, HostUsage(io_ops=2))
    assert pick(fleet, weighers=("IoOpsWeigher",)) == "mid"
    assert pick(fleet, weighers=("IoOpsWeigher",), io_ops_weight_multiplier=1.0) == "big"


def test_build_failure_weigher_outweighs_the_rest(fleet: HostStates) -> None:
    fleet.set_failed_builds(1, 1)
    # big has the most of everything, but a failed build; mid: RAM, CPU (8 x 4 of 16 x 4), disk
    assert weight(fleet, "mid") == 0.5 + 0.5 + 1.0


def test_soft_affinity_and_anti_affinity(fleet: HostStates) -> None:
    fleet.set_instances(0, [("m1", "g"), ("m2", "g")])
    fleet.set_instances(2, [("m3", "g")])
    soft = RequestSpec.build(1, 1, group=ServerGroupSpec("g", "soft-affinity"))
    assert pick(fleet, soft, weighers=("ServerGroupSoftAffinityWeigher",)) == "small"
    anti = RequestSpec.build(1, 1, group=ServerGroupSpec("g", "soft-anti-affinity"))
    assert pick(fleet, anti, weighers=("ServerGroupSoftAntiAffinityWeigher",)) == "big"
    # soft policies do not filter: the fleet's preferred host still wins once weighed down
    assert pick(fleet, anti, weighers=("RAMWeigher", "ServerGroupSoftAntiAffinityWeigher"),
                soft_anti_affinity_weight_multiplier=0.1) == "big"


def test_aggregate_metadata_overrides_the_multiplier(fleet: HostStates) -> None:
    fleet.set_aggregate("stack", {"ram_weight_multiplier": "-1.0"}, ["big"])
    assert pick(fleet, weighers=("RAMWeigher",)) == "mid"
    fleet.set_aggregate("junk", {"ram_weight_multiplier": "x"}, ["big"])  # unreadable: default
    assert pick(fleet, weighers=("RAMWeigher",)) == "big"


def test_zero_multiplier_and_no_weighers_tie_break_on_the_lowest_row(fleet: HostStates) -> None:
    assert pick(fleet, weighers=()) == "small"
    assert pick(fleet, weighers=("RAMWeigher",), ram_weight_multiplier=0.0) == "small"


def test_equal_weights_normalize_to_zero(states: HostStates) -> None:
    for name in ("a", "b"):
        states.add_host(spec(name))
    states.set_failed_builds(0, 1)
    states.set_failed_builds(1, 1)  # all equal: the weigher adds 0 to both
    assert weight(states, "a", weighers=("BuildFailureWeigher",)) == 0.0
