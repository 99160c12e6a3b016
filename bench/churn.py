"""Churn: N short jobs through one daemon, as a pilot sends them, and what they leave behind.

- wnr: one daemon (`wnr run`) with a slot and an empty spec dir. The
  benchmark keeps `in_flight` jobs (`true`) added: it writes a Job file,
  waits for the daemon's `Completed` event of that job (the event log is
  tailed across its rotations), deletes the file, and adds the next one,
  until N jobs have gone through. A job whose end is any other reason is
  lost (deleted all the same); a stream that makes no progress for
  STALL_SECONDS fails the scenario.
- every N/20 jobs it samples the daemon's RSS and Pss, its open fds and
  children (zombies included), the cgroups below its root, the entries of
  `<state>/jobs`, the processes in the daemon's cgroups, the event log's
  size and its rotated files, and the time per job over the last window.
- at the end, once the stream has drained (every job's cgroup and records
  forgotten, or DRAIN_SECONDS passed), it counts what is left.

Goals (issue "churn without creep"): time per job flat (last window / first
<= 1.2), RSS growth <= 2 MiB from 10 % of N to the end, fds at the end equal
to before the first job, no leftovers, no lost job.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, replace

from bench import goals, report
from bench.common import BenchError, Sandbox, cpu_seconds, pss_kib, status_kib, wait_until
from bench.wnr import SLOT, EventTail, WnrDaemon, job_yaml, slot_yaml

PAYLOAD = ("true",)
STALL_SECONDS = 30.0
DRAIN_SECONDS = 30.0
SAMPLES = 20
# The event reasons of a job's end (reconciler.reconcile._job_event): Completed is Succeeded.
FAILED = frozenset(
    {
        "Error", "OOMKilled", "IdleTimeout", "DeadlineExceeded", "DiskLimitExceeded",
        "PidsLimitExceeded", "CoreDumped", "Drained", "ErrorA", "ErrorVN", "RecordsLost",
        "ReconcileError", "Failed",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """The daemon and the sandbox after `jobs` jobs went through, `elapsed` s into the stream."""

    jobs: int
    elapsed: float
    cpu: float  # the daemon's CPU seconds (every thread): other load on the machine skews
    # the wall clock, much less the CPU a job costs the daemon
    rss_kib: int
    pss_kib: int
    fds: int
    children: int
    cgroups: int  # below the daemon's root, the root itself excluded
    records: int  # entries of <state>/jobs
    processes: int  # in the daemon's own cgroup and below its root
    events_bytes: int
    rotated: int  # events.jsonl.1, .2, ...


@dataclass(frozen=True)
class ChurnResult:
    """The samples along the stream (the last one after it drained) and the lost jobs."""

    samples: tuple[Sample, ...]
    lost: tuple[str, ...]
    seconds: float  # from the first spec written to the last job's Completed

    def per_job(self, index: int) -> float:
        """Seconds per job over the window that ends at stream sample `index` (1 is first)."""
        a, b = self.samples[index - 1], self.samples[index]
        return (b.elapsed - a.elapsed) / max(1, b.jobs - a.jobs)

    def cpu_per_job(self, index: int) -> float:
        """The daemon's CPU seconds per job over the same window."""
        a, b = self.samples[index - 1], self.samples[index]
        return (b.cpu - a.cpu) / max(1, b.jobs - a.jobs)


