"""The benchmark's table, its JSON form, the machine description and comparison with a JSON file.

A metric is a key with one value per run, already in its row's unit. A row
pairs a wnr metric (median over the runs, spread = min-max) with a peer's
metric measured in the same runs, and shows wnr / peer. Goals come from the
issue; rows without one (in parentheses) are informational.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, median
from reconciler.observe.mounts import cgroup2_mounts

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is."""

    cold_small: int = 100
    cold_large: int = 256  # also the fleet the steady-state scenarios run among
    samples: int = 5  # latency samples per run
    drain_processes: int = 100
    idle_window: float = 60.0
    pass_repeats: int = 10
    churn_jobs: int = 10_000  # run once per invocation, in the first run
    churn_in_flight: int = 16


QUICK = Sizes(
    cold_small=20, cold_large=50, samples=2, drain_processes=20, idle_window=5.0, churn_jobs=300
)


@dataclass(frozen=True)
class Row:
    """One line: a wnr metric, its goal (None: informational), and a peer's metric."""

    scenario: str
    unit: str
    goal: float | None
    wnr: str
    peer: str = ""
    peer_key: str = ""
    sized: bool = True  # its goal is for the full sizes only


def rows(s: Sizes) -> list[Row]:
    """The table, in the issue's order."""
    n, m, p = s.cold_small, s.cold_large, s.drain_processes
    c = f"churn: {s.churn_jobs} jobs, {s.churn_in_flight} in flight"
    return [
        Row(f"cold start: {n} jobs", "s", 0.5, "cold_small", "supervisord", "sup_small"),
        Row(f"cold start: {n} jobs", "s", 0.5, "cold_small", "floor", "floor_small"),
        Row(
            f"  (daemon launched on {n} specs)", "s", None, "boot_small", "supervisord", "sup_small"
        ),
        Row(f"cold start: {m} jobs", "s", 1.2, "cold_large", "floor", "floor_large"),
        Row(f"cold start: {m} jobs", "s", 1.2, "cold_large", "supervisord", "sup_large"),
        Row(f"no-op pass, {m} jobs (CPU)", "ms", 20, "noop", "read procs+cpu.stat", "noop_peer"),
        Row("  (pass taking usage samples, CPU)", "ms", None, "noop_sampling"),
        Row(f"metrics scrape, {m} jobs (CPU)", "ms", None, "scrape", "no-op pass", "noop"),
        Row("  metrics scrape / no-op pass (CPU)", "x", 1.0, "scrape_ratio", sized=False),
        Row(f"spec change -> applied, {m} jobs", "ms", 100, "spec", "watchfiles default", "wf"),
        Row(f"spec change -> applied, {m} jobs", "ms", 100, "spec", "inotify alone", "inotify"),
        Row("  (-> payload running)", "ms", None, "spec_running", "inotify alone", "inotify"),
        Row(
            f"job exit -> status recorded, {m} jobs",
            "ms",
            100,
            "exit",
            "cgroup.events",
            "exit_peer",
        ),
        Row(f"daemon memory, {m} jobs (RSS)", "MiB", 48, "mem", "supervisord", "mem_sup"),
        Row("  (daemon Pss)", "MiB", None, "mem_pss", "supervisord Pss", "mem_sup_pss"),
        Row(
            "per-job overhead (wrapper RSS)",
            "MiB",
            4,
            "job_rss",
            "JVM, JobAgent flags",
            "jvm",
            False,
        ),
        Row("per-job overhead (wrapper RSS)", "MiB", 4, "job_rss", "sh", "sh", False),
        Row("  (wrapper Pss)", "MiB", None, "job_pss", "JVM Pss", "jvm_pss"),
        Row(f"idle daemon CPU, {m} jobs", "% core", 0.5, "idle", "supervisord", "idle_sup"),
        Row(
            "  idle, metrics on, not scraped",
            "% core",
            0.5,
            "idle_metrics_quiet",
            "metrics off",
            "idle",
        ),
        Row(
            "  idle, metrics on, scraped every 15 s",
            "% core",
            0.5,
            "idle_metrics",
            "metrics off",
            "idle",
        ),
        Row(f"drain: {p} processes, grace 0", "ms", 50, "drain", "cgroup.kill alone", "kill"),
        Row(f"reload: {m} files, one edited", "ms", 50, "reload", "ruamel round-trip", "rt"),
        Row("  (reload pass CPU)", "ms", None, "reload_cpu"),
        Row(f"({c})", "jobs/s", None, "churn_rate"),
        Row(f"{c}: time per job, last / first window", "x", 1.2, "churn_flat"),
        Row("  (time per job, first window)", "ms", None, "churn_first"),
        Row("  (time per job, last window)", "ms", None, "churn_last"),
        Row("  (daemon CPU per job, last / first window)", "x", None, "churn_cpu_flat"),
        Row(f"{c}: RSS growth after 10 %", "MiB", 2, "churn_growth"),
        Row("  (RSS at 10 %)", "MiB", None, "churn_rss_warm"),
        Row("  (RSS at the end)", "MiB", None, "churn_rss_end"),
        Row(f"{c}: open fds, end vs start (difference)", "fds", 0, "churn_fds", sized=False),
        Row(f"{c}: left behind", "objects", 0, "churn_left", sized=False),
        Row(f"{c}: lost jobs", "jobs", 0, "churn_lost", sized=False),
    ]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem_kib = int(handle.readline().split()[1])
    mounts = cgroup2_mounts()
    controllers = (mounts[-1] / "cgroup.controllers").read_text().split() if mounts else []
    hybrid = bool(mounts) and str(mounts[-1]) != "/sys/fs/cgroup"
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cgroup2": str(mounts[-1]) if mounts else None,
        "cgroup_mode": "hybrid" if hybrid else "unified",
        "controllers": controllers,
        "loadavg": round(os.getloadavg()[0], 2),
        "commit": commit + ("-dirty" if dirty else ""),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def result(
    host: Mapping[str, Any],
    mode: str,
    *,
    runs: int,
    sizes: Sizes,
    metrics: Mapping[str, Sequence[float]],
    errors: Sequence[str],
) -> dict[str, Any]:
    """Everything about one invocation, as JSON-ready data."""
    table = []
    for row in rows(sizes):
        ours, theirs = metrics.get(row.wnr, []), metrics.get(row.peer_key, [])
        mid, peer = median(ours), median(theirs)
        judged = mode == "full" or not row.sized
        table.append(
            {
                **asdict(row),
                "median": _clean(mid),
                "min": _clean(min(ours)) if ours else None,
                "max": _clean(max(ours)) if ours else None,
                "peer_median": _clean(peer),
                "ratio": _clean(mid / peer) if ours and theirs and peer else None,
                "met": (mid <= row.goal) if judged and row.goal is not None and ours else None,
            }
        )
    return {
        "format": FORMAT_VERSION,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": dict(host),
        "mode": mode,
        "runs": runs,
        "sizes": asdict(sizes),
        "metrics": {k: list(v) for k, v in sorted(metrics.items())},
        "rows": table,
        "errors": list(errors),
    }


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    digits = 3 if abs(value) < 1 else 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f}{unit}"


