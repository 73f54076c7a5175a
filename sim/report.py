"""The report of a simulation run: text on screen, a side-by-side comparison, the files.

The PNG plots are drawn by :mod:`nimbus.sim.plots`. Everything here reads an
:class:`~nimbus.sim.outcome.Outcome` and nothing else, so a saved ``report.json``
can be rendered again. :func:`classify_failure` and
:func:`percentiles` help the engine fill the outcome; :class:`Progress` is the
progress bar over virtual time that ``nimbus sim`` shows while it runs.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nimbus.sim.outcome import Latency, Outcome, Sample

#: The standard resource classes, in the order the report lists them.
STANDARD = ("VCPU", "MEMORY_MB", "DISK_GB")

# -- helpers for the engine ---------------------------------------------------------------


def percentiles(durations: Sequence[float]) -> Latency:
    """p50, p90, p99, max and mean of ``durations`` (zeros when there are none)."""
    if not durations:
        return Latency()
    a = np.asarray(durations, dtype=float)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return Latency(count=len(a), p50=float(p50), p90=float(p90), p99=float(p99),
                   max=float(a.max()), mean=float(a.mean()))


_STEP = re.compile(r"(\w+) removed (\d+) of (\d+) hosts")


def classify_failure(fault_message: str) -> str:
    """A short, stable reason for an instance fault message.

    The scheduler's "No valid host" message lists each filter step as ``<name>
    removed <n> of <m> hosts``; the reason names the step that left no host.
    Other messages keep their first words up to anything that varies (a number,
    a uuid, a host name), so faults of one kind count together.
    """
    msg = fault_message.strip()
    if "Exceeded maximum number of retries" in msg:
        return "MaxRetriesExceeded"
    if "refused the claim" in msg:
        return "NoValidHost:claims"
    steps = _STEP.findall(msg)
    if steps:
        emptied = [name for name, removed, before in steps if removed == before]
        return f"NoValidHost:{emptied[0] if emptied else steps[-1][0]}"
    if msg.startswith("No valid host") or "not enough hosts available" in msg:
        return "NoValidHost"
    words: list[str] = []
    for word in msg.split()[:4]:
        if any(c.isdigit() or c in "'\"" for c in word):
            break
        words.append(word.rstrip(":,;."))
        if word.endswith(":"):
            break
    return "error:" + " ".join(words) if words else "error"


class Progress:
    """A progress bar over virtual time on stderr; prints nothing unless ``enabled``.

    ``total`` is the run's length in virtual seconds (None if unknown). Call
    :meth:`update` with the virtual time reached (and, if known, the events
    simulated so far to show events per wall second), then :meth:`close`.
    """

    def __init__(self, total: float | None, enabled: bool) -> None:
        self.enabled = enabled
        self._total = total
        self._done = 0.0
        self._start = self._shown = time.monotonic()
        self._bar = tqdm(total=total, disable=not enabled, file=sys.stderr, unit="s",
                         unit_scale=True, desc="virtual time", dynamic_ncols=True)

    def update(self, now: float, events: int | None = None) -> None:
        """Move the bar to virtual time ``now``."""
        if not self.enabled:
            return
        reached = now if self._total is None else min(now, self._total)
        if events is not None:
            wall = time.monotonic()
            if wall - self._shown >= 0.5:  # formatting per event would cost more than it shows
                self._shown = wall
                rate = events / max(wall - self._start, 1e-9)
                self._bar.set_postfix_str(f"{rate:,.0f} events/s", refresh=False)
        if reached > self._done:
            self._bar.update(reached - self._done)
            self._done = reached

    def close(self) -> None:
        """End the bar (a newline on stderr when it was shown)."""
        self._bar.close()


# -- figures shared by the text and the comparison ----------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """One resource over the samples: ratios in 0..1, stranded in the resource's units.

    A figure no sample defines (no capacity, no non-empty host) is NaN.
    """

    mean: float
    peak: float
    nonempty_mean: float
    nonempty_peak: float
    stranded_mean: float
    stranded_peak: float
    stranded_share_mean: float
    stranded_share_peak: float


def resources(samples: Sequence[Sample]) -> list[str]:
    """The resource classes of ``samples``: the standard ones first, then by name."""
    seen = {rc for s in samples for rc in (*s.capacity, *s.used)}
    return [rc for rc in STANDARD if rc in seen] + sorted(seen.difference(STANDARD))


def _mean_peak(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return sum(values) / len(values), max(values)


def _ratios(samples: Sequence[Sample], rc: str, num: str, den: str) -> list[float]:
    out = []
    for s in samples:
        cap = getattr(s, den).get(rc, 0.0)
        if cap > 0:
            out.append(getattr(s, num).get(rc, 0.0) / cap)
    return out


def usage(samples: Sequence[Sample]) -> dict[str, Usage]:
    """Utilization and stranded capacity per resource class, mean and peak over samples."""
    found = {}
    for rc in resources(samples):
        mean, peak = _mean_peak(_ratios(samples, rc, "used", "capacity"))
        ne_mean, ne_peak = _mean_peak(_ratios(samples, rc, "used", "capacity_nonempty"))
        st_mean, st_peak = _mean_peak([s.stranded.get(rc, 0.0) for s in samples])
        sh_mean, sh_peak = _mean_peak(_ratios(samples, rc, "stranded", "capacity"))
        found[rc] = Usage(mean, peak, ne_mean, ne_peak, st_mean, st_peak, sh_mean, sh_peak)
    return found


def _by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _n(x: float, places: int = 1) -> str:
    if isinstance(x, int):
        return f"{x:,}"
    return "-" if math.isnan(x) else f"{x:,.{places}f}"


def _pct(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{100 * ratio:.1f}%"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _duration(seconds: float) -> str:
    if seconds > 3 * 3600:
        return f"{seconds / 3600:,.2f} h ({seconds:,.0f} s)"
    if seconds > 180:
        return f"{seconds / 60:,.1f} min ({seconds:,.0f} s)"
    return f"{seconds:,.2f} s"


def _table(rows: Sequence[Sequence[str]], indent: int = 2, left: int = 1) -> list[str]:
    """Rows as aligned lines: the first ``left`` columns left-aligned, the others
    right-aligned."""
    width = max(len(r) for r in rows)
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(width)]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < left else c.rjust(widths[i])
                 for i, c in enumerate(r)]
        lines.append((" " * indent + "  ".join(cells)).rstrip())
    return lines


# -- text ---------------------------------------------------------------------------------


def text(o: Outcome) -> str:
    """The on-screen report of a run: plain ASCII, aligned columns."""
    out = ["nimbus sim report", *_table([
        ("scenario", o.scenario), ("seed", str(o.seed)),
        ("virtual time", _duration(o.end_time)), ("hosts", _n(o.hosts))], left=2)]
    refused, failed = sum(o.refused.values()), sum(o.failed.values())
    rows = [("arrivals", _n(o.arrivals), ""),
            ("accepted", _n(o.accepted), _share(o.accepted, o.arrivals) + " of arrivals"),
            ("refused", _n(refused), _share(refused, o.arrivals) + " of arrivals")]
    rows += [(f"  {why}", _n(k), "") for why, k in _by_count(o.refused)]
    rows.append(("failed", _n(failed), _share(failed, o.accepted) + " of accepted"))
    rows += [(f"  {why}", _n(k), "") for why, k in _by_count(o.failed)]
    rows.append(("active", _n(o.active), ""))
    out += ["", "requests", *_table(rows)]
    t = o.time_to_active
    out += ["", "time to ACTIVE (virtual seconds)", *_table([
        ("count", "p50", "p90", "p99", "max", "mean"),
        (_n(t.count), *(f"{v:,.2f}" for v in (t.p50, t.p90, t.p99, t.max, t.mean)))],
        left=0)]
    out += ["", *_usage_text(o)]
    out += ["", "hosts", *_table([
        ("peak hosts used", _n(o.peak_hosts_used)), ("hosts needed", _n(o.hosts_needed)),
        ("host failures", _n(o.host_failures)), ("host recoveries", _n(o.host_recoveries))])]
    out += ["", "scheduling", *_table([
        ("decisions", _n(o.decisions), ""),
        ("claim conflicts", _n(o.claim_conflicts), _per(o.claim_conflicts, o.decisions)),
        ("reschedules", _n(o.reschedules), _per(o.reschedules, o.accepted, "boot")),
        ("migrations", _n(o.migrations), "")])]
    out += ["", *_actions_text(o)]
    out += ["", "checks", *_table([("server-group violations", _n(o.group_violations)),
                                   ("invariant violations", _n(len(o.violations)))])]
    if o.violations:
        out += _table([(f"t={v.t:,.1f}s", v.invariant, v.subject, v.detail)
                       for v in o.violations], indent=4, left=4)
    else:
        out.append("  all invariants hold")
    return "\n".join(out) + "\n"


def _per(part: int, whole: int, what: str = "decision") -> str:
    return f"{part / whole:.3f} per {what}" if whole else ""


def _usage_text(o: Outcome) -> list[str]:
    title = f"utilization (used / capacity, over {len(o.samples)} samples)"
    found = usage(o.samples)
    if not found:
        return [title, "  no samples"]
    util = [("resource", "mean", "peak", "mean non-empty", "peak non-empty")]
    util += [(rc, _pct(u.mean), _pct(u.peak), _pct(u.nonempty_mean), _pct(u.nonempty_peak))
             for rc, u in found.items()]
    stranded = [("resource", "mean", "peak", "mean % cap", "peak % cap")]
    stranded += [(rc, _n(u.stranded_mean), _n(u.stranded_peak), _pct(u.stranded_share_mean),
                  _pct(u.stranded_share_peak)) for rc, u in found.items()]
    return [title, *_table(util), "", "stranded capacity (free where another resource is "
            "exhausted)", *_table(stranded)]


def _actions_text(o: Outcome) -> list[str]:
    if not o.actions:
        return ["actions", "  none"]
    outcomes = sorted({r for by in o.actions.values() for r in by})
    rows = [("action", *outcomes)]
    rows += [(name, *(_n(by.get(r, 0)) for r in outcomes)) for name, by in
             sorted(o.actions.items())]
    return ["actions (by outcome)", *_table(rows)]


# -- comparison ---------------------------------------------------------------------------

#: How a figure's difference reads: counts and amounts get a relative change,
#: ratios a difference in percentage points.
COUNT, AMOUNT, RATIO = "count", "amount", "ratio"


def _figures(o: Outcome, refused: list[str], failed: list[str],
             rcs: list[str]) -> list[tuple[str, float, str]]:
    t, found = o.time_to_active, usage(o.samples)
    rows: list[tuple[str, float, str]] = [
        ("virtual time (s)", o.end_time, AMOUNT), ("hosts", o.hosts, COUNT),
        ("arrivals", o.arrivals, COUNT), ("accepted", o.accepted, COUNT),
        ("refused", sum(o.refused.values()), COUNT)]
    rows += [(f"  refused {r}", o.refused.get(r, 0), COUNT) for r in refused]
    rows.append(("failed", sum(o.failed.values()), COUNT))
    rows += [(f"  failed {r}", o.failed.get(r, 0), COUNT) for r in failed]
    rows.append(("active", o.active, COUNT))
    rows += [(f"time to ACTIVE {p} (s)", getattr(t, p), AMOUNT)
             for p in ("p50", "p90", "p99", "max")]
    for rc in rcs:
        u = found.get(rc)
        rows += [(f"{rc} utilization {name}", getattr(u, attr) if u else math.nan, RATIO)
                 for name, attr in (("mean", "mean"), ("peak", "peak"),
                                    ("mean non-empty", "nonempty_mean"),
                                    ("peak non-empty", "nonempty_peak"))]
        rows += [(f"{rc} stranded {name}", getattr(u, attr) if u else math.nan, AMOUNT)
                 for name, attr in (("mean", "stranded_mean"), ("peak", "stranded_peak"))]
    rows += [("peak hosts used", o.peak_hosts_used, COUNT),
             ("hosts needed", o.hosts_needed, COUNT), ("decisions", o.decisions, COUNT),
             ("claim conflicts", o.claim_conflicts, COUNT),
             ("reschedules", o.reschedules, COUNT), ("migrations", o.migrations, COUNT),
             ("host failures", o.host_failures, COUNT),
             ("host recoveries", o.host_recoveries, COUNT),
             ("server-group violations", o.group_violations, COUNT),
             ("invariant violations", len(o.violations), COUNT)]
    return rows


def _value(x: float, kind: str) -> str:
    return _pct(x) if kind == RATIO else _n(x, 2)


def _difference(a: float, b: float, kind: str) -> tuple[str, str]:
    if math.isnan(a) or math.isnan(b):
        return "-", ""
    d = b - a
    if kind == RATIO:
        return f"{100 * d:+.1f} pp", ""
    shown = f"{d:+,}" if isinstance(d, int) else f"{d:+,.2f}"
    return shown, f"{100 * d / a:+.1f}%" if a else ""


def _summed(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def compare(a: Outcome, b: Outcome, labels: tuple[str, str]) -> str:
    """Two runs' key figures side by side, with the difference ``b - a`` (and in % of a)."""
    refused = [r for r, _ in _by_count(_summed(a.refused, b.refused))]
    failed = [r for r, _ in _by_count(_summed(a.failed, b.failed))]
    rcs = resources([*a.samples, *b.samples])
    rows = [("figure", labels[0], labels[1], "b - a", "%")]
    for (name, x, kind), (_, y, _) in zip(_figures(a, refused, failed, rcs),
                                          _figures(b, refused, failed, rcs), strict=True):
        rows.append((name, _value(x, kind), _value(y, kind), *_difference(x, y, kind)))
    head = [f"nimbus sim comparison: a = {labels[0]}, b = {labels[1]}",
            f"  scenario {a.scenario} seed {a.seed}" + (
                "" if (a.scenario, a.seed) == (b.scenario, b.seed)
                else f" / scenario {b.scenario} seed {b.seed}"), ""]
    return "\n".join(head + _table(rows)) + "\n"


def write(o: Outcome, out_dir: Path, *, metrics_text: bytes = b"",
          plots: bool = True) -> dict[str, Path]:
    """Write the run's files into ``out_dir`` (made if missing): report.json, report.txt,
    metrics.prom (if ``metrics_text``) and the plots. Returns file name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report.json": out_dir / "report.json", "report.txt": out_dir / "report.txt"}
    files["report.json"].write_bytes(o.to_json())
    files["report.txt"].write_text(text(o), encoding="ascii", errors="replace")
    if metrics_text:
        files["metrics.prom"] = out_dir / "metrics.prom"
        files["metrics.prom"].write_bytes(metrics_text)
    if plots:
        from nimbus.sim.plots import plots as draw

        files.update((p.name, p) for p in draw(o, out_dir))
    return files
