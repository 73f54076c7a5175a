"""Trace files as workloads: Nimbus's own CSV layout and the Azure public VM table.

A trace replays recorded arrivals: each row is one instance with a submit time,
a lifetime (or none: it lives to the end of the run) and a size. Sizes map onto
the scenario's flavors with :func:`~nimbus.sim.workload.flavor_for` (an ad-hoc
flavor when none fits). The readers read the whole file (at most ``count`` rows),
then yield :class:`~nimbus.sim.workload.Arrival` records sorted by time, the
file's order kept for ties. ``.gz`` files are read through gzip. The layouts are
documented in ``sim/scenarios/README.md``; nothing here downloads anything.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from nimbus.sim.scenario import Scenario, ScenarioError
from nimbus.sim.workload import (
    ActionDrawer,
    Arrival,
    flavor_for,
    flavor_picker,
    new_arrival,
    project_picker,
)

#: The Azure Public Dataset vmtable columns, in file order.
AZURE_COLUMNS: tuple[str, ...] = (
    "vmid", "subscriptionid", "deploymentid", "vmcreated", "vmdeleted", "maxcpu", "avgcpu",
    "p95maxcpu", "vmcategory", "vmcorecountbucket", "vmmemorybucket")

#: What the open-ended top buckets stand for (the dataset's own notebook does the same).
AZURE_TOP_CORES = 30
AZURE_TOP_MEMORY_GB = 70.0


class TraceError(ScenarioError):
    """A trace file that cannot be read, naming the file, line and column at fault."""

    def __init__(self, path: str | Path, line: int, column: str, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {column}: {problem}" if column else f"{where}: {problem}")
        self.path, self.line, self.column = str(path), line, column


# A row as read: (submit, lifetime or None, project, flavor, group key or None).
_Row = tuple[float, float | None, str, str, str | None]


def trace_arrivals(scenario: Scenario, rng: random.Random,
                   base_dir: Path | None = None) -> Iterator[Arrival]:
    """The arrivals of a ``kind = "trace"`` workload, sorted by time.

    The file is ``workload.trace``, relative to ``base_dir`` (default: the
    scenario file's directory). Times are multiplied by ``time_scale``; actions
    are drawn as for a synthetic workload, except for instances that live to the end.
    """
    w = scenario.workload
    path = trace_path(scenario, base_dir)
    rows = READERS[w.format](path, scenario, rng)
    if w.count > 0:
        rows = itertools.islice(rows, w.count)
    listed = list(rows)
    listed.sort(key=lambda r: r[0])
    return _arrivals(listed, scenario, rng)


def trace_path(scenario: Scenario, base_dir: Path | None = None) -> Path:
    """Where the workload's trace file is."""
    path = Path(scenario.workload.trace)
    if path.is_absolute():
        return path
    if base_dir is None:
        base_dir = Path(scenario.path).parent if scenario.path else Path.cwd()
    return base_dir / path


def _arrivals(rows: list[_Row], scenario: Scenario, rng: random.Random) -> Iterator[Arrival]:
    w = scenario.workload
    scale, policy = w.time_scale, w.groups.policy
    actions = ActionDrawer(w, flavor_picker(w, scenario.flavors))
    groups: dict[str, int] = {}
    for submit, lifetime, project, flavor, key in rows:
        group = None if key is None else groups.setdefault(key, len(groups))
        action, at, resize_to = None, 0.0, None
        if lifetime is not None and actions.active:
            action, at, resize_to = actions.draw(rng, flavor)
        yield new_arrival(submit * scale, project, flavor,
                          None if lifetime is None else lifetime * scale,
                          group, None if group is None else policy, action, at, resize_to)


def _open(path: Path) -> IO[str]:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise TraceError(path, 0, "", f"cannot read: {exc.strerror or exc}") from None


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-blank row of a CSV file; I/O and decoding
    failures become TraceErrors."""
    with _open(path) as f:
        reader = csv.reader(f)
        try:
            for fields in reader:
                if any(f.strip() for f in fields):
                    yield reader.line_num, fields
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise TraceError(path, reader.line_num + 1, "", f"cannot read: {exc}") from None


def _number(path: Path, line: int, column: str, text: str, low: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(path, line, column, f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < low:
        raise TraceError(path, line, column, f"expected a number of {low:g} or more, got {text!r}")
    return value


def _whole(path: Path, line: int, column: str, text: str) -> int:
    value = _number(path, line, column, text, low=1.0)
    if value != int(value):
        raise TraceError(path, line, column, f"expected a whole number, got {text!r}")
    return int(value)


def read_csv(path: Path, scenario: Scenario, rng: random.Random) -> Iterator[_Row]:
    """The rows of a trace in Nimbus's CSV layout, in file order (see the README).

    Projects missing from the file are drawn by share with ``rng``, one per
    server group; a group's rows must name one project.
    """
    flavors = {f.name for f in scenario.flavors}
    projects = {p.name for p in scenario.projects}
    pick_project = project_picker(scenario)
    fits: dict[tuple[int, int], str] = {}
    group_project: dict[str, str] = {}
    rows = _lines(path)
    top, header = next(rows, (1, []))
    if not header:
        raise TraceError(path, top, "", "empty file: expected a header row")
    col = {name.strip(): i for i, name in reversed(list(enumerate(header)))}
    if "submit" not in col:
        raise TraceError(path, top, "submit", "missing from the header")
    if ("lifetime" in col) == ("end" in col):
        raise TraceError(path, top, "lifetime", "the header needs a lifetime or an end column, "
                         "not both")
    for need in ("vcpus", "memory_mb"):
        if need not in col and "flavor" not in col:
            raise TraceError(path, top, need, "missing from the header (and no flavor column)")
    ending = "lifetime" if "lifetime" in col else "end"
    at = {name: col.get(name) for name in
          ("submit", ending, "vcpus", "memory_mb", "flavor", "project", "group")}
    for line, fields in rows:
        cell = {name: fields[i].strip() if i is not None and i < len(fields) else ""
                for name, i in at.items()}
        submit = _number(path, line, "submit", cell["submit"])
        lifetime: float | None = None
        if cell[ending]:
            lifetime = _number(path, line, ending, cell[ending])
            if ending == "end":
                if lifetime < submit:
                    raise TraceError(path, line, "end", f"{cell['end']} is before submit")
                lifetime -= submit
        flavor = cell["flavor"]
        if flavor and flavor not in flavors:
            raise TraceError(path, line, "flavor", f"no flavor {flavor!r} in the scenario")
        if not flavor:
            size = (_whole(path, line, "vcpus", cell["vcpus"]),
                    _whole(path, line, "memory_mb", cell["memory_mb"]))
            flavor = fits.get(size) or fits.setdefault(
                size, flavor_for(size[0], size[1], scenario.flavors))
        group = cell["group"] or None
        project = cell["project"]
        if project and project not in projects:
            raise TraceError(path, line, "project", f"no project {project!r} in the scenario")
        if group is not None:
            if group not in group_project:
                group_project[group] = project or pick_project(rng)
            first = group_project[group]
            if project and project != first:
                raise TraceError(path, line, "project", f"group {group!r} is of project "
                                 f"{first!r}, this row names {project!r}")
            project = first
        elif not project:
            project = pick_project(rng)
        yield submit, lifetime, project, flavor, group


def _bucket(path: Path, line: int, column: str, text: str, top: float) -> float:
    return top if text.strip().startswith(">") else _number(path, line, column, text)


def read_azure(path: Path, scenario: Scenario, rng: random.Random) -> Iterator[_Row]:
    """The rows of an Azure Public Dataset vmtable (no header), in file order.

    Subscriptions map onto the scenario's projects round robin, in order of
    first appearance; sizes come from the core and memory buckets. ``rng`` is
    not used: the mapping is fixed by the file.
    """
    projects = [p.name for p in scenario.projects]
    owner: dict[str, str] = {}
    fits: dict[tuple[int, int], str] = {}
    for line, fields in _lines(path):
        if len(fields) < len(AZURE_COLUMNS):
            raise TraceError(path, line, AZURE_COLUMNS[len(fields)],
                             f"missing: a vmtable row has {len(AZURE_COLUMNS)} columns, "
                             f"this one {len(fields)}")
        created = _number(path, line, "vmcreated", fields[3])
        lifetime: float | None = None
        if fields[4].strip():
            lifetime = _number(path, line, "vmdeleted", fields[4]) - created
            if lifetime < 0:
                raise TraceError(path, line, "vmdeleted", f"{fields[4]} is before vmcreated")
        cores = _bucket(path, line, "vmcorecountbucket", fields[9], AZURE_TOP_CORES)
        memory_gb = _bucket(path, line, "vmmemorybucket", fields[10], AZURE_TOP_MEMORY_GB)
        size = (max(1, math.ceil(cores)), max(1, round(memory_gb * 1024)))
        flavor = fits.get(size) or fits.setdefault(
            size, flavor_for(size[0], size[1], scenario.flavors))
        sub = fields[1].strip()
        project = owner.get(sub) or owner.setdefault(sub, projects[len(owner) % len(projects)])
        yield created, lifetime, project, flavor, None


def _writer(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        # mtime=0: one sample, one file, byte for byte
        return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8",
                                newline="")
    return path.open("w", encoding="utf-8", newline="")


#: The sizes the samples draw, (vcpus, memory_mb) -> weight; the last fits no usual flavor.
SAMPLE_SIZES: dict[tuple[int, int], float] = {
    (1, 2048): 5.0, (2, 4096): 5.0, (2, 8192): 3.0, (4, 8192): 3.0, (4, 16384): 2.0,
    (8, 32768): 1.0, (3, 6000): 1.0, (48, 393216): 0.2}


def write_sample_csv(path: str | Path, rows: int, rng: random.Random, *,
                     projects: Sequence[str] = ()) -> None:
    """Write a small valid trace in Nimbus's CSV layout: ``rows`` instances over about
    a day, some living to the end, some in server groups of 2 or 3; with
    ``projects`` a project column naming them (else the reader assigns projects)."""
    header = ["submit", "lifetime", "vcpus", "memory_mb", "group"]
    if projects:
        header.append("project")
    t, group = 0.0, 0
    body: list[list[str]] = []
    while len(body) < rows:
        t += rng.expovariate(rows / 86400.0)
        vcpus, memory = rng.choices(list(SAMPLE_SIZES), list(SAMPLE_SIZES.values()))[0]
        members = min(rng.choice((2, 3)), rows - len(body)) if rng.random() < 0.1 else 1
        project = rng.choice(projects) if projects else ""
        for _ in range(members):
            life = "" if rng.random() < 0.05 else f"{rng.lognormvariate(math.log(3600), 1):.1f}"
            row = [f"{t:.1f}", life, str(vcpus), str(memory), f"g{group}" if members > 1 else ""]
            body.append([*row, project] if projects else row)
        if members > 1:
            group += 1
    _write(Path(path), [header, *body])


def write_sample_azure(path: str | Path, rows: int, rng: random.Random) -> None:
    """Write a small valid Azure vmtable (no header): ``rows`` VMs of a few
    subscriptions over about a day, times on the trace's 5-minute grid, some
    never deleted."""
    subs = [f"{rng.getrandbits(64):016x}" for _ in range(max(1, rows // 5))]
    categories = ("Delay-insensitive", "Interactive", "Unknown")
    body: list[list[str]] = []
    for _ in range(rows):
        created = 300 * rng.randrange(288)
        deleted = "" if rng.random() < 0.05 else str(created + 300 * rng.randrange(1, 100))
        avg = rng.uniform(0, 50)
        body.append([f"{rng.getrandbits(64):016x}", rng.choice(subs),
                     f"{rng.getrandbits(64):016x}", str(created), deleted,
                     f"{min(100.0, avg * 2):.2f}", f"{avg:.2f}", f"{min(100.0, avg * 1.5):.2f}",
                     rng.choice(categories), rng.choice(("2", "4", "8", "12", "24", ">24")),
                     rng.choice(("2", "4", "8", "32", "64", ">64"))])
    _write(Path(path), body)


def _write(path: Path, rows: Iterable[list[str]]) -> None:
    with _writer(path) as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


#: The readers by ``workload.format``.
READERS: dict[str, Callable[[Path, Scenario, random.Random], Iterator[_Row]]] = {
    "csv": read_csv, "azure": read_azure}
