"""The order of one benchmark run: every scenario of the table, then the per-job curve's sizes.

Below bench.cli (the command line, the printing and the exit status). Each
run measures wnr and its peers side by side, in this order: floors and
supervisord, cold starts, then among the running fleet the latencies, the
drain, memory and idle CPU (supervisord running the same count alongside),
with the daemon stopped, single passes in-process; and last, in the first run
only (minutes at full size), the churn of N short jobs on a daemon of its own,
whose samples are printed under the table. Then, in every run, one daemon
per `--jobs` size for the per-job curve (bench.scale). A step that fails is
recorded as an error and the run goes on.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench import churn, coldstart, curve, drain, latency, passes, scale, steady
from bench.common import BenchError, Sandbox, median
from bench.goals import Sizes
from bench.supervisor import Supervisor
from bench.wnr import WnrDaemon, job_names
from reconciler.model.errors import WnrError


class Bench:
    """One invocation: its sandbox, sizes, metrics (key -> one value per run) and errors."""

    def __init__(self, box: Sandbox, sizes: Sizes) -> None:
        self.box, self.s = box, sizes
        self.metrics: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.churn: churn.ChurnResult | None = None
        self.classes: Path | None = None
        try:
            self.classes = steady.compile_idle(box)
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            self.errors.append(f"the JVM peer: {exc}")

    def put(self, key: str, value: float, scale: float = 1.0) -> None:
        """Record one run's value of a metric, scaled to the unit of its table row."""
        self.metrics[key].append(value * scale)

    def step(self, run: int, what: str, action: Callable[[], object]) -> bool:
        """Run one measurement; a failure is reported and the run goes on."""
        print(f"[run {run}] {what}", file=sys.stderr, flush=True)
        try:
            action()
        except (BenchError, OSError, subprocess.SubprocessError, WnrError) as exc:
            # WnrError: an in-process pass that raised (a cgroup read failing, say).
            self.errors.append(f"run {run}: {what}: {exc}")
            print(f"[run {run}] {what} FAILED: {exc}", file=sys.stderr, flush=True)
            return False
        return True

    def scaled(self, run: int) -> None:
        """The per-job curve: each `--jobs` size on a daemon of its own (bench.scale)."""
        for jobs in self.s.scale_jobs:

            def one(jobs: int = jobs) -> None:
                figures: dict[str, float] = {}
                try:
                    tag, samples = f"n{run}-{jobs}", self.s.samples
                    scale.measure(self.box, jobs, tag, figures, samples=samples, repeats=5)
                finally:  # what was measured before a failure still counts
                    for name, value in figures.items():
                        self.put(curve.key(jobs, name), value)

            slots = len(scale.slot_names(jobs))
            self.step(run, f"scale: {jobs} jobs in {slots} slot(s), each with an agent", one)

    def run(self, run: int) -> None:
        """Every scenario of the table once."""
        s, box, put = self.s, self.box, self.put

        def floors() -> None:
            put("floor_small", coldstart.floor(box, s.cold_small, f"{run}s"))
            put("floor_large", coldstart.floor(box, s.cold_large, f"{run}l"))

        def supervisord() -> None:
            put("sup_small", coldstart.supervisord_cold(box, s.cold_small, f"{run}s").startup)

        def boot() -> None:
            put("boot_small", coldstart.wnr_boot(box, s.cold_small, f"b{run}"))

        def cold() -> None:
            put("cold_small", coldstart.wnr_cold(box, s.cold_small, f"s{run}")[0])

        fleet: list[WnrDaemon] = []

        def cold_large() -> None:
            elapsed, daemon = coldstart.wnr_cold(box, s.cold_large, f"l{run}", keep=True)
            fleet.append(daemon)
            put("cold_large", elapsed)

        self.step(run, f"floor, {s.cold_small} and {s.cold_large} cgroups", floors)
        self.step(run, f"supervisord starting {s.cold_small} programs", supervisord)
        self.step(run, f"wnr launched on {s.cold_small} job specs", boot)
        self.step(run, f"wnr cold start, {s.cold_small} jobs", cold)
        if self.step(run, f"wnr cold start, {s.cold_large} jobs", cold_large):
            try:
                self.among_fleet(run, fleet[0])
            finally:
                fleet[0].teardown()
        if run == 1:  # minutes at full size: once per invocation, on a daemon of its own
            what = f"churn, {s.churn_jobs} jobs, {s.churn_in_flight} in flight"
            self.step(run, what, lambda: self.churned(run))

    def among_fleet(self, run: int, daemon: WnrDaemon) -> None:
        """The scenarios with the fleet of `cold_large` jobs running."""
        s, box, put = self.s, self.box, self.put

        def spec() -> None:
            added = [f"add{run}-{i}" for i in range(s.samples)]
            applied, running = latency.spec_change(daemon, added)
            put("spec", median(applied), 1e3)
            put("spec_running", median(running), 1e3)
            put("wf", latency.watchfiles_latency(box, s.samples), 1e3)
            put("inotify", latency.inotify_latency(box, s.samples), 1e3)

        def exits() -> None:
            ended = [f"exit{run}-{i}" for i in range(s.samples)]
            put("exit", median(latency.job_exit(daemon, ended)), 1e3)
            put("exit_peer", latency.cgroup_events_latency(box, s.samples, str(run)), 1e3)

        def drained() -> None:
            put("drain", drain.wnr_drain(daemon, s.drain_processes, str(run)), 1e3)
            put("kill", drain.kill_alone(box, s.drain_processes, str(run)), 1e3)

        self.step(run, "spec change latency", spec)
        self.step(run, "job exit latency", exits)
        self.step(run, f"drain, {s.drain_processes} processes", drained)
        sups: list[Supervisor] = []

        def supervisord() -> None:
            sups.append(coldstart.supervisord_cold(box, s.cold_large, f"{run}l", keep=True))
            put("sup_large", sups[0].startup)

        self.step(run, f"supervisord starting {s.cold_large} programs", supervisord)
        try:
            self.step(run, "memory", lambda: self.memory(run, daemon, sups))
            self.step(run, f"idle CPU over {s.idle_window:g} s", lambda: self.idle(daemon, sups))
            self.step(run, "idle CPU with metrics on", lambda: self.idle_metrics(daemon))
        finally:
            for sup in sups:
                sup.stop()
        daemon.stop()
        self.step(run, "passes in-process", lambda: self.in_process(daemon))

    def memory(self, run: int, daemon: WnrDaemon, sups: list[Supervisor]) -> None:
        """Daemon and wrapper memory, and the peers'."""
        ours = steady.daemon_memory(daemon)
        self.put("mem", ours.rss)
        self.put("mem_pss", ours.pss)
        if sups:
            theirs = steady.supervisord_memory(sups[0])
            self.put("mem_sup", theirs.rss)
            self.put("mem_sup_pss", theirs.pss)
        wrapper = steady.wrapper_memory(daemon, job_names(self.s.cold_large))
        self.put("job_rss", wrapper.rss)
        self.put("job_pss", wrapper.pss)
        if self.classes is not None:
            jvm = steady.jvm_memory(self.box, self.classes, str(run))
            self.put("jvm", jvm.rss)
            self.put("jvm_pss", jvm.pss)
        self.put("sh", steady.sh_memory(self.box, str(run)).rss)

    def idle(self, daemon: WnrDaemon, sups: list[Supervisor]) -> None:
        """Idle CPU of the daemon and of supervisord over the same window."""
        ours, theirs = steady.idle_cpu(daemon, sups[0] if sups else None, self.s.idle_window)
        self.put("idle", ours)
        if sups:
            self.put("idle_sup", theirs)

    def idle_metrics(self, daemon: WnrDaemon) -> None:
        """The same daemon restarted with `--metrics-address` (it adopts the fleet), idle
        over windows as long as the first: not scraped, then scraped every SCRAPE_SECONDS."""
        daemon.stop()
        daemon.start(extra=("--metrics-address", "127.0.0.1:0"))
        address = daemon.metrics_address()
        self.put("idle_metrics_quiet", steady.idle_cpu(daemon, None, self.s.idle_window)[0])
        self.put("idle_metrics", steady.idle_cpu_scraped(daemon, address, self.s.idle_window))

    def churned(self, run: int) -> None:
        """N short jobs through one daemon: rate, flatness, memory, fds, leftovers, losses."""
        result = churn.wnr_churn(self.box, self.s.churn_jobs, self.s.churn_in_flight, f"c{run}")
        self.churn = result
        for key, value in churn.metrics(result).items():
            self.put(key, value)
        for name in result.lost:  # a figure, not a failure to measure: printed, not an error
            print(f"[run {run}] churn: lost {name}", file=sys.stderr, flush=True)

    def in_process(self, daemon: WnrDaemon) -> None:
        """No-op and reload passes with the daemon stopped, and their peers."""
        repeats = self.s.pass_repeats
        times = passes.measure(daemon, job_names(self.s.cold_large), repeats)
        self.put("noop", times.noop_cpu, 1e3)
        self.put("noop_sampling", times.sampling_cpu, 1e3)
        self.put("reload", times.reload_wall, 1e3)
        self.put("reload_cpu", times.reload_cpu, 1e3)
        self.put("noop_peer", passes.read_cgroups(daemon.root, repeats), 1e3)
        scrape = passes.scrape_cpu(daemon, self.s.cold_large, repeats)
        self.put("scrape", scrape, 1e3)
        self.put("rt", passes.round_trip_parse(daemon.specs, 3), 1e3)
