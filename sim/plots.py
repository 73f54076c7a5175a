"""The PNG plots of a simulation run: utilization and stranded capacity, refusals,
queues and hosts over virtual time, drawn from an :class:`~nimbus.sim.outcome.Outcome`.

Figures are bare matplotlib ``Figure`` objects on the Agg canvas (no pyplot: no
window, no global registry keeping them alive).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nimbus.sim.outcome import Outcome, Sample
from nimbus.sim.report import resources

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Units of the resource classes on plot axes.
UNITS = {"VCPU": "vCPUs", "MEMORY_MB": "MiB", "DISK_GB": "GiB"}
#: More queue topics than this are summed by prefix (``compute.*``) on the plot.
MAX_TOPICS = 8


def _time_axis(o: Outcome) -> tuple[float, str]:
    """The divisor and label of the time axis: hours past 3 h, minutes past 3 min."""
    span = max(o.end_time, o.samples[-1].t if o.samples else 0.0)
    if span > 3 * 3600:
        return 3600.0, "virtual time (h)"
    if span > 180:
        return 60.0, "virtual time (min)"
    return 1.0, "virtual time (s)"


def _new_figure(rows: int) -> Figure:
    # A bare Figure on the Agg canvas: no pyplot, so no window and no global figure
    # registry that would keep it alive; it is freed once the function returns.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = 3.5 * rows
    fig = Figure(figsize=(10, height))
    # fixed margins (in inches, made fractions): a layout engine would double the draw time
    fig.subplots_adjust(left=0.08, right=0.92, top=1 - 0.8 / height, bottom=0.6 / height,
                        hspace=0.3)
    FigureCanvasAgg(fig)
    return fig


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])


def _utilization(fig: Figure, o: Outcome, x: np.ndarray, xlabel: str) -> None:
    top, bottom = fig.subplots(2, 1, sharex=True)
    for rc in resources(o.samples):
        y = [100 * s.used.get(rc, 0.0) / c if (c := s.capacity.get(rc, 0.0)) > 0 else np.nan
             for s in o.samples]
        top.plot(x, y, label=rc)
    top.set(title="Utilization (used / capacity of hosts up)", ylabel="used (%)", ylim=(0, 105))
    top.legend(loc="upper left", fontsize="small")
    bottom.set(title="Stranded capacity (free where another resource is exhausted)",
               xlabel=xlabel)
    lines = []
    for ax, rc, color in ((bottom, "VCPU", "tab:blue"),
                          (bottom.twinx(), "MEMORY_MB", "tab:orange")):
        lines += ax.plot(x, [s.stranded.get(rc, 0.0) for s in o.samples], color=color,
                         label=f"stranded {rc}")
        ax.set_ylabel(f"stranded {rc} ({UNITS[rc]})", color=color)
        ax.set_ylim(bottom=0)
    bottom.legend(handles=lines, loc="upper left", fontsize="small")


def _refusals(fig: Figure, o: Outcome, x: np.ndarray, xlabel: str) -> None:
    ax = fig.subplots()
    ax.set(title="Requests refused (cumulative, by reason)", xlabel=xlabel, ylabel="requests")
    reasons = sorted({r for s in o.samples for r in s.refused})
    if not reasons:
        _no_data(ax, "no refusals")
        return
    for r in reasons:
        ax.step(x, [s.refused.get(r, 0) for s in o.samples], where="post", label=r)
    ax.legend(loc="upper left", fontsize="small")


def _topics(samples: Sequence[Sample]) -> dict[str, list[int]]:
    """Queue length per topic, summed by prefix (``compute.*``) past MAX_TOPICS topics."""
    names = sorted({t for s in samples for t in s.queues})
    group = len(names) > MAX_TOPICS
    series: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        for topic, n in s.queues.items():
            key = topic.split(".", 1)[0] + ".*" if group and "." in topic else topic
            series.setdefault(key, [0] * len(samples))[i] += n
    return dict(sorted(series.items()))


def _queues(fig: Figure, o: Outcome, x: np.ndarray, xlabel: str) -> None:
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set(title="Messages waiting, by destination topic", ylabel="messages")
    series = _topics(o.samples)
    for topic, y in series.items():
        top.plot(x, y, label=topic)
    if series:
        top.legend(loc="upper left", fontsize="small")
    bottom.plot(x, [s.instances_busy for s in o.samples], color="tab:red")
    bottom.set(title="Instances in a task (building, resizing, migrating, deleting...)",
               xlabel=xlabel, ylabel="instances")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)


def _hosts(fig: Figure, o: Outcome, x: np.ndarray, xlabel: str) -> None:
    ax = fig.subplots()
    ax.plot(x, [s.hosts_up for s in o.samples], label="hosts up")
    ax.plot(x, [s.hosts_empty for s in o.samples], label="hosts up and empty")
    ax.set(title="Hosts", xlabel=xlabel, ylabel="hosts")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize="small")


_PLOTS = (("utilization.png", _utilization, 2), ("refusals.png", _refusals, 1),
          ("queues.png", _queues, 2), ("hosts.png", _hosts, 1))


def _draw(o: Outcome, out_dir: Path) -> list[Path]:
    written = []
    scale, xlabel = _time_axis(o)
    x = np.array([s.t for s in o.samples], dtype=float) / scale
    for name, draw, rows in _PLOTS:
        path = out_dir / name
        if len(o.samples) < 2:
            fig = _new_figure(1)
            ax = fig.subplots()
            ax.set_title(f"{name.removesuffix('.png')}: {o.scenario}")
            _no_data(ax, "no samples")
        else:
            fig = _new_figure(rows)
            draw(fig, o, x, xlabel)
            fig.suptitle(f"{o.scenario}, seed {o.seed}")
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def plots(o: Outcome, out_dir: Path) -> list[Path]:
    """Write utilization.png, refusals.png, queues.png and hosts.png into ``out_dir``."""
    return _draw(o, out_dir)
