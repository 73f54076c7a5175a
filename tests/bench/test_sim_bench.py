"""``nimbus bench sim`` runs end to end at a tiny size (no figures are checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nimbus.bench import sim
from nimbus.cli import main

pytestmark = pytest.mark.timeout(60)


def test_bench_sim_prints_runs_ratios_curve_and_profile(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    profile = tmp_path / "profile.txt"
    assert main(["bench", "sim", "--hosts", "6", "--lifecycles", "60", "--baseline-hosts", "2",
                 "--lifetime", "300", "--curve", "30,60,100000", "--max-seconds", "600",
                 "--profile", str(profile)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fleet: 6 hosts of 64 vCPU, 256 GiB")
    assert lines[1].startswith("workload: 60 Poisson arrivals at ")
    assert "report_interval 60 s" in lines[2] and "sync_power_state_interval 3600 s" in lines[2]
    assert lines[3].split()[:4] == ["run", "hosts", "lifecycles", "wall"]
    baseline, main_run = lines[4].split(), lines[5].split()
    assert baseline[:3] == ["baseline", "2", "20"]
    assert main_run[:5] == ["main", "(cProfiled)", "6", "60", main_run[4]]
    assert main_run[9:12] == ["60", "0", "0"]  # accepted, failed, refused
    assert float(main_run[8].replace(",", "")) > 0  # SimPy events per wall second
    assert lines[6].startswith("ratio main / baseline (lifecycles/s)")
    assert lines[7].startswith("ratio main / target (1,667 lifecycles/s)")
    assert lines[8] == f"profile written to {profile}"
    assert lines[10].startswith("scaling curve at 6 hosts")
    assert [line.split()[0] for line in lines[12:15]] == ["30", "60", "100,000"]
    assert "skipped: estimated" in lines[14]
    assert not any("VIOLATIONS" in line or "FAILED" in line for line in lines)
    text = profile.read_text()
    assert "top 40 by cumulative" in text and "top 40 by tottime" in text


def test_the_arrival_rate_keeps_the_asked_share_of_memory_busy() -> None:
    args = sim.build_parser().parse_args(["--hosts", "100", "--lifetime", "1000"])
    scenario = sim.build(100, 5000, args)
    alive = scenario.workload.rate * 1000
    mean_mb = 5.2 * 1024  # the 4:3:2:1 mix of 2, 4, 8 and 16 GiB
    assert alive * mean_mb == pytest.approx(0.65 * 100 * (256 - 4) * 1024)
    assert scenario.workload.count == 5000 and len(scenario.hosts) == 1
    assert scenario.hosts[0].count == 100
