"""``nimbus sim``: run a scenario, print and save its report.

Exit status: 0 when the run ends with every invariant holding, 3 when the
checker found a violation (each is printed with what and where), 2 for a
scenario that cannot be run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tomllib
from pathlib import Path

import msgspec

from nimbus.sim import report
from nimbus.sim.engine import run
from nimbus.sim.invariants import describe
from nimbus.sim.outcome import Outcome
from nimbus.sim.scenario import Scenario, ScenarioError, load, parse

#: The exit status of a run whose invariants did not hold.
EXIT_VIOLATIONS = 3


def with_scheduler_of(scenario: Scenario, path: str) -> Scenario:
    """``scenario`` with the ``[scheduler]`` table of the TOML file ``path``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    if "scheduler" not in data:
        raise ScenarioError(f"{path}: no [scheduler] table to compare")
    raw = msgspec.to_builtins(scenario)
    raw["scheduler"] = data["scheduler"]
    raw.pop("path", None)
    return parse(raw, scenario.path)


def _one(scenario: Scenario, seed: int | None,
         show_progress: bool) -> tuple[Outcome, bytes, float]:
    bar = report.Progress(scenario.horizon or None, enabled=show_progress)
    try:
        return run(scenario, seed=seed, progress=bar.update)
    finally:
        bar.close()


def main(args: argparse.Namespace) -> int:
    """Run ``args.scenario`` (and ``args.compare``); see the module docstring."""
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    scenario = load(args.scenario)
    other = with_scheduler_of(scenario, args.compare) if args.compare else None
    show = sys.stderr.isatty() and not os.environ.get("CI")
    outcome, metrics_text, wall = _one(scenario, args.seed, show)
    results = [(scenario.name, outcome, metrics_text)]
    if other is not None:
        b, b_metrics, b_wall = _one(other, args.seed, show)
        results.append((f"{scenario.name} ({Path(args.compare).name})", b, b_metrics))
        wall += b_wall
    if args.json:
        sys.stdout.write(outcome.to_json().decode() + "\n")
    else:
        print(report.text(outcome))
        if other is not None:
            print()
            print(report.compare(outcome, results[1][1],
                                 (Path(args.scenario).name, Path(args.compare).name)))
        print(f"\n(wall time {wall:.1f} s)")
    if args.out:
        out = Path(args.out)
        for i, (_, o, text) in enumerate(results):
            where = out if i == 0 else out / "compare"
            written = report.write(o, where, metrics_text=text, plots=not args.no_plots)
            if not args.json:
                print(f"wrote {', '.join(str(p) for p in written.values())}")
    bad = [v for _, o, _ in results for v in o.violations]
    if bad:
        print(describe(bad), file=sys.stderr)
        return EXIT_VIOLATIONS
    return 0

