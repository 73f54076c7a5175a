"""Trace readers: Nimbus's CSV layout and the Azure vmtable, on samples made here."""

from __future__ import annotations

import gzip
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from nimbus.sim.scenario import Scenario, ScenarioError, parse
from nimbus.sim.traces import TraceError, write_sample_azure, write_sample_csv
from nimbus.sim.workload import Arrival, adhoc_flavor, arrivals

SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"


def scenario(trace: Path | str, path: str = "", **workload: Any) -> Scenario:
    return parse({
        "hosts": [{"name": "h", "count": 1, "vcpus": 64, "memory_mb": 262144}],
        "flavors": [{"name": "small", "vcpus": 1, "memory_mb": 2048},
                    {"name": "medium", "vcpus": 2, "memory_mb": 4096},
                    {"name": "large", "vcpus": 4, "memory_mb": 8192},
                    {"name": "wide", "vcpus": 4, "memory_mb": 32768}],
        "projects": [{"name": "a", "share": 3.0}, {"name": "b"}, {"name": "c"}],
        "workload": {"kind": "trace", "trace": str(trace), **workload}}, path or "<scenario>")


def read(trace: Path, seed: int = 1, **workload: Any) -> list[Arrival]:
    return list(arrivals(scenario(trace, **workload), random.Random(seed)))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_generated_csv_sample_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_sample_csv(path, 300, random.Random(3))
    got = read(path)
    assert len(got) == 300 and [a.t for a in got] == sorted(a.t for a in got)
    assert read(path) == got
    assert any(a.lifetime is None for a in got)
    assert {a.project for a in got} == {"a", "b", "c"}
    members: dict[int, list[Arrival]] = defaultdict(list)
    for a in got:
        if a.group is not None:
            members[a.group].append(a)
    assert members and all(len({a.project for a in m}) == 1 and 2 <= len(m) <= 3
                           and {a.group_policy for a in m} == {"anti-affinity"}
                           for m in members.values())
    # 48 vcpus fit no flavor: an ad-hoc one
    assert {adhoc_flavor(a.flavor) for a in got if a.flavor.startswith("trace-")} <= {
        (48, 393216), (8, 32768)}


def test_the_committed_sample_is_the_generated_one(tmp_path: Path) -> None:
    write_sample_csv(tmp_path / "s.csv", 400, random.Random(7))
    assert (tmp_path / "s.csv").read_bytes() == (SCENARIOS / "sample-trace.csv").read_bytes()


def test_csv_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "note,end,submit,vcpus,memory_mb,flavor,project,group\n"
                 "x,30,10,1,100,,b,\n"
                 "\n"
                 "y,,5,3,3000,wide,,\n"
                 "z,8,5,2,4096,,c,g\n"
                 "w,,7,9,100,,,g\n")
    got = read(path, actions={"reboot": 1.0})
    assert [(a.t, a.lifetime, a.project, a.flavor, a.group) for a in got] == [
        (5.0, None, got[0].project, "wide", None),
        (5.0, 3.0, "c", "medium", 0),
        (7.0, None, "c", "trace-9c-100m", 0),
        (10.0, 20.0, "b", "small", None)]
    # an instance that lives to the end takes no action
    assert [a.action for a in got] == [None, "reboot", None, "reboot"]


def test_rows_are_sorted_by_time_keeping_file_order_for_ties(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "submit,lifetime,vcpus,memory_mb,project\n"
                 "9,1,1,1,a\n2,1,1,1,b\n2,1,1,1,c\n1,1,1,1,a\n")
    assert [(a.t, a.project) for a in read(path)] == [(1, "a"), (2, "b"), (2, "c"), (9, "a")]


def test_count_and_time_scale(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "submit,lifetime,vcpus,memory_mb\n"
                 "30,10,1,1\n20,10,1,1\n10,,1,1\n")
    got = read(path, count=2, time_scale=0.5)
    assert [(a.t, a.lifetime) for a in got] == [(10.0, 5.0), (15.0, 5.0)]


def test_a_relative_trace_is_next_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "sc").mkdir()
    write_sample_csv(tmp_path / "sc" / "t.csv", 20, random.Random(1))
    s = scenario("t.csv", path=str(tmp_path / "sc" / "x.toml"))
    assert len(list(arrivals(s, random.Random(1)))) == 20
    with pytest.raises(TraceError, match="cannot read"):
        list(arrivals(s, random.Random(1), base_dir=tmp_path))
    assert len(list(arrivals(s, random.Random(1), base_dir=tmp_path / "sc"))) == 20


def test_gz_files_read_as_the_plain_ones(tmp_path: Path) -> None:
    write_sample_csv(tmp_path / "t.csv.gz", 50, random.Random(2))
    write_sample_csv(tmp_path / "t.csv", 50, random.Random(2))
    assert read(tmp_path / "t.csv.gz") == read(tmp_path / "t.csv")
    write_sample_azure(tmp_path / "v.csv.gz", 50, random.Random(2))
    write_sample_azure(tmp_path / "v.csv", 50, random.Random(2))
    assert read(tmp_path / "v.csv.gz", format="azure") == read(tmp_path / "v.csv", format="azure")


def test_a_generated_azure_sample_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "vmtable.csv"
    write_sample_azure(path, 200, random.Random(4))
    got = read(path, format="azure")
    assert len(got) == 200 and [a.t for a in got] == sorted(a.t for a in got)
    assert read(path, seed=99, format="azure") == got  # the file fixes everything
    assert any(a.lifetime is None for a in got) and {a.project for a in got} == {"a", "b", "c"}


