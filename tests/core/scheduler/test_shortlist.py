"""The shortlist answers what the passes over every host answer, or leaves it to them."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nimbus.bench.scheduler import make_fleet, make_requests
from nimbus.core.errors import NoValidHost
from nimbus.core.scheduler import (
    HostSpec,
    HostStates,
    HostUsage,
    InMemoryClaimer,
    RequestSpec,
    Scheduler,
    SchedulerConfig,
    Selection,
    ServerGroupSpec,
)
from nimbus.core.scheduler.shortlist import Shortlist
from nimbus.core.scheduler.shortlist_terms import dense_sum
from tests.core.scheduler.reference import Fleet, ReferenceScheduler
from tests.core.scheduler.strategies import configs, fleets, requests
from tests.core.scheduler.test_properties import check_invariants, run


def shortlists(scheduler: Scheduler) -> list[Shortlist]:
    return scheduler.planner.shortlists()


@settings(deadline=None, max_examples=400, derandomize=True)
@given(st.data(), fleets(), configs(), st.sampled_from([1, 2, 3, 4, 6]))
def test_tiny_shortlists_pick_what_the_reference_loop_picks(
        data: st.DataObject, fleet: Fleet, config: SchedulerConfig, size: int) -> None:
    """Shortlists of a few hosts are built, joined, refused and built again all the time."""
    states = fleet.states()
    seed = data.draw(st.integers(0, 2**32))
    columnar = Scheduler(states, config, InMemoryClaimer(states), random.Random(seed),
                         shortlist_size=size)
    reference = ReferenceScheduler(fleet.reference_hosts(), config, random.Random(seed))
    old = [uuid for _host, uuid, _group in fleet.instances]
    placed: list[tuple[Selection, RequestSpec]] = []
    for serial in range(data.draw(st.integers(1, 6))):
        if placed and data.draw(st.integers(0, 3)) == 0:  # an instance goes away
            gone, request = placed.pop(data.draw(st.integers(0, len(placed) - 1)))
            group = request.group.uuid if request.group else None
            columnar.claimer.release(gone.host_index, request, gone.instance_uuid)
            states.remove_instance(gone.instance_uuid, row=gone.host_index, group=group,
                                   io_ops=1)
            host = reference.hosts[gone.host_index]
            assert host is not None
            host.consume(request, gone.instance_uuid, -1)
        request = data.draw(requests(serial, old))
        got = run(columnar, request)
        want = run(reference, request)
        assert got == want, (request, got, want)
        check_invariants(states, request, config, got)
        if not isinstance(got, str):
            old += [s.instance_uuid for s in got if s.instance_uuid]
            placed += [(s, request) for s in got]


def test_a_long_mixed_stream_matches_the_passes_over_every_host() -> None:
    """The bench's realistic fleet and requests, on a shortlist far smaller than the fleet."""
    fleet = make_fleet(600, random.Random(3))
    stream = make_requests(1500, random.Random(4))
    states = fleet.states()
    short = Scheduler(states, SchedulerConfig(), InMemoryClaimer(states), random.Random(5),
                      shortlist_size=24)
    twin = states.copy()
    full = Scheduler(twin, SchedulerConfig(), InMemoryClaimer(twin), random.Random(5),
                     shortlist_size=0)
    for k, request in enumerate(stream):
        got, want = run(short, request), run(full, request)
        assert got == want, (k, request, got, want)
        if k % 7 == 3 and not isinstance(got, str):  # a compute update moves a host
            row = got[0].host_index
            usage = HostUsage(states.vcpus_used[row] + 1, states.ram_used[row] + 512,
                              states.disk_used[row], int(states.num_instances[row]),
                              int(states.io_ops[row]) + 2)
            states.update_usage(row, usage)
            twin.update_usage(row, usage)
    assert full.shortlisted == 0
    assert short.shortlisted > 0.9 * len(stream)
    built = shortlists(short)
    assert len(built) >= 3 and sum(sl.builds for sl in built) > len(built)


def test_the_shortlist_stays_out_of_small_fleets_unless_asked() -> None:
    fleet = make_fleet(200, random.Random(1), plain=True)
    states = fleet.states()
    auto = Scheduler(states, SchedulerConfig(), InMemoryClaimer(states), random.Random(0))
    auto.select_destinations(RequestSpec.build(1, 512, 1))
    assert auto.shortlisted == 0 and not shortlists(auto)
    asked = Scheduler(states, SchedulerConfig(), InMemoryClaimer(states), random.Random(0),
                      shortlist_size=8)
    asked.select_destinations(RequestSpec.build(1, 512, 1))
    assert asked.shortlisted == 1


def test_no_valid_host_from_a_shortlisted_plan_names_the_filters() -> None:
    fleet = make_fleet(50, random.Random(2), plain=True)
    states = fleet.states()
    sched = Scheduler(states, SchedulerConfig(), InMemoryClaimer(states), random.Random(0),
                      shortlist_size=4)
    sched.select_destinations(RequestSpec.build(1, 512, 1))
    try:
        sched.select_destinations(RequestSpec.build(10_000, 512, 1))
    except NoValidHost as e:
        assert "ResourceFit removed 50 of 50 hosts" in e.message
    else:
        raise AssertionError("expected NoValidHost")
    assert np.all(states.vcpus_used >= 0)


def test_a_sparse_weigher_needs_a_host_without_weight_among_the_candidates() -> None:
    """The passing candidates all run members of the soft-affinity group (the others do
    not fit), so whether a passing host weighs 0 is not known from them: hosts off the
    list do, and the shortlist must leave the ranking to the full passes."""
    def build() -> HostStates:
        states = HostStates()
        for i in range(20):
            if i < 3:  # big, with a member each
                states.add_host(HostSpec(f"h{i}", 64, 65536, 100))
                states.set_instances(i, [(f"m{i}", "g")])
            elif i < 7:  # roomy but with little disk: on the list, and no fit
                states.add_host(HostSpec(f"h{i}", 32, 32768, 40))
            else:  # small: they fit, off the list
                states.add_host(HostSpec(f"h{i}", 8, 8192, 100))
        return states

    request = RequestSpec.build(1, 512, 50, group=ServerGroupSpec("g", "soft-affinity"))
    config = SchedulerConfig(max_attempts=1)
    short_states, full_states = build(), build()
    short = Scheduler(short_states, config, InMemoryClaimer(short_states), random.Random(0),
                      shortlist_size=3)
    full = Scheduler(full_states, config, InMemoryClaimer(full_states), random.Random(0),
                     shortlist_size=0)
    assert run(short, request) == run(full, request)
    [sl] = shortlists(short)
    assert sl.misses.get("sparse zeros") == 1


def test_the_dense_block_adds_up_row_after_row() -> None:
    """dense_sum must give the very floats of adding the weighers' scores one by one, in
    order, as the passes over every host do (np.add.reduce along axis 0 does)."""
    rng = np.random.default_rng(3)
    for k in range(1, 8):
        for n in (1, 7, 8, 9, 100, 1000, 4097):
            block = rng.standard_normal((k, n)) * 10.0 ** rng.integers(-8, 8, size=(k, 1))
            block[:, ::5] = 0.0  # a weigher with lo == hi gives 0 to every host
            total = block[0].copy()
            for row in block[1:]:
                total = total + row
            assert np.array_equal(dense_sum(block), total)