def sample(daemon: WnrDaemon, jobs: int, elapsed: float) -> Sample:
    """Read the daemon's /proc entries, its root, its state dir and its event log."""
    pid = daemon.pid
    cgroups = [d for d, _, _ in os.walk(daemon.root)][1:]
    processes = 0
    for directory in (str(daemon.cgroup), str(daemon.root), *cgroups):
        try:
            with open(os.path.join(directory, "cgroup.procs"), encoding="ascii") as handle:
                processes += len(handle.read().split())
        except FileNotFoundError:
            continue  # removed while we walked
    children = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                children += len(handle.read().split())
        except FileNotFoundError:
            continue
    log = daemon.state / "events.jsonl"
    rotated = sum(1 for p in daemon.state.glob("events.jsonl.*") if p.suffix[1:].isdigit())
    return Sample(
        jobs=jobs,
        elapsed=elapsed,
        cpu=cpu_seconds(pid),
        rss_kib=status_kib(pid),
        pss_kib=pss_kib(pid),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        children=children,
        cgroups=len(cgroups),
        records=len(os.listdir(daemon.state / "jobs")) if (daemon.state / "jobs").exists() else 0,
        processes=processes,
        events_bytes=log.stat().st_size if log.exists() else 0,
        rotated=rotated,
    )


def stream(daemon: WnrDaemon, count: int, in_flight: int) -> tuple[list[Sample], list[str]]:
    """Send `count` jobs through, `in_flight` at a time; the samples and the lost jobs."""
    tail = EventTail(daemon.state)
    try:
        return _stream(daemon, tail, count, in_flight)
    finally:
        tail.close()


