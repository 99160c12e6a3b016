"""The issue's goals: how big each scenario is, the table's rows and how a row is judged.

Pure data, below `bench.report` (which renders the rows) and `bench.run`. A
goal is either a ratio bound on wnr / peer measured in the same run (most
rows: another machine, or load on this one, moves both sides) or, where the
issue gives no ratio, the absolute bound the row had before (churn, per-job
wrapper overhead, the 100-job cold start, reload, idle CPU with metrics on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The root's controllers that make a host "unified" for the idle goal: with them the kernel
# enforces the limits, so the daemon samples nothing it would sample on a hybrid host.
ENFORCING = frozenset({"cpu", "memory", "pids"})
READ = "read procs+cpu.stat"  # the no-op pass's floor


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
    scale_jobs: tuple[int, ...] = (100, 256, 1000, 2000)  # the per-job curve's fleets


QUICK = Sizes(
    cold_small=20,
    cold_large=50,
    samples=2,
    drain_processes=20,
    idle_window=5.0,
    churn_jobs=300,
    scale_jobs=(20, 50),
)


@dataclass(frozen=True)
class Row:
    """One line: a wnr metric, its goal (None: informational), and a peer's metric.

    `goal_kind` "ratio": the goal bounds wnr / peer; "abs": it bounds wnr's median.
    """

    scenario: str
    unit: str
    goal: float | None
    wnr: str
    peer: str = ""
    peer_key: str = ""
    sized: bool = True  # its goal is for the full sizes only
    goal_kind: str = "abs"


def _ratio(scenario: str, unit: str, bound: float, wnr: str, *, vs: tuple[str, str]) -> Row:
    return Row(scenario, unit, bound, wnr, *vs, goal_kind="ratio")


def _info(scenario: str, unit: str, wnr: str, peer: str = "", peer_key: str = "") -> Row:
    return Row(scenario, unit, None, wnr, peer, peer_key)


def idle_bound(controllers: Iterable[str]) -> float:
    """Idle CPU's ratio bound on supervisord: 1x where the root offers cpu+memory+pids (the
    kernel enforces), 2x on a hybrid host (the daemon samples usage to enforce)."""
    return 1.0 if set(controllers) >= ENFORCING else 2.0


def rows(s: Sizes, controllers: Iterable[str] = ()) -> list[Row]:
    """The table, in the issue's order; `controllers` are the cgroup2 root's (the idle goal)."""
    n, m, p = s.cold_small, s.cold_large, s.drain_processes
    c = f"churn: {s.churn_jobs} jobs, {s.churn_in_flight} in flight"
    sup, events, off = ("supervisord", "sup_large"), ("cgroup.events", "exit_peer"), "metrics off"
    return [
        Row(f"cold start: {n} jobs", "s", 0.5, "cold_small", "supervisord", "sup_small"),
        Row(f"cold start: {n} jobs", "s", 0.5, "cold_small", "floor", "floor_small"),
        _info(f"  (daemon launched on {n} specs)", "s", "boot_small", "supervisord", "sup_small"),
        _ratio(f"cold start: {m} jobs", "s", 1.5, "cold_large", vs=("floor", "floor_large")),
        _ratio(f"cold start: {m} jobs", "s", 0.1, "cold_large", vs=sup),
        _ratio(f"no-op pass, {m} jobs (CPU)", "ms", 2, "noop", vs=(READ, "noop_peer")),
        _info("  (pass taking usage samples, CPU)", "ms", "noop_sampling"),
        Row(
            f"metrics scrape, {m} jobs (CPU)",
            "ms",
            1,
            "scrape",
            "no-op pass",
            "noop",
            False,
            "ratio",
        ),
        _ratio(
            f"spec change -> applied, {m} jobs", "ms", 0.5, "spec", vs=("watchfiles default", "wf")
        ),
        _info(f"  (spec change -> applied, {m} jobs)", "ms", "spec", "inotify alone", "inotify"),
        _info("  (-> payload running)", "ms", "spec_running", "inotify alone", "inotify"),
        _ratio(f"job exit -> status recorded, {m} jobs", "ms", 1.5, "exit", vs=events),
        _ratio(f"daemon memory, {m} jobs (RSS)", "MiB", 1.3, "mem", vs=("supervisord", "mem_sup")),
        _info("  (daemon Pss)", "MiB", "mem_pss", "supervisord Pss", "mem_sup_pss"),
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
        _info("  (wrapper Pss)", "MiB", "job_pss", "JVM Pss", "jvm_pss"),
        _ratio(
            f"idle daemon CPU, {m} jobs",
            "% core",
            idle_bound(controllers),
            "idle",
            vs=("supervisord", "idle_sup"),
        ),
        Row("  idle, metrics on, not scraped", "% core", 0.5, "idle_metrics_quiet", off, "idle"),
        Row("  idle, metrics on, scraped every 15 s", "% core", 0.5, "idle_metrics", off, "idle"),
        _ratio(
            f"drain: {p} processes, grace 0", "ms", 3, "drain", vs=("cgroup.kill alone", "kill")
        ),
        Row(f"reload: {m} files, one edited", "ms", 50, "reload", "ruamel round-trip", "rt"),
        _info("  (reload pass CPU)", "ms", "reload_cpu"),
        _info(f"({c})", "jobs/s", "churn_rate"),
        Row(f"{c}: time per job, last / first window", "x", 1.2, "churn_flat"),
        _info("  (time per job, first window)", "ms", "churn_first"),
        _info("  (time per job, last window)", "ms", "churn_last"),
        _info("  (daemon CPU per job, last / first window)", "x", "churn_cpu_flat"),
        Row(f"{c}: RSS growth after 10 %", "MiB", 2, "churn_growth"),
        _info("  (RSS at 10 %)", "MiB", "churn_rss_warm"),
        _info("  (RSS at the end)", "MiB", "churn_rss_end"),
        Row(f"{c}: open fds, end vs start (difference)", "fds", 0, "churn_fds", sized=False),
        Row(f"{c}: left behind", "objects", 0, "churn_left", sized=False),
        Row(f"{c}: lost jobs", "jobs", 0, "churn_lost", sized=False),
    ]


def met(row: Row, median: float | None, ratio: float | None, judged: bool) -> bool | None:
    """Whether a row meets its goal: None when it has none, is not judged at this size, or
    the figure it bounds (its median, or wnr / peer) could not be measured."""
    if not judged or row.goal is None:
        return None
    value = ratio if row.goal_kind == "ratio" else median
    return None if value is None else value <= row.goal