def test_azure_buckets_and_subscriptions(tmp_path: Path) -> None:
    path = write(tmp_path / "vmtable.csv", "\n".join([
        "v1,s1,d,600,900,1,1,1,Interactive,2,4",
        "v2,s2,d,0,,1,1,1,Unknown,>24,>64",
        "v3,s3,d,300,300,1,1,1,Unknown,4,8",
        "v4,s4,d,300,600,1,1,1,Unknown,1,2",
        "v5,s2,d,1200,1500,1,1,1,Unknown,4,32",
    ]) + "\n")
    got = read(path, format="azure")
    assert [(a.t, a.lifetime, a.project, a.flavor) for a in got] == [
        (0.0, None, "b", "trace-30c-71680m"),
        (300.0, 0.0, "c", "large"),
        (300.0, 300.0, "a", "small"),
        (600.0, 300.0, "a", "medium"),
        (1200.0, 300.0, "b", "wide")]


CSV_ERRORS = [
    ("", 1, "", "empty file"),
    ("lifetime,vcpus,memory_mb\n", 1, "submit", "missing"),
    ("submit,lifetime,end,vcpus,memory_mb\n", 1, "lifetime", "not both"),
    ("submit,vcpus,memory_mb\n", 1, "lifetime", "a lifetime or an end"),
    ("submit,lifetime,memory_mb\n", 1, "vcpus", "no flavor column"),
    ("submit,lifetime,vcpus,memory_mb\n1,1,1,1\nsoon,1,1,1\n", 3, "submit", "'soon'"),
    ("submit,lifetime,vcpus,memory_mb\n-1,1,1,1\n", 2, "submit", "0 or more"),
    ("submit,lifetime,vcpus,memory_mb\nnan,1,1,1\n", 2, "submit", "'nan'"),
    ("submit,lifetime,vcpus,memory_mb\n1,-5,1,1\n", 2, "lifetime", "'-5'"),
    ("submit,end,vcpus,memory_mb\n10,5,1,1\n", 2, "end", "before submit"),
    ("submit,lifetime,vcpus,memory_mb\n1,1,1.5,1\n", 2, "vcpus", "whole number"),
    ("submit,lifetime,vcpus,memory_mb\n1,1,0,1\n", 2, "vcpus", "1 or more"),
    ("submit,lifetime,vcpus,memory_mb\n1,1,1\n", 2, "memory_mb", "''"),
    ("submit,lifetime,flavor\n1,1,huge\n", 2, "flavor", "no flavor 'huge'"),
    ("submit,lifetime,vcpus,memory_mb,project\n1,1,1,1,zz\n", 2, "project", "no project"),
    ("submit,lifetime,vcpus,memory_mb,project,group\n1,1,1,1,a,g\n2,1,1,1,b,g\n", 3,
     "project", "group 'g' is of project 'a'"),
]


@pytest.mark.parametrize(("text", "line", "column", "problem"), CSV_ERRORS)
def test_csv_errors_name_file_line_and_column(tmp_path: Path, text: str, line: int,
                                               column: str, problem: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(TraceError) as caught:
        read(path)
    err = caught.value
    assert isinstance(err, ScenarioError)
    assert (err.path, err.line, err.column) == (str(path), line, column)
    assert str(err).startswith(f"{path}:{line}: ") and problem in str(err)


AZURE_ERRORS = [
    ("v,s,d,0,300,1,1,1,Unknown,2\n", "vmmemorybucket", "columns"),
    ("v,s,d,later,300,1,1,1,Unknown,2,4\n", "vmcreated", "'later'"),
    ("v,s,d,600,300,1,1,1,Unknown,2,4\n", "vmdeleted", "before vmcreated"),
    ("v,s,d,0,300,1,1,1,Unknown,many,4\n", "vmcorecountbucket", "'many'"),
    ("v,s,d,0,300,1,1,1,Unknown,2,-4\n", "vmmemorybucket", "'-4'"),
]


@pytest.mark.parametrize(("text", "column", "problem"), AZURE_ERRORS)
def test_azure_errors_name_file_line_and_column(tmp_path: Path, text: str, column: str,
                                                 problem: str) -> None:
    path = write(tmp_path / "vmtable.csv", "v0,s,d,0,300,1,1,1,Unknown,2,4\n" + text)
    with pytest.raises(TraceError) as caught:
        read(path, format="azure")
    assert (caught.value.line, caught.value.column) == (2, column)
    assert problem in str(caught.value)


def test_unreadable_files_are_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"missing\.csv: cannot read"):
        read(tmp_path / "missing.csv")
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(TraceError, match=r"bad\.csv\.gz:1: cannot read"):
        read(tmp_path / "bad.csv.gz")
    (tmp_path / "cut.csv.gz").write_bytes(
        gzip.compress(b"submit,lifetime,vcpus,memory_mb\n" + b"1,1,1,1\n" * 100)[:-12])
    with pytest.raises(TraceError, match="cannot read"):
        read(tmp_path / "cut.csv.gz")
    (tmp_path / "latin.csv").write_bytes(b"submit,lifetime,vcpus,memory_mb\n1,1,1,1,\xff\n")
    with pytest.raises(TraceError, match="cannot read"):
        read(tmp_path / "latin.csv")
