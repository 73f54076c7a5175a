"""select_destinations: failures and their reasons, claims, batches, alternates, config."""

from __future__ import annotations

import random

import numpy as np
import pytest

from nimbus.core.errors import ConfigError, ConflictError, NoValidHost, UnknownNameError
from nimbus.core.scheduler import (
    FILTERS,
    WEIGHERS,
    HostsFilteredOut,
    HostStates,
    InMemoryClaimer,
    RequestSpec,
    Scheduler,
    SchedulerConfig,
    ServerGroupSpec,
)
from tests.core.scheduler.conftest import scheduler, spec


def fleet(n: int, **kw: object) -> HostStates:
    states = HostStates()
    for i in range(n):
        states.add_host(spec(f"h{i}", **kw))  # type: ignore[arg-type]
    return states


def test_an_empty_fleet_is_no_valid_host() -> None:
    with pytest.raises(NoValidHost, match="no compute hosts"):
        scheduler(HostStates()).select_destinations(RequestSpec.build(1, 1))


def test_no_valid_host_names_what_each_filter_removed() -> None:
    states = fleet(10, availability_zone="az1")
    for row in (0, 1, 2):
        states.set_service(row, up=False)
    with pytest.raises(HostsFilteredOut) as err:
        scheduler(states).select_destinations(RequestSpec.build(1, 1, availability_zone="az2"))
    assert err.value.message == (
        "No valid host was found for instance 1 of 1: ResourceFit removed 0 of 10 hosts; "
        "AvailabilityZoneFilter removed 10 of 10 hosts")
    with pytest.raises(HostsFilteredOut) as err:
        scheduler(states).select_destinations(RequestSpec.build(9, 1))
    assert [(s.name, s.before, s.after) for s in err.value.steps] == [("ResourceFit", 10, 0)]
    states.set_aggregate("a", {"ssd": "true"}, ["h3", "h4"])
    cfg = {"enabled_filters": ("ComputeFilter", "AggregateInstanceExtraSpecsFilter")}
    with pytest.raises(NoValidHost, match="ComputeFilter removed 3 of 10 hosts; "
                       "AggregateInstanceExtraSpecsFilter removed 7 of 7 hosts"):
        scheduler(states, **cfg).select_destinations(
            RequestSpec.build(1, 1, extra_specs={"ssd": "false"}))


def test_unknown_filter_and_weigher_names_list_the_valid_ones() -> None:
    states = fleet(1)
    with pytest.raises(UnknownNameError) as err:
        scheduler(states, enabled_filters=("ComputeFilter", "RamFiltr"))
    assert isinstance(err.value, ConfigError)
    assert all(name in err.value.message for name in FILTERS)
    with pytest.raises(ConfigError, match="valid weigher names: BuildFailureWeigher, CPUWeigher"):
        scheduler(states, weighers=("NoSuchWeigher",))
    assert set(WEIGHERS) >= {"RAMWeigher", "IoOpsWeigher"}
    with pytest.raises(ConfigError, match="host_subset_size"):
        SchedulerConfig(host_subset_size=0)


