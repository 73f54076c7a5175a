"""The simulation engine: a small scenario through the real control plane, end to end.

Also the mutation test of issue 7: a deliberately broken anti-affinity filter,
injected into the scheduler's filter registry, lets group members share a host,
and the invariant checker (hence ``nimbus sim``) must fail the run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from nimbus.cli import main as cli
from nimbus.core.scheduler import scheduler as scheduler_module
from nimbus.core.scheduler.filters import FILTERS, ServerGroupAntiAffinityFilter
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec
from nimbus.sim.engine import run
from nimbus.sim.main import EXIT_VIOLATIONS, with_scheduler_of
from nimbus.sim.outcome import Outcome
from nimbus.sim.scenario import Scenario, Scheduler, parse

ACTIONS = ("migrate", "reboot", "resize", "stop_start")


def small(**changes: Any) -> dict[str, Any]:
    """4 hosts, 80 arrivals of short lives, a project held by an instances quota,
    some anti-affinity groups and every kind of action."""
    data: dict[str, Any] = {
        "name": "engine", "seed": 3, "sample_interval": 20.0,
        "hosts": [{"name": "h", "count": 4, "vcpus": 8, "memory_mb": 16384,
                   "availability_zones": ["az1", "az2"], "rack_size": 2}],
        "flavors": [{"name": "small", "vcpus": 1, "memory_mb": 2048},
                    {"name": "large", "vcpus": 2, "memory_mb": 4096}],
        "projects": [{"name": "web", "share": 3.0}, {"name": "trial", "instances": 3}],
        "workload": {"rate": 0.5, "count": 80,
                     "lifetime": {"distribution": "lognormal", "median": 120.0, "sigma": 0.5},
                     "groups": {"share": 0.1, "size": 3},
                     "actions": {"resize": 0.1, "migrate": 0.1, "stop_start": 0.1,
                                 "reboot": 0.1}},
        "driver": {"default_timing": 0.5,
                   "timings": {"spawn": {"dist": "uniform", "low": 2.0, "high": 4.0}}},
    }
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    return run(parse(small()))[0]


def test_outcome_adds_up(outcome: Outcome) -> None:
    o = outcome
    assert o.violations == [] and o.group_violations == 0
    assert o.hosts == 4 and o.arrivals == 80
    # each member of a group refused counts as one refusal
    assert o.accepted + sum(o.refused.values()) == o.arrivals
    assert o.accepted > 0
    assert sum(o.failed.values()) <= o.accepted
    assert 0 < o.time_to_active.count <= o.accepted - sum(o.failed.values())
    assert 2.0 <= o.time_to_active.p50 <= o.time_to_active.max < 10.0
    assert o.decisions >= o.accepted - sum(o.failed.values())
    assert len(o.samples) > 5
    assert [s.t for s in o.samples] == sorted(s.t for s in o.samples)
    assert all(s.hosts_up == 4 for s in o.samples)
    assert max(s.used["VCPU"] for s in o.samples) > 0
    assert all(s.used["VCPU"] <= s.capacity["VCPU"] for s in o.samples)


def test_a_project_over_its_instances_quota_is_refused(outcome: Outcome) -> None:
    assert outcome.refused.get("quota:instances", 0) > 0


def test_actions_are_counted(outcome: Outcome) -> None:
    assert sorted(outcome.actions) == list(ACTIONS)
    for name in ACTIONS:
        assert outcome.actions[name].get("ok", 0) > 0, name
    assert outcome.migrations == outcome.actions["migrate"]["ok"]


def test_a_drained_run_leaves_no_server_behind(outcome: Outcome) -> None:
    """Every lifetime is finite and no host fails: at the end nothing is active and the
    run ends soon after the last delete, not SETTLE_LIMIT later."""
    assert outcome.active == 0
    assert outcome.end_time < 600.0


def test_one_seed_gives_one_run_another_seed_another(outcome: Outcome) -> None:
    scenario = parse(small())
    again = run(scenario)[0]
    assert again.to_json() == outcome.to_json()
    other = run(scenario, seed=4)[0]
    assert other.seed == 4
    assert other.to_json() != outcome.to_json()


def anti_affinity_toml(anti_affinity_filter: str) -> str:
    """Groups of 3 on 2 hosts, living past the end of the run (200 s), so the final
    check sees every member where it runs."""
    return f"""