def _stream(
    daemon: WnrDaemon, tail: EventTail, count: int, in_flight: int
) -> tuple[list[Sample], list[str]]:
    names = deque(f"c{i:05d}" for i in range(count))
    flying: set[str] = set()
    lost: list[str] = []
    done, every = 0, max(1, count // SAMPLES)
    start = last = time.perf_counter()
    samples = [sample(daemon, 0, 0.0)]
    while done < count:
        while names and len(flying) < in_flight:
            name = names.popleft()
            (daemon.specs / f"job-{name}.yaml").write_text(job_yaml(name, PAYLOAD))
            flying.add(name)
        ended = [
            (e.obj.removeprefix("Job/"), e.reason, e.message)
            for e in tail.read()
            if e.obj.removeprefix("Job/") in flying
            and (e.reason == "Completed" or e.reason in FAILED)
        ]
        for name, reason, message in ended:
            (daemon.specs / f"job-{name}.yaml").unlink()
            flying.discard(name)
            done += 1
            if reason != "Completed":
                lost.append(f"{name} ({reason}: {message})")
            if done % every == 0 or done == count:
                samples.append(sample(daemon, done, time.perf_counter() - start))
        now = time.perf_counter()
        if ended:
            last = now
        elif now - last > STALL_SECONDS:
            raise BenchError(f"no job ended for {STALL_SECONDS:g}s ({done} of {count} done)")
        elif not daemon.alive():
            raise BenchError(f"the daemon exited; see {daemon.log}")
        else:
            time.sleep(0.002)
    return samples, lost


def wnr_churn(box: Sandbox, count: int, in_flight: int, tag: str) -> ChurnResult:
    """The whole scenario on a daemon of its own, torn down at the end."""
    daemon = WnrDaemon(box, tag)
    try:
        daemon.start()
        (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
        slot = daemon.root / f"slot.{SLOT}"
        wait_until("the slot's cgroup", slot.exists, 10)
        time.sleep(0.5)  # the passes after creating it, so the first sample sees a settled daemon
        began = time.perf_counter()
        samples, lost = stream(daemon, count, in_flight)
        seconds = time.perf_counter() - began

        def drained() -> bool:
            jobs = daemon.state / "jobs"
            records = os.listdir(jobs) if jobs.exists() else []
            return not records and not any(p.name.startswith("job.") for p in slot.iterdir())

        with contextlib.suppress(BenchError):  # what is left is counted, not an error
            wait_until("the stream to drain", drained, DRAIN_SECONDS, interval=0.05)
        time.sleep(0.5)  # the pass after the last removal, so its fds and children are closed
        samples.append(sample(daemon, count, samples[-1].elapsed))
        return ChurnResult(tuple(samples), tuple(lost), seconds)
    finally:
        daemon.teardown()


def metrics(result: ChurnResult) -> dict[str, float]:
    """The figures of the table's churn rows, in their units."""
    warm, end, last = (
        result.samples[warm_index(result)],
        result.samples[-1],
        len(result.samples) - 2,
    )
    first_wall, last_wall = result.per_job(1), result.per_job(last)
    return {
        "churn_rate": end.jobs / result.seconds,
        "churn_flat": last_wall / first_wall,
        "churn_first": 1e3 * first_wall,
        "churn_last": 1e3 * last_wall,
        "churn_cpu_flat": result.cpu_per_job(last) / result.cpu_per_job(1),
        "churn_growth": (end.rss_kib - warm.rss_kib) / 1024,
        "churn_rss_warm": warm.rss_kib / 1024,
        "churn_rss_end": end.rss_kib / 1024,
        "churn_fds": abs(end.fds - result.samples[0].fds),
        "churn_left": leftovers(result),
        "churn_lost": len(result.lost),
    }


def leftovers(result: ChurnResult) -> int:
    """Cgroups (beyond the slot's), records and processes (beyond the daemon) left drained."""
    end = result.samples[-1]
    return max(0, end.cgroups - 1) + end.records + max(0, end.processes - 1)


def warm_index(result: ChurnResult) -> int:
    """The first sample at 10 % of the jobs or later (the warm-up ends there)."""
    total = result.samples[-1].jobs
    return next(i for i, s in enumerate(result.samples) if s.jobs >= total // 10)


def curve(result: ChurnResult) -> str:
    """The samples as a Markdown table (the RSS curve and the rest), the drained one last."""
    lines = [
        "| jobs | s | ms/job (window) | daemon CPU ms/job | RSS MiB | Pss MiB | fds | children "
        "| cgroups | records | processes | events.jsonl KiB | rotated |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    last = len(result.samples) - 1
    for i, s in enumerate(result.samples):
        window = f"{1e3 * result.per_job(i):.1f}" if 0 < i < last else "-"
        cpu = f"{1e3 * result.cpu_per_job(i):.2f}" if 0 < i < last else "-"
        jobs = f"{s.jobs} (drained)" if i == last else str(s.jobs)
        lines.append(
            f"| {jobs} | {s.elapsed:.1f} | {window} | {cpu} | {s.rss_kib / 1024:.1f} "
            f"| {s.pss_kib / 1024:.1f} | {s.fds} | {s.children} | {s.cgroups} | {s.records} "
            f"| {s.processes} | {s.events_bytes / 1024:.0f} | {s.rotated} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.churn [--quick] [--jobs N]`: this scenario alone, its rows and curve."""
    parser = argparse.ArgumentParser(prog="python -m bench.churn", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="the --quick size")
    parser.add_argument("--jobs", type=int, default=None, help="jobs in all (default: the size's)")
    args = parser.parse_args(argv)
    sizes = goals.QUICK if args.quick else goals.Sizes()
    if args.jobs is not None:
        sizes = replace(sizes, churn_jobs=args.jobs)
    try:
        box = Sandbox()
    except BenchError as exc:
        print(f"bench.churn: {exc}", file=sys.stderr)
        return 1
    host = report.machine()
    try:
        result = wnr_churn(box, sizes.churn_jobs, sizes.churn_in_flight, "c1")
    except BenchError as exc:
        print(f"bench.churn: {exc}", file=sys.stderr)
        return 1
    finally:
        box.close()
    figures = {key: [value] for key, value in metrics(result).items()}
    mode = "quick" if args.quick else "full"
    data = report.result(host, mode, runs=1, sizes=sizes, metrics=figures, errors=[])
    data["rows"] = [row for row in data["rows"] if row["wnr"].startswith("churn")]
    data["seconds"] = round(result.seconds, 1)
    data["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    print(report.table(data))
    print(f"\nlost: {', '.join(result.lost) or 'none'}\n")
    print(curve(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
