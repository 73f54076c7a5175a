"""``nimbus bench api`` runs end to end at tiny sizes (no figures are checked)."""

from __future__ import annotations

import pytest

from nimbus.bench import api
from nimbus.cli import main

pytestmark = pytest.mark.timeout(120)


def test_bench_api_prints_both_parts_with_their_ratios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "api", "--servers", "5", "--list-requests", "1", "--boots", "3",
                 "--concurrency", "2", "--hosts", "2", "--poll", "0.01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("aiosqlite file Store, 2 fake hosts")
    assert lines[1].startswith("(a) GET /servers/detail?limit=1000, 5 servers")
    assert "req/s" in lines[2] and "HTTP" in lines[2]
    assert "req/s" in lines[3] and "in-process" in lines[3]
    assert "ratio HTTP / in-process" in lines[4]
    assert lines[5].startswith("(b) boot to ACTIVE, 3 boots, 2 in flight")
    assert "POST /servers over HTTP" in lines[6] and "p99" in lines[6]
    assert "ComputeAPI.create" in lines[7]
    assert "ratio HTTP / direct" in lines[8]
    assert not any("FAILED" in line for line in lines)


def test_percentiles_are_nearest_rank() -> None:
    out = api.BootOutcome([i / 1000 for i in range(1, 101)], 0)
    assert (out.pct(50), out.pct(90), out.pct(99)) == (50.0, 90.0, 99.0)
    assert api.BootOutcome([0.002], 0).pct(99) == 2.0