def table(data: Mapping[str, Any]) -> str:
    """The Markdown table of one result, with a line on the machine and the run."""
    host = data["machine"]
    quick = [
        "goals are for the full sizes: quick mode judges only the per-job overhead "
        "and what churn leaves behind"
    ]
    if data["mode"] != "quick":
        quick = []
    lines = [
        f"wnr benchmark, {data['date']}, {data['mode']} mode, {data['runs']} run(s), "
        f"commit {host['commit']}, {data.get('seconds', '?')} s",
        f"machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, "
        f"Linux {host['kernel']}, Python {host['python']}, cgroup2 at {host['cgroup2']} "
        f"({host['cgroup_mode']}; controllers: {' '.join(host['controllers']) or 'none'})",
        f"load average (1 min) {host['loadavg']} at the start, "
        f"{host.get('loadavg_end', '?')} at the end: other work inflates absolute figures, "
        "peers are measured in the same runs",
        *quick,
        "",
        "| scenario | unit | goal | wnr median | spread (min-max) | peer | peer median "
        "| wnr / peer | goal met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in data["rows"]:
        spread = "-" if row["min"] is None else f"{_num(row['min'])}-{_num(row['max'])}"
        goal = "-" if row["goal"] is None else f"<= {row['goal']:g}"
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(
            f"| {row['scenario']} | {row['unit']} | {goal} | {_num(row['median'])} | {spread} "
            f"| {row['peer'] or '-'} | {_num(row['peer_median'])} | {ratio} | {met} |"
        )
    return "\n".join(lines)


def compare(new: Mapping[str, Any], old: Mapping[str, Any]) -> str:
    """wnr's medians now against an earlier result's, row by row."""
    before = {(r["scenario"], r["wnr"]): r for r in old.get("rows", [])}
    lines = [
        "",
        f"against {old.get('date', '?')} (commit {old.get('machine', {}).get('commit', '?')}):",
        "",
        "| scenario | unit | before | now | change |",
        "| --- | --- | --- | --- | --- |",
    ]
    done = set()
    for row in new["rows"]:
        key = (row["scenario"], row["wnr"])
        if key in done or key not in before:
            continue
        done.add(key)
        was, now = before[key]["median"], row["median"]
        change = f"{100 * (now - was) / was:+.0f}%" if was and now is not None else "-"
        lines.append(
            f"| {row['scenario']} | {row['unit']} | {_num(was)} | {_num(now)} | {change} |"
        )
    return "\n".join(lines)


def load(path: Path) -> dict[str, Any]:
    """A result written by `save`."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a benchmark result")
    return data


def save(data: Mapping[str, Any], path: Path) -> None:
    """Write a result as JSON."""
    path.write_text(json.dumps(data, indent=2) + "\n")
