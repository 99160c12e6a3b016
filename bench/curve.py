"""The per-job curve: bench.scale's figures per fleet size, their ratios and per-job costs.

Pure data, beside bench.report (which prints the first table and asserts
`--check`) and below bench.plot. The metrics of size N are stored in the
run's metrics as `scale.N.KEY` (one value per run); `points` turns their
medians into one point per (size, metric): wnr against its floor or peer,
the ratio, and the cost per job from the previous size (for the daemon's
RSS: KiB per added job). The goals are the issue's for GOAL_JOBS jobs, and
the RSS added per job from RSS_FROM to GOAL_JOBS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import median

GOAL_JOBS = 2000
RSS_FROM = 256
RSS_KIB_PER_JOB = 16.0


@dataclass(frozen=True)
class Metric:
    """One curve: wnr's key, its peer's, the ratio bound at GOAL_JOBS and the per-job unit
    (`per_job` converts the metric's unit to it)."""

    key: str
    name: str
    unit: str
    peer_key: str | None
    peer: str
    bound: float | None
    per_job_unit: str
    per_job: float


METRICS = (
    Metric("cold", "cold start", "s", "floor", "floor", 1.5, "ms/job", 1e3),
    Metric("noop", "no-op pass (CPU)", "ms", "read", "read procs+cpu.stat", 2.0, "us/job", 1e3),
    Metric("exit", "job exit -> recorded", "ms", "events", "cgroup.events", 1.5, "us/job", 1e3),
    Metric("rss", "daemon RSS", "MiB", None, "", None, "KiB/job", 1024),
    # Equal, not within: a missing pidfd is an exit noticed only by the next timer or resync.
    Metric("pidfds", "pidfds held", "fds", "wrappers", "live wrappers (jobs+agents)", 1.0, "", 0),
)


def key(jobs: int, name: str) -> str:
    """The metrics key of one size's figure."""
    return f"scale.{jobs}.{name}"


def _mid(metrics: Mapping[str, Sequence[float]], name: str) -> float | None:
    values = metrics.get(name, [])
    return round(median(values), 4) if values else None


def _judge(metric: Metric, ratio: float | None) -> bool | None:
    if metric.bound is None or ratio is None:
        return None
    return ratio == metric.bound if metric.key == "pidfds" else ratio <= metric.bound


def _goal(metric: Metric) -> str | None:
    if metric.bound is None:
        return None
    return f"{'==' if metric.key == 'pidfds' else '<='} {metric.bound:g}x"


def points(
    metrics: Mapping[str, Sequence[float]], sizes: Sequence[int], judged: bool
) -> list[dict[str, Any]]:
    """One point per (size, metric), sizes ascending; goals judged only when `judged` (full
    mode) and at GOAL_JOBS."""
    out: list[dict[str, Any]] = []
    previous: dict[str, tuple[int, float]] = {}
    for jobs in sorted(sizes):
        for m in METRICS:
            wnr = _mid(metrics, key(jobs, m.key))
            peer = _mid(metrics, key(jobs, m.peer_key)) if m.peer_key else None
            ratio = round(wnr / peer, 4) if wnr is not None and peer else None
            per_job = None
            if wnr is not None and m.key in previous and m.per_job:
                before, value = previous[m.key]
                per_job = round((wnr - value) * m.per_job / (jobs - before), 4)
            if wnr is not None:
                previous[m.key] = (jobs, wnr)
            at_goal = judged and jobs == GOAL_JOBS
            point = _point(jobs, m, wnr, peer, ratio=ratio, per_job=per_job)
            point.update(goal=_goal(m) if at_goal else None, judged=ratio)
            point["met"] = _judge(m, ratio) if at_goal else None
            out.append(point)
    out.extend(_rss_span(metrics, sizes, judged))
    return out


def _point(
    jobs: int,
    m: Metric,
    wnr: float | None,
    peer: float | None,
    *,
    ratio: float | None,
    per_job: float | None,
) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "metric": m.name,
        "key": m.key,
        "unit": m.unit,
        "wnr": wnr,
        "peer": m.peer,
        "peer_median": peer,
        "ratio": ratio,
        "per_job": per_job,
        "per_job_unit": m.per_job_unit,
    }


def _rss_span(
    metrics: Mapping[str, Sequence[float]], sizes: Sequence[int], judged: bool
) -> list[dict[str, Any]]:
    """The RSS added per job from RSS_FROM to GOAL_JOBS jobs, when both were measured."""
    low, high = _mid(metrics, key(RSS_FROM, "rss")), _mid(metrics, key(GOAL_JOBS, "rss"))
    if RSS_FROM not in sizes or GOAL_JOBS not in sizes or low is None or high is None:
        return []
    kib = round((high - low) * 1024 / (GOAL_JOBS - RSS_FROM), 4)
    rss = METRICS[3]
    point = _point(GOAL_JOBS, rss, high, low, ratio=None, per_job=kib)
    point.update(metric=f"daemon RSS added per job from {RSS_FROM}", key="rss_span")
    point.update(peer=f"RSS at {RSS_FROM} jobs", unit="MiB", judged=kib)
    point.update(goal=f"<= {RSS_KIB_PER_JOB:g} KiB/job" if judged else None)
    point["met"] = kib <= RSS_KIB_PER_JOB if judged else None
    return [point]


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) >= 10:  # counts (pidfds), and round figures
        return str(int(value))
    digits = 3 if abs(value) < 1 else 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f}"


def table(curve: Sequence[Mapping[str, Any]]) -> str:
    """The curve as Markdown, one line per (size, metric)."""
    lines = [
        "| jobs | metric | unit | wnr median | floor / peer | peer median | wnr / peer "
        "| per job, from the previous size | goal | goal met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in curve:
        ratio = "-" if p["ratio"] is None else f"{p['ratio']:.2f}"
        per_job = "-" if p["per_job"] is None else f"{_num(p['per_job'])} {p['per_job_unit']}"
        met = {True: "yes", False: "NO", None: ""}[p["met"]]
        lines.append(
            f"| {p['jobs']} | {p['metric']} | {p['unit']} | {_num(p['wnr'])} | {p['peer'] or '-'} "
            f"| {_num(p['peer_median'])} | {ratio} | {per_job} | {p['goal'] or '-'} | {met} |"
        )
    return "\n".join(lines)
