"""`python -m bench.creep`: where per-object memory creeps, with churn driven in-process.

The daemon-level churn (bench.churn) says whether RSS grows; this says what
holds on to it. `Reconciler.run_pass` runs in a loop, wired like `wnr run`'s
(bench.passes.reconciler_for) on a spec dir, root and state dir of the
sandbox, while jobs (`true`) stream through it the way bench.churn sends
them: a Job file is added, its planned phase waited for (Succeeded), the
file deleted, `in_flight` at a time. After a warm-up of `warm` jobs a
tracemalloc snapshot is taken; after the rest, another. It prints the
allocations still alive that grew the most, by traceback, and the growth
per job: what a churn of 10,000 jobs would leave behind.

    python -m bench.creep [--jobs 2000] [--warm 300] [--in-flight 16] [--top 12]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

from bench.common import BenchError, Sandbox
from bench.passes import reconciler_for
from bench.wnr import SLOT, WnrDaemon, job_yaml, slot_yaml
from reconciler.plan.jobphase import Phase
from reconciler.reconcile import Reconciler

PAYLOAD = ("true",)
STALL_SECONDS = 30.0


def churn(reconciler: Reconciler, daemon: WnrDaemon, names: list[str], in_flight: int) -> None:
    """Send `names` through, `in_flight` at a time, until each has Succeeded and is forgotten."""
    queue = list(reversed(names))
    flying: set[str] = set()
    deleted: set[str] = set()
    last = time.monotonic()
    while queue or flying or deleted:
        while queue and len(flying) < in_flight:
            name = queue.pop()
            (daemon.specs / f"job-{name}.yaml").write_text(job_yaml(name, PAYLOAD))
            flying.add(name)
        jobs = reconciler.run_pass().plan.jobs
        progress = False
        for name in list(flying):
            view = jobs.get(name)
            if view is not None and view.phase in (Phase.Succeeded, Phase.Failed):
                if view.phase is Phase.Failed:
                    raise BenchError(f"job {name} failed: {view.reason}: {view.message}")
                (daemon.specs / f"job-{name}.yaml").unlink()
                flying.discard(name)
                deleted.add(name)
                progress = True
        for name in list(deleted):
            if name not in jobs and not (daemon.state / "jobs" / name).exists():
                deleted.discard(name)
                progress = True
        now = time.monotonic()
        if progress:
            last = now
        elif now - last > STALL_SECONDS:
            raise BenchError(f"no progress for {STALL_SECONDS:g}s ({len(queue)} jobs to go)")
        else:
            time.sleep(0.002)  # the wrappers of `true` end within a few ms


def measure(box: Sandbox, jobs: int, warm: int, in_flight: int, top: int) -> None:
    """Warm up, snapshot, churn the rest, snapshot; print what grew."""
    daemon = WnrDaemon(box, "creep")
    try:
        (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
        names = [f"c{i:05d}" for i in range(jobs)]
        with reconciler_for(daemon) as reconciler:
            churn(reconciler, daemon, names[:warm], in_flight)
            gc.collect()
            tracemalloc.start(25)
            before = tracemalloc.take_snapshot()
            start = time.monotonic()
            churn(reconciler, daemon, names[warm:], in_flight)
            elapsed = time.monotonic() - start
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
    finally:
        daemon.teardown()
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(keep).compare_to(before.filter_traces(keep), "traceback")
    churned = jobs - warm
    grown = sum(s.size_diff for s in stats)
    print(
        f"{churned} jobs after a warm-up of {warm} ({elapsed:.1f} s under tracemalloc): "
        f"{grown / 1024:+.1f} KiB alive, {grown / churned:+.1f} B per job"
    )
    for stat in stats[:top]:
        if stat.size_diff <= 0:
            break
        print(f"\n{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks:")
        for line in stat.traceback.format()[-12:]:
            print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.creep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs in all (default 2000)")
    parser.add_argument("--warm", type=int, default=300, help="jobs before the first snapshot")
    parser.add_argument("--in-flight", type=int, default=16, help="jobs added at a time")
    parser.add_argument("--top", type=int, default=12, help="tracebacks to print")
    args = parser.parse_args(argv)
    if not 0 < args.warm < args.jobs:
        parser.error("--warm must be between 0 and --jobs")
    try:
        box = Sandbox()
    except BenchError as exc:
        print(f"bench.creep: {exc}", file=sys.stderr)
        return 1
    try:
        measure(box, args.jobs, args.warm, args.in_flight, args.top)
    except BenchError as exc:
        print(f"bench.creep: {exc}", file=sys.stderr)
        return 1
    finally:
        box.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
