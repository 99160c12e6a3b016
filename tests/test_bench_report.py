"""The benchmark's judging on plain data: ratio goals, the idle goal per host, `--check`'s exit status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import curve, plot, report
from bench.goals import QUICK, Row, Sizes, idle_bound, met, rows

HYBRID = {
    "cpu": "cpu",
    "cores": 2,
    "memory_gib": 24,
    "kernel": "6",
    "python": "3.11",
    "cgroup2": "/sys/fs/cgroup/unified",
    "cgroup_mode": "hybrid",
    "controllers": ["hugetlb"],
    "loadavg": 0.1,
    "commit": "abc",
}


def _row(data: dict[str, Any], wnr: str, peer_key: str) -> dict[str, Any]:
    found = [r for r in data["rows"] if r["wnr"] == wnr and r["peer_key"] == peer_key]
    assert 1 == len(found)
    return found[0]


def _result(metrics: dict[str, list[float]], mode: str = "full", **kw: Any) -> dict[str, Any]:
    sizes = QUICK if mode == "quick" else Sizes()
    return report.result(
        kw.get("host", HYBRID),
        mode,
        runs=1,
        sizes=sizes,
        metrics=metrics,
        errors=kw.get("errors", []),
    )


def test_a_ratio_goal_bounds_wnr_over_its_peer_not_the_median() -> None:
    """A ratio row is met when wnr / peer is within the bound, whatever the absolute figure."""
    row = Row("cold start", "s", 1.5, "cold_large", "floor", "floor_large", goal_kind="ratio")
    assert [True, False] == [met(row, 100.0, 1.5, True), met(row, 0.1, 1.51, True)]


def test_an_absolute_goal_bounds_the_median() -> None:
    """An absolute row is met when wnr's median is within the bound, whatever the ratio."""
    row = Row("wrapper", "MiB", 4, "job_rss", "sh", "sh", False)
    assert [True, False] == [met(row, 4.0, 99.0, True), met(row, 4.1, 0.01, True)]


def test_a_row_without_a_figure_or_not_judged_is_neither_met_nor_missed() -> None:
    """No goal, no ratio to judge, or a size the goal is not for: None."""
    ratio = Row("exit", "ms", 1.5, "exit", "cgroup.events", "exit_peer", goal_kind="ratio")
    info = Row("(Pss)", "MiB", None, "mem_pss")
    assert [None, None, None] == [
        met(ratio, 5.0, None, True),
        met(ratio, 5.0, 9.0, False),
        met(info, 5.0, 1.0, True),
    ]


def test_the_idle_goal_depends_on_the_roots_controllers() -> None:
    """2x supervisord on a hybrid host; 1x where the root offers cpu, memory and pids."""
    assert [2.0, 2.0, 1.0] == [
        idle_bound(["hugetlb"]),
        idle_bound(["cpu", "memory"]),
        idle_bound(["cpuset", "cpu", "io", "memory", "pids"]),
    ]


def test_the_issues_ratio_goals_are_in_the_table() -> None:
    """Each ratio the issue sets, as (wnr, peer, bound) on a hybrid host."""
    wanted = {
        ("cold_large", "floor_large", 1.5),
        ("cold_large", "sup_large", 0.1),
        ("noop", "noop_peer", 2),
        ("spec", "wf", 0.5),
        ("exit", "exit_peer", 1.5),
        ("idle", "idle_sup", 2.0),
        ("drain", "kill", 3),
        ("mem", "mem_sup", 1.3),
    }
    actual = {(r.wnr, r.peer_key, r.goal) for r in rows(Sizes(), ["hugetlb"])}
    assert set() == wanted - actual


def test_result_judges_the_ratio_of_the_medians() -> None:
    """The daemon at 1.4x supervisord's RSS misses 1.3x though 40 MiB is small."""
    data = _result({"mem": [40.0, 41.0, 39.0], "mem_sup": [30.0, 28.0, 29.0]})
    row = _row(data, "mem", "mem_sup")
    assert (40.0, 29.0, round(40 / 29, 4), False) == (
        row["median"],
        row["peer_median"],
        row["ratio"],
        row["met"],
    )


def test_check_exits_3_on_a_missed_ratio() -> None:
    """With --check, a missed ratio in full mode is exit status 3; without, 0."""
    data = _result({"drain": [40.0], "kill": [10.0]})
    assert (3, 0) == (report.exit_status(data, True), report.exit_status(data, False))


def test_check_ignores_a_missed_absolute_goal() -> None:
    """An absolute goal missed (wrapper RSS over 4 MiB) is printed, not asserted."""
    data = _result({"job_rss": [5.0], "sh": [1.6]})
    assert (False, [], 0) == (
        _row(data, "job_rss", "sh")["met"],
        report.misses(data),
        report.exit_status(data, True),
    )


def test_quick_mode_never_asserts() -> None:
    """A ratio missed in quick mode does not change the exit status, --check or not."""
    data = _result({"scrape": [9.0], "noop": [1.0]}, mode="quick")
    assert (False, 0) == (_row(data, "scrape", "noop")["met"], report.exit_status(data, True))


