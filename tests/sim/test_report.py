"""The run report: text, comparison, plots, files, percentiles, failure reasons, progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nimbus.core.conductor.build import MaxRetriesExceeded
from nimbus.core.errors import DriverError, describe
from nimbus.core.scheduler.scheduler import FilterStep, HostsFilteredOut
from nimbus.sim import plots, report
from nimbus.sim.outcome import Latency, Outcome, Sample, Violation

PNG = b"\x89PNG\r\n\x1a\n"


def sample(t: float, vcpus: float, refused: dict[str, int]) -> Sample:
    return Sample(
        t=t, hosts_up=10, hosts_empty=4,
        used={"VCPU": vcpus, "MEMORY_MB": 2048.0 * vcpus},
        capacity={"VCPU": 160.0, "MEMORY_MB": 655360.0},
        capacity_nonempty={"VCPU": 80.0, "MEMORY_MB": 327680.0},
        stranded={"VCPU": 4.0, "MEMORY_MB": 8192.0 if vcpus else 0.0},
        instances_active=int(vcpus), instances_busy=2, refused=refused,
        queues={"scheduler": 1, "conductor": 2, **{f"compute.h{i}": 1 for i in range(10)}})


def outcome(**changes: object) -> Outcome:
    o = Outcome(
        scenario="small", seed=42, end_time=14400.0, hosts=10, arrivals=1200, accepted=1000,
        refused={"policy": 50, "quota:instances": 150},
        failed={"MaxRetriesExceeded": 5, "NoValidHost:ResourceFit": 30}, active=960,
        time_to_active=Latency(count=965, p50=1.5, p90=3.25, p99=9.0, max=12.5, mean=2.0),
        actions={"resize": {"ok": 10, "error": 2}, "reboot": {"ok": 4}}, reschedules=7,
        migrations=3, host_failures=2, host_recoveries=1, peak_hosts_used=8, hosts_needed=6,
        decisions=1010, claim_conflicts=12,
        samples=[sample(0.0, 0.0, {}), sample(3600.0, 40.0, {"policy": 10}),
                 sample(14400.0, 80.0, {"policy": 50, "quota:instances": 150})])
    for name, value in changes.items():
        setattr(o, name, value)
    return o


def lines_with(out: str, first: str) -> list[str]:
    return [line.split() for line in out.splitlines() if line.split()[:1] == [first]]


def test_text_has_the_figures() -> None:
    out = report.text(outcome())
    assert out.isascii()
    assert "small" in out and "42" in out and "4.00 h" in out
    assert lines_with(out, "accepted") == [["accepted", "1,000", "83.3%", "of", "arrivals"]]
    assert lines_with(out, "refused") == [["refused", "200", "16.7%", "of", "arrivals"]]
    # reasons by count, largest first
    assert out.index("quota:instances") < out.index("policy")
    assert out.index("NoValidHost:ResourceFit") < out.index("MaxRetriesExceeded")
    assert lines_with(out, "965") == [["965", "1.50", "3.25", "9.00", "12.50", "2.00"]]
    # VCPU used 0, 40, 80 of 160 (all hosts) and of 80 (non-empty hosts)
    assert lines_with(out, "VCPU")[0] == ["VCPU", "25.0%", "50.0%", "50.0%", "100.0%"]
    # stranded MEMORY_MB 0, 8192, 8192 of 655360
    assert lines_with(out, "MEMORY_MB")[1] == ["MEMORY_MB", "5,461.3", "8,192.0", "0.8%", "1.2%"]
    assert lines_with(out, "hosts") == [["hosts", "10"], ["hosts"], ["hosts", "needed", "6"]]
    assert lines_with(out, "claim") == [["claim", "conflicts", "12", "0.012", "per", "decision"]]
    assert lines_with(out, "resize") == [["resize", "2", "10"]]
    assert lines_with(out, "reboot") == [["reboot", "0", "4"]]
    assert "all invariants hold" in out


def test_text_lists_each_violation_and_copes_without_samples() -> None:
    v = Violation(invariant="no_overallocation", subject="host-3", detail="VCPU 40 > 32", t=99)
    out = report.text(outcome(violations=[v], samples=[], group_violations=1))
    assert lines_with(out, "t=99.0s") == [["t=99.0s", "no_overallocation", "host-3", "VCPU",
                                           "40", ">", "32"]]
    assert "all invariants hold" not in out
    assert lines_with(out, "server-group") == [["server-group", "violations", "1"]]
    assert "no samples" in out


def test_compare_puts_the_runs_side_by_side() -> None:
    a = outcome()
    b = outcome(accepted=1100, refused={"policy": 50, "anti-affinity": 3}, hosts_needed=5,
                samples=a.samples[:2])
    out = report.compare(a, b, ("spread", "pack"))
    assert "spread" in out and "pack" in out
    assert lines_with(out, "accepted") == [["accepted", "1,000", "1,100", "+100", "+10.0%"]]
    assert ["refused", "quota:instances", "150", "0", "-150", "-100.0%"] in lines_with(
        out, "refused")
    assert ["refused", "anti-affinity", "0", "3", "+3"] in lines_with(out, "refused")
    # a ratio differs in percentage points, with no relative change
    assert ["VCPU", "utilization", "mean", "25.0%", "12.5%", "-12.5", "pp"] in lines_with(
        out, "VCPU")
    assert lines_with(out, "hosts")[-1] == ["hosts", "needed", "6", "5", "-1", "-16.7%"]


@pytest.mark.parametrize("samples", [3, 1, 0])
def test_plots_are_png_files(tmp_path: Path, samples: int) -> None:
    o = outcome()
    o.samples = o.samples[:samples]
    paths = plots.plots(o, tmp_path)
    assert [p.name for p in paths] == ["utilization.png", "refusals.png", "queues.png",
                                       "hosts.png"]
    for p in paths:
        assert p.read_bytes().startswith(PNG)


def test_write_writes_every_file(tmp_path: Path) -> None:
    o = outcome()
    out = tmp_path / "run" / "1"
    files = report.write(o, out, metrics_text=b"nimbus_builds_total 1\n")
    assert sorted(files) == ["hosts.png", "metrics.prom", "queues.png", "refusals.png",
                             "report.json", "report.txt", "utilization.png"]
    assert all(p.parent == out and p.is_file() for p in files.values())
    assert json.loads(files["report.json"].read_bytes())["accepted"] == 1000
    assert files["report.txt"].read_text() == report.text(o)
    assert files["metrics.prom"].read_bytes() == b"nimbus_builds_total 1\n"


def test_write_without_metrics_or_plots(tmp_path: Path) -> None:
    files = report.write(outcome(), tmp_path, plots=False)
    assert sorted(files) == ["report.json", "report.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.txt"]


def test_percentiles() -> None:
    lat = report.percentiles([float(i) for i in range(1, 101)])
    assert lat.count == 100
    assert lat.p50 == pytest.approx(50.5)
    assert lat.p90 == pytest.approx(90.1)
    assert lat.p99 == pytest.approx(99.01)
    assert (lat.max, lat.mean) == (100.0, 50.5)
    assert report.percentiles([]) == Latency()


def filtered_out() -> str:
    steps = (FilterStep("ResourceFit", 10, 7), FilterStep("AvailabilityZoneFilter", 7, 0))
    reasons = "; ".join(f"{s.name} removed {s.before - s.after} of {s.before} hosts"
                        for s in steps)
    return describe(HostsFilteredOut(f"No valid host was found for instance 1 of 1: {reasons}",
                                     steps))


@pytest.mark.parametrize(("message", "reason"), [
    (filtered_out(), "NoValidHost:AvailabilityZoneFilter"),
    ("HostsFilteredOut: " + filtered_out(), "NoValidHost:AvailabilityZoneFilter"),
    ("No valid host was found for instance 2 of 3: ResourceFit removed 10 of 10 hosts",
     "NoValidHost:ResourceFit"),
    ("No valid host was found for instance 1 of 1: every host that passed the filters "
     "refused the claim", "NoValidHost:claims"),
    ("No valid host was found. There are not enough hosts available.", "NoValidHost"),
    (describe(MaxRetriesExceeded(
        "Exceeded maximum number of retries. Exhausted all hosts available for retrying "
        "build failures for instance 6f1c. Last failure on h1: " + filtered_out())),
     "MaxRetriesExceeded"),
    (describe(DriverError("fake failure injected: spawn on host-3")),
     "error:fake failure injected"),
    (describe(DriverError("cannot spawn guest 6f1c on h1: gone")), "error:cannot spawn guest"),
    (describe(ValueError("boom")), "error:ValueError"),
    ("", "error"),
])
def test_classify_failure(message: str, reason: str) -> None:
    assert report.classify_failure(message) == reason


def test_progress_disabled_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    bar = report.Progress(100.0, enabled=False)
    bar.update(50.0, events=1000)
    bar.close()
    assert capsys.readouterr() == ("", "")


def test_progress_enabled_writes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    bar = report.Progress(100.0, enabled=True)
    bar.update(50.0, events=1000)
    bar.update(500.0)  # past the end: held at the total
    bar.close()
    out, err = capsys.readouterr()
    assert out == ""
    assert "virtual time" in err and "100/100" in err
