"""The benchmark's table, its JSON form, the machine description and comparison with a JSON file.

A metric is a key with one value per run, already in its row's unit. A row
(bench.goals) pairs a wnr metric (median over the runs, spread = min-max)
with a peer's metric measured in the same runs, and shows wnr / peer. Goals
come from the issue, most of them ratio bounds on wnr / peer; rows without
one (in parentheses) are informational. `exit_status` is what `--check` asserts.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import REPO, median
from bench.goals import Sizes, met, rows
from reconciler.observe.mounts import cgroup2_mounts

FORMAT_VERSION = 2  # 2: ratio goals (`goal_kind`), the per-job curve


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
    for row in rows(sizes, host.get("controllers", ())):
        ours, theirs = metrics.get(row.wnr, []), metrics.get(row.peer_key, [])
        mid, peer = _clean(median(ours)), _clean(median(theirs))
        ratio = _clean(mid / peer) if mid is not None and peer else None
        judged = mode == "full" or not row.sized
        table.append(
            {
                **asdict(row),
                "median": mid,
                "min": _clean(min(ours)) if ours else None,
                "max": _clean(max(ours)) if ours else None,
                "peer_median": peer,
                "ratio": ratio,
                "met": met(row, mid, ratio, judged),
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
        "goals are for the full sizes: quick mode judges only the per-job overhead, "
        "the metrics scrape and what churn leaves behind, and asserts nothing"
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
        "a goal `<= 1.5x` bounds wnr / peer (the peer measured in the same runs); "
        "a goal without `x` bounds wnr's median",
        "",
        "| scenario | unit | goal | wnr median | spread (min-max) | peer | peer median "
        "| wnr / peer | goal met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in data["rows"]:
        spread = "-" if row["min"] is None else f"{_num(row['min'])}-{_num(row['max'])}"
        goal = _goal(row)
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(
            f"| {row['scenario']} | {row['unit']} | {goal} | {_num(row['median'])} | {spread} "
            f"| {row['peer'] or '-'} | {_num(row['peer_median'])} | {ratio} | {met} |"
        )
    return "\n".join(lines)


def _goal(row: Mapping[str, Any]) -> str:
    """`<= 1.5x` for a bound on wnr / peer, `<= 0.5` for one on wnr's median."""
    if row["goal"] is None:
        return "-"
    return f"<= {row['goal']:g}" + ("x" if row.get("goal_kind") == "ratio" else "")


def misses(data: Mapping[str, Any]) -> list[str]:
    """The judged ratio goals a result misses, as `scenario vs peer (wnr / peer, goal)`;
    absolute goals are printed, not asserted (another machine, or load, moves them)."""
    missed = []
    for row in data["rows"]:
        if row.get("goal_kind") == "ratio" and row["met"] is False:
            missed.append(
                f"{row['scenario']} vs {row['peer']} ({row['ratio']:.3g}, goal {_goal(row)})"
            )
    for point in data.get("curve", []):
        if point["met"] is False:
            figure = f"{point['jobs']} jobs: {point['metric']}"
            missed.append(f"{figure} ({point['judged']:.3g}, goal {point['goal']})")
    return missed


def exit_status(data: Mapping[str, Any], check: bool) -> int:
    """3 with `check` when a judged ratio misses its goal (full mode only: quick mode never
    asserts), else 1 when something could not be measured, else 0."""
    if check and data["mode"] == "full" and misses(data):
        return 3
    return 1 if data["errors"] else 0


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
