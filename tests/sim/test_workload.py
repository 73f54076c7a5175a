"""Synthetic workloads: determinism, the laws they draw from, groups, actions, stops."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from nimbus.sim.scenario import Scenario, load, parse
from nimbus.sim.workload import ACTIONS, Arrival, adhoc_flavor, arrivals, flavor_for

SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"

FLAVORS = [
    {"name": "tiny", "vcpus": 1, "memory_mb": 512},
    {"name": "small", "vcpus": 1, "memory_mb": 2048},
    {"name": "medium", "vcpus": 2, "memory_mb": 4096},
    {"name": "large", "vcpus": 4, "memory_mb": 8192},
]


def scenario(flavors: list[dict[str, Any]] | None = None,
             projects: list[dict[str, Any]] | None = None, **workload: Any) -> Scenario:
    workload.setdefault("count", 1000)
    return parse({"hosts": [{"name": "h", "count": 1, "vcpus": 64, "memory_mb": 262144}],
                  "flavors": FLAVORS if flavors is None else flavors,
                  "projects": projects or [{"name": "p"}], "workload": workload})


def draw(s: Scenario, seed: int = 1) -> list[Arrival]:
    return list(arrivals(s, random.Random(seed)))


def test_one_seed_gives_one_workload() -> None:
    s = scenario(count=2000, groups={"share": 0.1}, actions={"resize": 0.1, "reboot": 0.1},
                 projects=[{"name": "a"}, {"name": "b", "share": 2}])
    assert draw(s, 5) == draw(s, 5)
    assert draw(s, 5) != draw(s, 6)


def test_arrivals_are_in_time_order() -> None:
    for kind in ("poisson", "diurnal"):
        times = [a.t for a in draw(scenario(arrival=kind, count=5000, period=100.0,
                                            groups={"share": 0.2}))]
        assert times == sorted(times)


def test_poisson_arrivals_keep_their_rate() -> None:
    got = draw(scenario(rate=2.0, count=20000))
    assert len(got) == 20000
    assert got[-1].t / len(got) == pytest.approx(0.5, rel=0.05)
    gaps = [b.t - a.t for a, b in itertools.pairwise(got)]
    # exponential gaps: the standard deviation equals the mean
    assert statistics.pstdev(gaps) == pytest.approx(statistics.fmean(gaps), rel=0.05)


def test_diurnal_arrivals_peak_at_half_a_period() -> None:
    def peak_to_trough(kind: str) -> float:
        got = draw(scenario(arrival=kind, rate=1.0, peak_ratio=4.0, period=1000.0,
                            duration=20000.0, count=0))
        phase = Counter(int(10 * (a.t % 1000.0) / 1000.0) for a in got)
        return (phase[4] + phase[5]) / (phase[9] + phase[0])

    # the mean rate over a tenth of a period either side: 0.976 at the peak, 0.274 at
    # the trough
    assert 3.0 < peak_to_trough("diurnal") < 4.2
    assert 0.9 < peak_to_trough("poisson") < 1.1


@pytest.mark.parametrize(("lifetime", "check"), [
    ({"distribution": "lognormal", "median": 3600.0, "sigma": 1.0},
     lambda xs: statistics.median(xs) == pytest.approx(3600.0, rel=0.05)),
    ({"distribution": "pareto", "scale": 100.0, "shape": 2.0},
     lambda xs: min(xs) >= 100.0
     and statistics.median(xs) == pytest.approx(100.0 * math.sqrt(2), rel=0.05)),
    ({"distribution": "exponential", "mean": 50.0},
     lambda xs: statistics.fmean(xs) == pytest.approx(50.0, rel=0.05)),
    ({"distribution": "fixed", "seconds": 7.0}, lambda xs: set(xs) == {7.0}),
])
def test_lifetimes_follow_their_law(lifetime: dict[str, Any], check: Any) -> None:
    xs = [a.lifetime for a in draw(scenario(count=20000, lifetime=lifetime))]
    assert check(xs)


def test_projects_by_share_and_flavors_by_mix() -> None:
    s = scenario(count=20000, flavor_mix={"small": 1.0, "large": 3.0, "tiny": 0.0},
                 projects=[{"name": "a", "share": 3.0}, {"name": "b"}, {"name": "c", "share": 0}])
    got = draw(s)
    projects = Counter(a.project for a in got)
    flavors = Counter(a.flavor for a in got)
    assert set(projects) == {"a", "b"}
    assert projects["a"] / len(got) == pytest.approx(0.75, abs=0.015)
    assert set(flavors) == {"small", "large"}
    assert flavors["large"] / len(got) == pytest.approx(0.75, abs=0.015)


def test_without_a_mix_every_flavor_is_alike() -> None:
    flavors = Counter(a.flavor for a in draw(scenario(count=20000)))
    assert set(flavors) == {"tiny", "small", "medium", "large"}
    assert all(n / 20000 == pytest.approx(0.25, abs=0.015) for n in flavors.values())


def test_server_groups_arrive_together() -> None:
    got = draw(scenario(count=9000, groups={"share": 0.2, "size": 3, "policy": "affinity"},
                        projects=[{"name": "a"}, {"name": "b"}]))
    members: dict[int, list[Arrival]] = defaultdict(list)
    for a in got:
        assert (a.group is None) == (a.group_policy is None)
        if a.group is not None:
            members[a.group].append(a)
    events = len(got) - 2 * len(members)  # each group is one arrival event
    assert len(members) / events == pytest.approx(0.2, abs=0.02)
    for group in members.values():
        assert len(group) == 3 and len({(a.t, a.project, a.flavor) for a in group}) == 1
        assert {a.group_policy for a in group} == {"affinity"}
        assert len({a.lifetime for a in group}) == 3
    # ids are distinct per group: members of one id are contiguous
    firsts = [a.group for a in got if a.group is not None][::3]
    assert len(set(firsts)) == len(firsts)


def test_count_counts_instances_and_cuts_the_last_group() -> None:
    got = draw(scenario(count=10, groups={"share": 1.0, "size": 3}))
    assert len(got) == 10
    assert [len(list(g)) for _, g in itertools.groupby(got, key=lambda a: a.group)] == [3, 3, 3, 1]


def test_duration_and_count_stop_whichever_comes_first() -> None:
    by_time = draw(scenario(rate=1.0, count=0, duration=500.0))
    assert by_time[-1].t < 500.0 and len(by_time) == pytest.approx(500, rel=0.2)
    assert len(draw(scenario(rate=1.0, count=20, duration=500.0))) == 20
    assert len(draw(scenario(rate=1.0, count=10**6, duration=50.0))) < 100


def test_arrivals_are_drawn_lazily() -> None:
    s = scenario(count=10**12)
    assert len(list(itertools.islice(arrivals(s, random.Random(1)), 5))) == 5


def test_actions_are_drawn_per_instance() -> None:
    s = scenario(count=20000, flavor_mix={"small": 1.0, "medium": 1.0, "large": 2.0},
                 actions={"resize": 0.1, "migrate": 0.1, "stop_start": 0.1, "reboot": 0.1})
    got = draw(s)
    actions = Counter(a.action for a in got)
    assert actions[None] / len(got) == pytest.approx(0.6, abs=0.015)
    for name in ACTIONS:
        assert actions[name] / len(got) == pytest.approx(0.1, abs=0.01)
    for a in got:
        if a.action is None:
            assert a.action_at == 0.0 and a.resize_to is None
            continue
        assert 0.0 < a.action_at < 1.0
        if a.action == "resize":
            assert a.resize_to in {"small", "medium", "large"} and a.resize_to != a.flavor
        else:
            assert a.resize_to is None


def test_action_chances_above_one_are_scaled() -> None:
    got = draw(scenario(count=10000, actions={"migrate": 0.8, "reboot": 0.8}))
    actions = Counter(a.action for a in got)
    assert set(actions) == {"migrate", "reboot"}
    assert actions["migrate"] / len(got) == pytest.approx(0.5, abs=0.02)


def test_one_flavor_means_no_resize() -> None:
    got = draw(scenario(count=500, flavor_mix={"small": 1.0}, actions={"resize": 1.0}))
    assert {a.action for a in got} == {None}


def test_flavor_for_takes_the_smallest_that_fits() -> None:
    s = scenario(flavors=[*FLAVORS, {"name": "fat", "vcpus": 2, "memory_mb": 16384}])
    assert flavor_for(1, 1000, s.flavors) == "small"
    assert flavor_for(1, 512, s.flavors) == "tiny"
    assert flavor_for(2, 5000, s.flavors) == "fat"  # fewest vcpus before least memory
    assert flavor_for(3, 100, s.flavors) == "large"
    name = flavor_for(8, 8192, s.flavors)
    assert name == "trace-8c-8192m" and adhoc_flavor(name) == (8, 8192)
    with pytest.raises(ValueError, match="not an ad-hoc"):
        adhoc_flavor("large")


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_scenario_parses_and_makes_arrivals(path: Path) -> None:
    s = load(path)
    got = draw(s, s.seed)
    flavors = {f.name for f in s.flavors}
    assert got and [a.t for a in got] == sorted(a.t for a in got)
    assert {a.project for a in got} <= {p.name for p in s.projects}
    for a in got:
        assert a.flavor in flavors or adhoc_flavor(a.flavor)


def test_the_examples_are_the_ones_documented() -> None:
    readme = (SCENARIOS / "README.md").read_text()
    for path in SCENARIOS.glob("*.toml"):
        assert f"`{path.name}`" in readme
