"""Property tests: the columnar scheduler against the reference loop, and its invariants."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from nimbus.core.errors import NoValidHost
from nimbus.core.scheduler import (
    HostStates,
    InMemoryClaimer,
    RequestSpec,
    Scheduler,
    SchedulerConfig,
    Selection,
)
from tests.core.scheduler.reference import Fleet, ReferenceScheduler
from tests.core.scheduler.strategies import configs, fleets, requests


def run(scheduler: Scheduler | ReferenceScheduler,
        request: RequestSpec) -> list[Selection] | str:
    try:
        return scheduler.select_destinations(request)
    except NoValidHost as e:
        return e.message


def check_invariants(states: HostStates, request: RequestSpec, config: SchedulerConfig,
                     result: list[Selection] | str) -> None:
    if isinstance(result, str):
        return
    claimed = {s.host_index for s in result}
    for row in claimed:
        if "ComputeFilter" in config.enabled_filters:
            # a host whose service is down or disabled is never chosen
            assert states.up[row] and not states.disabled[row]
        # no allocation exceeds (total - reserved) x ratio, for each resource asked
        for asked, total, reserved, ratio, used in (
            (request.vcpus, states.vcpus_total, states.vcpus_reserved, states.cpu_ratio,
             states.vcpus_used),
            (request.memory_mb, states.ram_total, states.ram_reserved, states.ram_ratio,
             states.ram_used),
            (request.disk_gb, states.disk_total, states.disk_reserved, states.disk_ratio,
             states.disk_used),
        ):
            if asked:
                assert used[row] <= (total[row] - reserved[row]) * ratio[row]
    group = request.group
    if (group is not None and group.policy == "anti-affinity"
            and "ServerGroupAntiAffinityFilter" in config.enabled_filters):
        counts = states.group_counts(group.uuid)
        assert counts is not None
        for row in claimed:  # hard anti-affinity holds across the batch
            assert counts[row] <= group.max_server_per_host


@settings(deadline=None, max_examples=400, derandomize=True)
@given(st.data(), fleets(), configs())
def test_columnar_picks_what_the_reference_loop_picks(data: st.DataObject, fleet: Fleet,
                                                      config: SchedulerConfig) -> None:
    states = fleet.states()
    seed = data.draw(st.integers(0, 2**32))
    columnar = Scheduler(states, config, InMemoryClaimer(states), random.Random(seed))
    reference = ReferenceScheduler(fleet.reference_hosts(), config, random.Random(seed))
    old = [uuid for _host, uuid, _group in fleet.instances]
    for serial in range(data.draw(st.integers(1, 4))):
        request = data.draw(requests(serial, old))
        got = run(columnar, request)
        want = run(reference, request)
        assert got == want, (request, got, want)
        check_invariants(states, request, config, got)
        old += [s.instance_uuid for s in got if s.instance_uuid] if not isinstance(got, str) else []