class Flaky(InMemoryClaimer):
    """Loses the race on the hosts it is told to."""

    def __init__(self, states: HostStates, losing: set[int]) -> None:
        super().__init__(states)
        self.losing = losing

    def claim(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        if row in self.losing:
            raise ConflictError("generation conflict")
        super().claim(row, request, instance_uuid)


def test_a_claim_conflict_moves_on_to_the_next_best_host() -> None:
    states = fleet(4)
    states.apply_claim(3, 0, 1024, 0)
    sched = Scheduler(states, SchedulerConfig(), Flaky(states, {0, 1}), random.Random(0))
    [sel] = sched.select_destinations(RequestSpec.build(1, 512, 1))
    assert sel.host == "h2" and sched.conflicts == 2
    assert sel.alternates == ("h0", "h1")  # losers of a race may still take a reschedule
    assert states.vcpus_used[2] == 1 and states.vcpus_used[0] == 0
    sched.claimer = Flaky(states, {0, 1, 2, 3})
    with pytest.raises(NoValidHost, match="refused the claim"):
        sched.select_destinations(RequestSpec.build(1, 512, 1))


def test_multi_create_keeps_anti_affinity_across_the_batch_and_rolls_back() -> None:
    states = fleet(3)
    group = ServerGroupSpec("g", "anti-affinity")
    sched = scheduler(states)
    got = sched.select_destinations(RequestSpec.build(
        1, 512, 1, group=group, num_instances=3, instance_uuids=["a", "b", "c"]))
    assert sorted(s.host for s in got) == ["h0", "h1", "h2"]
    assert [s.instance_uuid for s in got] == ["a", "b", "c"]
    used = states.ram_used.copy()
    with pytest.raises(NoValidHost, match=r"instance 1 of 2: .*ServerGroupAntiAffinityFilter "
                                          "removed 3 of 3 hosts"):
        sched.select_destinations(RequestSpec.build(1, 512, 1, group=group, num_instances=2))
    assert np.array_equal(states.ram_used, used)
    other = ServerGroupSpec("g2", "anti-affinity", max_server_per_host=2)
    with pytest.raises(NoValidHost, match="instance 7 of 7"):
        sched.select_destinations(RequestSpec.build(1, 512, 1, group=other, num_instances=7))
    assert np.array_equal(states.ram_used, used)  # the six placed were released
    assert states.group_counts("g2") is not None and not states.group_counts("g2").any()
    part = sched.select_destinations(RequestSpec.build(1, 512, 1, group=other, num_instances=7,
                                                       min_count=5))
    assert len(part) == 6


def test_affinity_batch_lands_together() -> None:
    states = fleet(5)
    got = scheduler(states).select_destinations(RequestSpec.build(
        1, 512, 1, group=ServerGroupSpec("g", "affinity"), num_instances=4))
    assert len({s.host for s in got}) == 1


def test_alternates_exclude_the_chosen_hosts() -> None:
    states = fleet(6)
    got = scheduler(states, max_attempts=3).select_destinations(
        RequestSpec.build(1, 512, 1, num_instances=2))
    chosen = {s.host for s in got}
    for s in got:
        assert len(s.alternates) == 2 and not chosen & set(s.alternates)
    [one] = scheduler(states, max_attempts=1).select_destinations(RequestSpec.build(1, 512, 1))
    assert one.alternates == ()


def test_static_masks_follow_service_and_zone_changes() -> None:
    states = fleet(3)
    sched = scheduler(states)
    request = RequestSpec.build(1, 512, 1)
    assert sched.select_destinations(request)[0].host == "h0"
    states.set_service(1, disabled=True)
    states.set_service(2, up=False)
    states.set_service(0, up=False)
    with pytest.raises(NoValidHost, match="ComputeFilter removed 3 of 3"):
        sched.select_destinations(request)
    states.set_service(2, up=True)
    assert sched.select_destinations(request)[0].host == "h2"
    states.add_host(spec("new", vcpus=64, memory_mb=65536))
    assert sched.select_destinations(request)[0].host == "new"


def test_subset_and_shuffle_draw_from_the_rng() -> None:
    def picks(seed: int, **config: object) -> list[str]:
        states = fleet(8)
        cfg = SchedulerConfig(weighers=(), **config)  # type: ignore[arg-type]
        sched = Scheduler(states, cfg, InMemoryClaimer(states), random.Random(seed))
        return [sched.select_destinations(RequestSpec.build(0, 0))[0].host for _ in range(12)]

    assert set(picks(1)) == {"h0"}  # ties go to the lowest row
    assert picks(1, shuffle_best_same_weighed_hosts=True) == picks(
        1, shuffle_best_same_weighed_hosts=True)
    assert len(set(picks(1, shuffle_best_same_weighed_hosts=True))) > 1
    assert set(picks(2, host_subset_size=3)) <= {"h0", "h1", "h2"}
    assert len(set(picks(2, host_subset_size=3))) > 1


class Offering(InMemoryClaimer):
    """A placement stand-in that offers only some hosts."""

    def __init__(self, states: HostStates, rows: list[int]) -> None:
        super().__init__(states)
        self.rows = np.array(rows, dtype=np.int64)

    def candidates(self, request: RequestSpec) -> np.ndarray:  # type: ignore[override]
        return self.rows


def test_claimer_candidates_narrow_the_hosts() -> None:
    states = fleet(4)
    sched = Scheduler(states, SchedulerConfig(), Offering(states, [2, 3]), random.Random(0))
    assert sched.select_destinations(RequestSpec.build(1, 512, 1))[0].host == "h2"
    sched.claimer = Offering(states, [])
    with pytest.raises(NoValidHost, match="Placement removed 4 of 4 hosts"):
        sched.select_destinations(RequestSpec.build(1, 512, 1))


def test_in_memory_claimer_refuses_over_allocation() -> None:
    states = fleet(1, vcpus=4, vcpus_reserved=1, cpu_allocation_ratio=1.0)
    claimer = InMemoryClaimer(states)
    claimer.claim(0, RequestSpec.build(3, 1), "a")
    with pytest.raises(ConflictError):
        claimer.claim(0, RequestSpec.build(1, 1), "b")  # (4 - 1) * 1.0 are taken
    claimer.release(0, RequestSpec.build(3, 1), "a")
    assert states.vcpus_used[0] == 0 and claimer.refused == 1 and not claimer.allocations
