"""``nimbus sim`` from the command line: files written, repeatable JSON, exit statuses.

The runs use a tiny scenario: ``sim/scenarios/small.toml`` takes about 35 s of
wall time on a 2-core machine, too long for a unit test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nimbus.cli import main as cli

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ("utilization.png", "refusals.png", "queues.png", "hosts.png")

TINY = """\
name = "tiny"
seed = 7
sample_interval = 20.0

[[hosts]]
name = "h"
count = 3
vcpus = 8
memory_mb = 16384
availability_zones = ["az1", "az2"]

[[flavors]]
name = "small"
vcpus = 1
memory_mb = 2048

[[flavors]]
name = "large"
vcpus = 4
memory_mb = 8192

[[projects]]
name = "web"
share = 2.0

[[projects]]
name = "trial"
instances = 2

[workload]
rate = 0.5
count = 30
lifetime = { distribution = "exponential", mean = 60.0 }
actions = { reboot = 0.2 }

[driver]
default_timing = 0.5
timings = { spawn = 2.0 }

[[faults]]
kind = "host_crash"
at = 20.0
hosts = ["h-2"]
repair = 30.0
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


def sim(*args: str | Path) -> int:
    return cli(["sim", *(str(a) for a in args)])


def test_a_run_writes_its_report(tiny: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert sim(tiny, "--seed", "1", "--out", out, "--no-plots") == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.prom", "report.json",
                                                      "report.txt"]
    report = json.loads((out / "report.json").read_bytes())
    assert report["scenario"] == "tiny" and report["seed"] == 1
    assert report["arrivals"] == 30 and report["violations"] == []
    assert report["host_failures"] == report["host_recoveries"] == 1
    assert "nimbus_" in (out / "metrics.prom").read_text(encoding="utf-8")
    assert "all invariants hold" in (out / "report.txt").read_text(encoding="ascii")
    printed = capsys.readouterr().out
    assert "all invariants hold" in printed and "report.json" in printed
    # one seed, one report
    again = tmp_path / "again"
    assert sim(tiny, "--seed", "1", "--out", again, "--no-plots") == 0
    assert (again / "report.json").read_bytes() == (out / "report.json").read_bytes()


def test_plots_are_drawn(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert sim(tiny, "--out", out) == 0
    for name in PLOTS:
        assert (out / name).read_bytes().startswith(PNG), name


def test_json_goes_to_stdout(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim(tiny, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scenario"] == "tiny" and report["seed"] == 7
    assert report["accepted"] + sum(report["refused"].values()) == report["arrivals"] == 30


def test_compare_runs_both(tiny: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    packing = tmp_path / "packing.toml"
    packing.write_text("[scheduler]\nram_weight_multiplier = -1.0\n", encoding="utf-8")
    out = tmp_path / "run"
    assert sim(tiny, "--compare", packing, "--out", out, "--no-plots") == 0
    assert "packing.toml" in capsys.readouterr().out
    first = json.loads((out / "report.json").read_bytes())
    second = json.loads((out / "compare" / "report.json").read_bytes())
    assert first["arrivals"] == second["arrivals"] == 30
    assert first["refused"] == second["refused"]  # one workload; quota does not place


@pytest.mark.parametrize(("change", "named"), [
    (("[workload]\n", "[workload]\nburst = 3\n"), ("workload", "unknown field `burst`")),
    (('hosts = ["h-2"]', 'hosts = ["h-9"]'), ("faults[0].hosts", "no host 'h-9'")),
    (("vcpus = 8\n", "vcpus = 0\n"), ("hosts[0].vcpus", "must be 1 or more")),
], ids=["unknown-key", "bad-fault-host", "bad-value"])
def test_a_bad_scenario_exits_2_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str],
        named: tuple[str, str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace(*change), encoding="utf-8")
    assert sim(path, "--no-plots") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nimbus: error: {path}: {named[0]}: ")
    assert named[1] in err


def test_a_missing_scenario_exits_2(tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert sim(tmp_path / "nowhere.toml") == 2
    assert "nowhere.toml" in capsys.readouterr().err
