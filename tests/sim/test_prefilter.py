"""``[filter_scheduler] placement_prefilter = false``: plain requests skip placement's
candidates; the scheduler's columns filter and the claim keeps placement right."""

from __future__ import annotations

from typing import Any

from nimbus.sim.engine import run
from nimbus.sim.scenario import parse

from .test_engine import small


def tight(prefilter: bool) -> dict[str, Any]:
    """Two small hosts that the workload overfills, so that claims must refuse."""
    return small(
        hosts=[{"name": "h", "count": 2, "vcpus": 4, "memory_mb": 8192}],
        projects=[{"name": "web"}],
        workload={"rate": 1.0, "count": 60,
                  "lifetime": {"distribution": "fixed", "seconds": 200.0}},
        scheduler={"placement_prefilter": prefilter})


def test_without_the_prefilter_the_fleet_fills_the_same_and_never_overflows() -> None:
    with_it = run(parse(tight(True)))[0]
    without = run(parse(tight(False)))[0]
    for o in (with_it, without):
        assert o.violations == [], o.violations
        assert o.accepted == 60
        assert sum(o.failed.values()) > 0  # the fleet was full: some builds found no host
        peak = max(s.used["MEMORY_MB"] / s.capacity["MEMORY_MB"] for s in o.samples)
        assert peak <= 1.0
    # the same builds fail (with the prefilter a few are told so by placement's list,
    # without it by the scheduler's own ResourceFit)
    assert sum(without.failed.values()) == sum(with_it.failed.values())
    assert set(without.failed) == {"NoValidHost:ResourceFit"}
    assert without.time_to_active.count == with_it.time_to_active.count