def test_an_unmeasured_scenario_is_exit_status_1_and_a_miss_wins_over_it() -> None:
    """Errors alone give 1; with --check a missed ratio gives 3 even then."""
    fine = _result({}, errors=["run 1: drain: timed out"])
    missed = _result({"drain": [40.0], "kill": [10.0]}, errors=["run 1: idle: timed out"])
    assert (1, 1, 3) == (
        report.exit_status(fine, True),
        report.exit_status(missed, False),
        report.exit_status(missed, True),
    )


def test_the_goal_column_marks_ratio_bounds() -> None:
    """The table writes a ratio bound with an x, an absolute one without."""
    text = report.table(_result({}))
    assert ("| <= 1.5x |" in text, "| <= 4 |" in text) == (True, True)


def _fleet(jobs: int, **figures: float) -> dict[str, list[float]]:
    return {curve.key(jobs, name): [value] for name, value in figures.items()}


def _point(points: list[dict[str, Any]], jobs: int, key: str) -> dict[str, Any]:
    found = [p for p in points if p["jobs"] == jobs and p["key"] == key]
    assert 1 == len(found)
    return found[0]


def test_the_curve_gives_the_ratio_and_the_cost_per_job_from_the_previous_size() -> None:
    """From 1,000 to 2,000 jobs a cold start going from 2 s to 4 s costs 2 ms per added job."""
    metrics = {**_fleet(1000, cold=2.0, floor=1.0), **_fleet(2000, cold=4.0, floor=2.0)}
    points = curve.points(metrics, [2000, 1000], judged=False)
    first, second = _point(points, 1000, "cold"), _point(points, 2000, "cold")
    assert (None, 2.0, 2.0, 2.0) == (
        first["per_job"],
        first["ratio"],
        second["per_job"],
        second["ratio"],
    )


def test_the_curves_goals_are_judged_at_2000_jobs_in_full_mode_only() -> None:
    """At 2,000 jobs the no-op pass at 2.5x its floor read misses 2x; at 1,000, or quick, nothing is judged."""
    metrics = {**_fleet(1000, noop=25.0, read=10.0), **_fleet(2000, noop=25.0, read=10.0)}
    full = curve.points(metrics, [1000, 2000], judged=True)
    quick = curve.points(metrics, [1000, 2000], judged=False)
    assert (None, False, "<= 2x", None) == (
        _point(full, 1000, "noop")["met"],
        _point(full, 2000, "noop")["met"],
        _point(full, 2000, "noop")["goal"],
        _point(quick, 2000, "noop")["met"],
    )


def test_every_running_wrapper_needs_its_pidfd() -> None:
    """pidfds equal to the live wrappers meet the goal; one short misses it."""
    met_ = curve.points(_fleet(2000, pidfds=2032, wrappers=2032), [2000], judged=True)
    short = curve.points(_fleet(2000, pidfds=2031, wrappers=2032), [2000], judged=True)
    assert (True, False, "== 1x") == (
        _point(met_, 2000, "pidfds")["met"],
        _point(short, 2000, "pidfds")["met"],
        _point(met_, 2000, "pidfds")["goal"],
    )


def test_the_rss_added_per_job_from_256_to_2000_is_judged_in_kib() -> None:
    """RSS from 40 MiB to 74 MiB over 1,744 added jobs is about 20 KiB per job: over 16."""
    metrics = {**_fleet(256, rss=40.0), **_fleet(2000, rss=74.0)}
    span = _point(curve.points(metrics, [256, 2000], judged=True), 2000, "rss_span")
    assert (round(34 * 1024 / 1744, 4), False) == (span["per_job"], span["met"])


def test_no_rss_span_without_both_sizes() -> None:
    """Without a 256-job fleet there is no RSS-per-job goal to judge."""
    points = curve.points(_fleet(2000, rss=74.0), [1000, 2000], judged=True)
    assert [] == [p for p in points if p["key"] == "rss_span"]


def test_check_exits_3_on_a_missed_curve_goal() -> None:
    """A missed curve goal alone, in full mode, fails --check and is named."""
    data = _result({})
    data["curve"] = curve.points(_fleet(2000, exit=40.0, events=10.0), [2000], judged=True)
    assert (3, ["2000 jobs: job exit -> recorded (4, goal <= 1.5x)"]) == (
        report.exit_status(data, True),
        report.misses(data),
    )


def test_the_curve_plots_to_a_png(tmp_path: Path) -> None:
    """--plot writes a PNG of a saved curve (skipped where matplotlib is not installed)."""
    pytest.importorskip("matplotlib")
    metrics = {
        **_fleet(256, cold=1.0, floor=0.5, rss=40.0),
        **_fleet(2000, cold=8.0, floor=4.0, rss=70.0),
    }
    data = {**_result({}), "curve": curve.points(metrics, [256, 2000], judged=True)}
    target = tmp_path / "curve.png"
    plot.plot(data, target)
    assert b"\x89PNG" == target.read_bytes()[:4]
