"""`--plot FILE.png`: the per-job curve (bench.curve's points) drawn with matplotlib.

Above bench.curve, called by bench.cli after a measurement or, with `--from
RESULT.json`, on a saved result without measuring. matplotlib (the `bench`
extra) is imported only here and only when a plot is asked for, so the
benchmark itself runs without it. The figure repeats the curve table (its
source of truth): one panel per metric, wnr against its floor or peer over
the fleet sizes, and one of the ratios with their goals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.curve import GOAL_JOBS, METRICS, Metric


def _series(
    points: Sequence[Mapping[str, Any]], key: str, field: str
) -> tuple[list[int], list[float]]:
    """(jobs, values) of one metric's measured points."""
    found = [(p["jobs"], p[field]) for p in points if p["key"] == key and p[field] is not None]
    return [j for j, _ in found], [v for _, v in found]


def _jobs_axis(ax: Any, points: Sequence[Mapping[str, Any]]) -> None:
    """A log axis of the fleet sizes, each one a tick: 100 to 2,000 jobs, evenly apart."""
    sizes = sorted({p["jobs"] for p in points})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("jobs")


def _panel(ax: Any, points: Sequence[Mapping[str, Any]], metric: Metric) -> None:
    jobs, ours = _series(points, metric.key, "wnr")
    ax.plot(jobs, ours, "o-", label="wnr")
    if metric.peer_key is not None:
        peer_jobs, theirs = _series(points, metric.key, "peer_median")
        ax.plot(peer_jobs, theirs, "s--", label=metric.peer)
    ax.set_title(metric.name)
    _jobs_axis(ax, points)
    ax.set_ylabel(metric.unit)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _ratios(ax: Any, points: Sequence[Mapping[str, Any]]) -> None:
    for metric in METRICS:
        if metric.peer_key is None or metric.key == "pidfds":
            continue
        jobs, ratios = _series(points, metric.key, "ratio")
        (line,) = ax.plot(jobs, ratios, "o-", label=metric.name)
        if metric.bound is not None:
            ax.axhline(metric.bound, color=line.get_color(), linestyle=":", linewidth=1)
    ax.axvline(GOAL_JOBS, color="grey", linestyle=":", linewidth=1)
    ax.set_title(f"wnr / floor or peer (dotted: goals at {GOAL_JOBS} jobs)")
    _jobs_axis(ax, points)
    ax.set_yscale("log")  # ratios from 1x to hundreds
    ax.set_ylabel("x")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def plot(data: Mapping[str, Any], path: Path) -> None:
    """Write the curve of a result (bench.report's data with a `curve`) as a PNG."""
    import matplotlib  # noqa: PLC0415 (only when a plot is asked for)

    matplotlib.use("Agg")  # no display: a file
    from matplotlib import pyplot  # noqa: PLC0415

    points = data.get("curve") or []
    fig, axes = pyplot.subplots(2, 3, figsize=(15, 8.5))
    for ax, metric in zip(axes.flat, METRICS, strict=False):
        _panel(ax, points, metric)
    _ratios(axes.flat[len(METRICS)], points)
    host = data.get("machine", {})
    fig.suptitle(
        f"wnr per-job curve, {data.get('date', '?')}, {data.get('mode', '?')} mode, "
        f"{data.get('runs', '?')} run(s), commit {host.get('commit', '?')}, "
        f"{host.get('cores', '?')} cores, {host.get('cgroup_mode', '?')} cgroups"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)
