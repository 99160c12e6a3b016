"""`python -m bench.profile WHAT`: where wnr's time goes in a scenario that misses its goal.

    pass     pyinstrument over in-process passes among N running jobs: no-op,
             with usage samples, and after one spec file was edited
    cold     py-spy (idle samples included) on the daemon while N jobs cold-start,
             plus the daemon's per-pass timeline
    idle     py-spy (CPU samples only) on the daemon idling among N jobs, and the
             CPU of a watchfiles watcher alone at step 10 ms and at its default
    events   the daemon's per-pass timeline (start, wall, CPU, actions) while
             jobs are added, exit and are deleted, and a slot drains, among N jobs

The timeline comes from running the daemon as `python -m bench.profile
serve OUT -- <wnr run flags>`: `wnr run` with `Reconciler.run_pass` wrapped
to record each pass (in this process only; wnr is not changed). Same
sandbox and clean-up as the benchmark; py-spy and pyinstrument from PyPI.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import drain, latency, passes
from bench.common import REPO, Sandbox
from bench.wnr import SLOT, WnrDaemon, job_names, job_yaml, slot_yaml, write_jobs
from reconciler.observe.quiet import RELIST_SECONDS

if TYPE_CHECKING:
    from reconciler.reconcile import Reconciler


def serve(out: str, flags: list[str]) -> int:
    """`wnr run FLAGS`, recording (start, end, thread CPU, actions, first ops) of each pass."""
    from reconciler import cli  # noqa: PLC0415 - only the served daemon needs these
    from reconciler.reconcile import Reconciler  # noqa: PLC0415
    from reconciler.status.passresult import PassResult  # noqa: PLC0415

    original = Reconciler.run_pass
    timeline: list[tuple[float, float, float, int, list[str]]] = []

    def timed(self: Reconciler, dry_run: bool = False) -> PassResult:
        start, cpu = time.time(), time.thread_time()
        result = original(self, dry_run)
        ops = [a.op for a in result.plan.actions]
        timeline.append((start, time.time(), time.thread_time() - cpu, len(ops), ops[:3]))
        return result

    Reconciler.run_pass = timed  # type: ignore[method-assign]
    try:
        return cli.main(["run", *flags])
    finally:
        Path(out).write_text(json.dumps(timeline))


def start_served(box: Sandbox, daemon: WnrDaemon, out: Path) -> None:
    """Start `daemon` as a served (timed) `wnr run`."""
    argv = [sys.executable, "-m", "bench.profile", "serve", str(out), "--"]
    argv += ["--specs", str(daemon.specs), "--root", str(daemon.root)]
    argv += ["--state-dir", str(daemon.state)]
    with open(daemon.log, "ab") as log:
        daemon.proc = box.popen(argv, daemon.cgroup, cwd=REPO, stdout=log, stderr=log)
    time.sleep(1.5)


def print_timeline(out: Path, since: float) -> None:
    """One line per pass that began after `since`."""
    for start, end, cpu, count, ops in json.loads(out.read_text()):
        if start >= since:
            print(
                f"  pass at {start - since:7.3f} s: wall {1e3 * (end - start):7.1f} ms, "
                f"CPU {1e3 * cpu:7.1f} ms, {count:3d} actions {' '.join(ops)}"
            )


def spy(
    pid: int, out: Path, seconds: float | None = None, idle: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy record (raw collapsed stacks) on a process."""
    argv = [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid)]
    argv += ["-o", str(out), "-f", "raw", "-r", "250", "--threads", "--nonblocking"]
    argv += ["--idle"] if idle else []
    argv += ["-d", str(int(seconds))] if seconds else []
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(raw: Path, top: int = 25, thread: str = "") -> None:
    """Inclusive and self samples per function (line numbers dropped), of the threads whose
    name contains `thread`."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if thread not in frames[0]:
            continue
        threads[frames[0]] += int(count)
        for frame in set(frames[1:]):
            inclusive[frame] += int(count)
        own[frames[-1]] += int(count)
    total = sum(threads.values()) or 1
    print(f"  {total} samples; by thread: {dict(threads)}")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"  -- {title}")
        for frame, count in counter.most_common(top):
            print(f"  {count:6d} {100 * count / total:5.1f}%  {frame}")


def fleet(box: Sandbox, count: int, out: Path | None = None) -> WnrDaemon:
    """A daemon (served when `out` is given) with `count` running jobs."""
    daemon = WnrDaemon(box, "fleet")
    names = job_names(count)
    (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
    write_jobs(daemon.specs, names, ("sleep", "600"))
    if out is None:
        daemon.start(settle=False)
    else:
        start_served(box, daemon, out)
    daemon.wait_running(names)
    time.sleep(2)
    return daemon


def profile_pass(box: Sandbox, count: int) -> None:
    """pyinstrument over no-op, sampling and reload passes."""
    daemon = fleet(box, count)
    daemon.stop()
    with passes.reconciler_for(daemon) as reconciler:
        _profile_passes(reconciler, daemon, count)


def _profile_passes(reconciler: Reconciler, daemon: WnrDaemon, count: int) -> None:
    from pyinstrument import Profiler  # noqa: PLC0415 - a profiling-only dependency

    for _ in range(2):
        reconciler.run_pass()
    name = job_names(count)[count // 2]
    runs: dict[str, Any] = {
        "10 no-op passes": lambda i: None,
        "3 passes taking usage samples": lambda i: passes.fresh_sampler(reconciler),
        "10 passes after one edited file": lambda i: (daemon.specs / f"job-{name}.yaml").write_text(
            job_yaml(name, ("sleep", "600"), labels=f"edit: p{i}")
        ),
    }
    for title, before in runs.items():
        profiler = Profiler(interval=0.0005)
        for i in range(3 if "samples" in title else 10):
            before(i)
            profiler.start()
            reconciler.run_pass()
            profiler.stop()
        print(f"== {title}, {count} jobs")
        print(profiler.output_text(unicode=False, color=False, show_all=False))


def profile_cold(box: Sandbox, count: int) -> None:
    """py-spy and the pass timeline of a cold start."""
    daemon = WnrDaemon(box, "cold")
    timeline = box.tmp / "cold.json"
    start_served(box, daemon, timeline)
    raw = box.tmp / "cold.txt"
    recorder = spy(daemon.pid, raw, idle=True)
    time.sleep(1)
    names = job_names(count)
    start = time.time()
    (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
    write_jobs(daemon.specs, names, ("sleep", "600"))
    started = daemon.wait_running(names)
    print(f"== cold start of {count} jobs: {max(started.values()) - start:.3f} s")
    recorder.send_signal(2)
    recorder.wait()
    daemon.stop()
    print_timeline(timeline, start)
    summary(raw, thread="MainThread")


def profile_idle(box: Sandbox, count: int, seconds: float) -> None:
    """py-spy (CPU samples) of an idle daemon."""
    daemon = fleet(box, count)
    raw = box.tmp / "idle.txt"
    print(f"== idle daemon among {count} jobs, {seconds:g} s")
    spy(daemon.pid, raw, seconds=seconds).wait()
    summary(raw)
    daemon.stop()
    # What a watchfiles thread would cost beside it (the daemon sleeps on inotify instead):
    # its step before the daemon moved to inotify, and watchfiles' defaults.
    for debounce, step in ((20, 10), (1600, 50)):
        print(f"== watchfiles alone, debounce={debounce} step={step}, 10 s:", end=" ")
        print(f"{watcher_cpu(box, debounce, step, 10.0):.2f} % of a core")


def watcher_cpu(box: Sandbox, debounce: int, step: int, seconds: float) -> float:
    """CPU (percent of a core) of a watchfiles watcher thread on idle directories."""
    import threading  # noqa: PLC0415

    import watchfiles  # noqa: PLC0415

    dirs = [box.tmp / f"idle-watch-{step}-{i}" for i in range(2)]
    for directory in dirs:
        directory.mkdir()
    stop = threading.Event()

    def watch() -> None:
        for _ in watchfiles.watch(
            *dirs, debounce=debounce, step=step, stop_event=stop, rust_timeout=1000
        ):
            pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(1.0)
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    used = (time.process_time() - cpu) / (time.perf_counter() - wall)
    stop.set()
    thread.join(timeout=5)
    return 100 * used


def profile_events(box: Sandbox, count: int) -> None:
    """The pass timeline while jobs are added, exit and are deleted."""
    timeline = box.tmp / "events.json"
    daemon = fleet(box, count, timeline)
    start = time.time()
    applied, _ = latency.spec_change(daemon, ["add-0", "add-1", "add-2"])
    exits = latency.job_exit(daemon, ["exit-0", "exit-1", "exit-2"])
    drain_start = time.time()
    drained = drain.wnr_drain(daemon, 100, "0")
    daemon.stop()
    print(f"== events among {count} jobs: spec change -> applied {applied}, exit -> status {exits}")
    print_timeline(timeline, start)
    print(f"== drain of 100 processes: {drained:.3f} s, from {drain_start - start:.3f} s on")


def main(argv: list[str] | None = None) -> int:
    """Profile one scenario."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return serve(args[1], args[3:])
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=["pass", "cold", "idle", "events"])
    parser.add_argument("--jobs", type=int, default=256, help="running jobs (default 256)")
    parser.add_argument(
        "--seconds", type=float, default=RELIST_SECONDS, help="idle window (one resync period)"
    )
    parsed = parser.parse_args(args)
    box = Sandbox()
    try:
        if parsed.what == "pass":
            profile_pass(box, parsed.jobs)
        elif parsed.what == "cold":
            profile_cold(box, parsed.jobs)
        elif parsed.what == "idle":
            profile_idle(box, parsed.jobs, parsed.seconds)
        else:
            profile_events(box, parsed.jobs)
    finally:
        box.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
