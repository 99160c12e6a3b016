"""`python -m bench`: run every scenario on this machine, print one table, optionally write JSON.

Needs root and the cgroup2 mount; everything it creates lives below one
uniquely named cgroup (`<mount>/wnr-bench-<random>`) and a temporary
directory, both removed at the end, also after a failure, Ctrl-C or SIGTERM.

    python -m bench                    # full sizes, 5 runs
    python -m bench --quick            # every scenario once at small sizes (< 2 minutes)
    python -m bench --runs 3 --json new.json --compare old.json

Each run measures wnr and its peers side by side, in this order: floors and
supervisord, cold starts, then among the running fleet the latencies, the
drain, memory and idle CPU (supervisord running the same count alongside),
with the daemon stopped, single passes in-process; and last, in the first run
only (minutes at full size), the churn of N short jobs on a daemon of its own,
whose samples are printed under the table. The numbers are
printed, never asserted: the exit status is 1 only when something could not
be measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from bench import churn, coldstart, drain, latency, passes, report, steady
from bench.common import BenchError, Sandbox, median
from bench.goals import QUICK, Sizes
from bench.supervisor import Supervisor
from bench.wnr import WnrDaemon, job_names


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
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            self.errors.append(f"run {run}: {what}: {exc}")
            print(f"[run {run}] {what} FAILED: {exc}", file=sys.stderr, flush=True)
            return False
        return True

    def run(self, run: int) -> None:
        """Every scenario once."""
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


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario once, small sizes")
    parser.add_argument("--runs", type=int, default=None, help="runs (default 5; 1 with --quick)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--compare", type=Path, help="a JSON file of an earlier run to compare")
    parser.add_argument(
        "--check", action="store_true", help="exit 3 when a judged ratio misses its goal"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every scenario was measured."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    began = time.monotonic()
    try:
        box = Sandbox()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    machine = report.machine()
    try:
        bench = Bench(box, sizes)
        for run in range(1, runs + 1):
            bench.run(run)
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        box.close()
    mode = "quick" if args.quick else "full"
    result = report.result(
        machine, mode, runs=runs, sizes=sizes, metrics=bench.metrics, errors=bench.errors
    )
    result["seconds"] = round(time.monotonic() - began, 1)
    result["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    if bench.churn is not None:
        result["churn"] = [asdict(sample) for sample in bench.churn.samples]
    print(report.table(result))
    if bench.churn is not None:
        print(f"\nchurn, every {max(1, sizes.churn_jobs // churn.SAMPLES)} jobs:\n")
        print(churn.curve(bench.churn))
    if args.compare is not None:
        print(report.compare(result, report.load(args.compare)))
    if args.json is not None:
        report.save(result, args.json)
    for error in bench.errors:
        print(f"bench: {error}", file=sys.stderr)
    return _verdict(result, args.check)


def _verdict(result: dict[str, Any], check: bool) -> int:
    """The exit status, with what `--check` found said on stderr."""
    if check and result["mode"] != "full":
        print("bench: --check: quick mode never asserts", file=sys.stderr)
    for missed in report.misses(result) if check and result["mode"] == "full" else []:
        print(f"bench: missed: {missed}", file=sys.stderr)
    return report.exit_status(result, check)


if __name__ == "__main__":
    sys.exit(main())