name = "anti-affinity"
seed = 2
horizon = 200.0
sample_interval = 20.0

[[hosts]]
name = "h"
count = 2
vcpus = 16
memory_mb = 32768

[[flavors]]
name = "small"
vcpus = 1
memory_mb = 2048

[workload]
rate = 0.1
count = 12
lifetime = {{ distribution = "fixed", seconds = 1000.0 }}
groups = {{ share = 1.0, size = 3, policy = "anti-affinity" }}

[scheduler]
enabled_filters = ["ComputeFilter", "{anti_affinity_filter}"]

[driver]
default_timing = 0.5
timings = {{ spawn = 2.0 }}
"""


def anti_affinity(anti_affinity_filter: str) -> Scenario:
    return parse(tomllib.loads(anti_affinity_toml(anti_affinity_filter)))


def test_anti_affinity_groups_larger_than_the_fleet_fail_cleanly() -> None:
    o = run(anti_affinity("ServerGroupAntiAffinityFilter"))[0]
    assert o.violations == [] and o.group_violations == 0
    assert o.accepted == 12
    # one member of each of the 4 groups finds no third host
    assert o.failed == {"NoValidHost:ServerGroupAntiAffinityFilter": 4}
    assert o.active == 8


class PassEveryHost(ServerGroupAntiAffinityFilter):
    """A broken anti-affinity filter: it applies to the same requests and passes all."""

    name = "PassEveryHostAntiAffinityFilter"

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        return np.ones(states.n, dtype=np.bool_)


@pytest.fixture
def broken_filter(monkeypatch: pytest.MonkeyPatch) -> str:
    """The broken filter, in the registry the scheduler resolves names in (for this
    test only)."""
    monkeypatch.setattr(scheduler_module, "FILTERS",
                        FILTERS.with_entries({PassEveryHost.name: PassEveryHost}))
    return PassEveryHost.name


def test_a_broken_filter_fails_the_invariant_checker(broken_filter: str) -> None:
    o = run(anti_affinity(broken_filter))[0]
    assert o.failed == {}
    assert o.group_violations > 0
    assert {v.invariant for v in o.violations} == {"server_group"}
    assert all("anti-affinity group" in v.detail and "(at most 1)" in v.detail
               for v in o.violations)


def test_nimbus_sim_exits_3_on_a_broken_filter(
        broken_filter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(anti_affinity_toml(broken_filter), encoding="utf-8")
    assert cli(["sim", str(path), "--no-plots"]) == EXIT_VIOLATIONS == 3
    assert "server_group" in capsys.readouterr().err


def test_compare_changes_the_scheduler_only(tmp_path: Path) -> None:
    scenario = parse(small(), str(tmp_path / "engine.toml"))
    other_file = tmp_path / "packing.toml"
    other_file.write_text(
        "# packing instead of spreading\n[scheduler]\nram_weight_multiplier = -1.0\n"
        "cpu_weight_multiplier = -1.0\nhost_subset_size = 2\n", encoding="utf-8")
    other: Scenario = with_scheduler_of(scenario, str(other_file))
    assert other.scheduler == Scheduler(ram_weight_multiplier=-1.0,
                                        cpu_weight_multiplier=-1.0, host_subset_size=2)
    assert other.scheduler != scenario.scheduler
    assert msgspec.structs.replace(other, scheduler=scenario.scheduler) == scenario


def test_a_group_refused_refuses_its_members_for_the_group_s_reason() -> None:
    """A project with no room for server groups: each member of a group is refused once,
    for the group's quota, and the servers outside groups boot."""
    data = small(projects=[{"name": "web", "server_groups": 0}],
                 workload={"rate": 0.5, "count": 30,
                           "lifetime": {"distribution": "fixed", "seconds": 60.0},
                           "groups": {"share": 0.3, "size": 2}})
    o = run(parse(data))[0]
    assert set(o.refused) == {"quota:server groups"}
    refused = o.refused["quota:server groups"]
    assert 0 < refused < 30
    assert o.accepted + refused == o.arrivals == 30
