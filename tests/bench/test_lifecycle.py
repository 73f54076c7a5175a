"""``nimbus bench lifecycle`` runs end to end at tiny sizes (no figures are checked)."""

from __future__ import annotations

import argparse

import pytest

from nimbus.bench import lifecycle
from nimbus.cli import main

pytestmark = pytest.mark.timeout(30)


def test_bench_lifecycle_prints_both_rates_and_their_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "lifecycle", "--hosts", "3", "--count", "4", "--concurrency", "2",
                 "--poll", "0.01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 fake hosts, 2 lifecycles in flight")
    assert "SimRuntime + sim transport + SimDatabase" in lines[1]
    assert "lifecycles per virtual s" in lines[2]
    assert "asyncio + in-process + aiosqlite file" in lines[3]
    assert lines[4].startswith("ratio sim / asyncio (wall clock)")
    assert not any("FAILED" in line for line in lines)


def test_the_simulated_run_is_deterministic_in_virtual_time() -> None:
    args = argparse.Namespace(hosts=2, count=3, concurrency=2, poll=0.01, seed=3)
    first, second = lifecycle.in_simulation(args), lifecycle.in_simulation(args)
    assert (first.count, first.failed) == (3, 0)
    assert first.virtual == second.virtual > 0
