"""Event latencies of a running daemon among N running jobs, and the notifications beneath them.

- spec change -> its action applied: a new job file is written; done when
  the daemon has spawned its wrapper (the attempt's `.pid` file, written
  right after posix_spawn, appears; polled every 2 ms). The time to its
  payload running (`startedAt`) is kept as well.
- job exit -> status recorded: jobs whose payload is `sleep X` (staggered so
  each exit is an event of its own) end; done when the daemon's event log
  holds the job's `Completed` event (polled every 2 ms), counted from the
  wrapper's `finishedAt` (just after wait4 returned).
- peers: watchfiles' notification latency for one written file at its
  default step; the kernel's inotify event waking a poll(2), as the
  daemon's own sleep takes it (the floor of a spec change); and the kernel's
  `cgroup.events` notification (poll(2), POLLPRI) for a cgroup whose only
  process is SIGKILLed, counted from the kill.
The added jobs are deleted again afterwards (and waited for), so the fleet
the next scenario sees is the same size.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time

import watchfiles

from bench.common import BenchError, Sandbox, median, until_empty, wait_until
from bench.wnr import WnrDaemon, job_yaml
from reconciler.daemon.inotify import DirWatch
from reconciler.daemon.waker import Waker

PAYLOAD = ("sleep", "600")
POLL = 0.002


def spec_change(daemon: WnrDaemon, names: list[str]) -> tuple[list[float], list[float]]:
    """Per added job: seconds to its wrapper spawned, and to its payload running."""
    applied, running = [], []
    for name in names:
        pid_file = daemon.state / "jobs" / name / "attempt-1.pid"
        time.sleep(0.3)  # let the daemon settle after the previous one
        start = time.time()
        (daemon.specs / f"job-{name}.yaml").write_text(job_yaml(name, PAYLOAD))
        wait_until(f"{name}'s wrapper", pid_file.exists, 10, interval=POLL)
        applied.append(time.time() - start)
        started = daemon.wait_running([name], timeout=10)[name]
        running.append(started - start)
    _delete(daemon, names)
    return applied, running


def job_exit(
    daemon: WnrDaemon, names: list[str], gap: float = 0.4, timeout: float = 10.0
) -> list[float]:
    """Per job: seconds from its payload's exit to the daemon's `Completed` event; `timeout`
    beyond the last exit (passes among thousands of jobs take longer)."""
    for i, name in enumerate(names):
        command = ("sleep", f"{1.0 + gap * i:.1f}")
        (daemon.specs / f"job-{name}.yaml").write_text(job_yaml(name, command))
    log = daemon.state / "events.jsonl"
    seen: dict[str, float] = {}
    offset = log.stat().st_size if log.exists() else 0
    inode = log.stat().st_ino if log.exists() else 0

    def completed() -> bool:
        nonlocal offset, inode
        try:
            st = log.stat()
        except FileNotFoundError:
            return False
        if st.st_ino != inode:  # rotated: the new file holds only new lines
            inode, offset = st.st_ino, 0
        if st.st_size <= offset:
            return False
        now = time.time()
        with open(log, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        offset += len(complete)
        for line in complete.splitlines():
            event = json.loads(line)
            obj = str(event.get("object", "")).removeprefix("Job/")
            if obj in names and event.get("reason") == "Completed":
                seen.setdefault(obj, now)
        return len(seen) == len(names)

    wait_until("the jobs' Completed events", completed, timeout + gap * len(names), interval=POLL)
    latencies = []
    for name in names:
        record = daemon.record(name) or {}
        latencies.append(seen[name] - float(record["finishedAt"]))
    _delete(daemon, names)
    return latencies


def _delete(daemon: WnrDaemon, names: list[str]) -> None:
    for name in names:
        (daemon.specs / f"job-{name}.yaml").unlink()
    daemon.wait_forgotten(names)


def watchfiles_latency(box: Sandbox, samples: int, **settings: int) -> float:
    """Median seconds from writing a file to watchfiles yielding it."""
    directory = box.tmp / f"watch.{len(settings)}.{time.monotonic_ns()}"
    directory.mkdir()
    stop = threading.Event()
    seen: queue.Queue[float] = queue.Queue()

    def watch() -> None:
        for _ in watchfiles.watch(directory, stop_event=stop, rust_timeout=200, **settings):
            seen.put(time.perf_counter())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.3)
    latencies = []
    try:
        for i in range(samples):
            start = time.perf_counter()
            (directory / f"f{i}.yaml").write_text("x: 1\n")
            latencies.append(seen.get(timeout=10) - start)
            time.sleep(0.1)
            while not seen.empty():
                seen.get_nowait()
    finally:
        stop.set()
        thread.join(timeout=5)
    return median(latencies)


def inotify_latency(box: Sandbox, samples: int) -> float:
    """Median seconds from writing a file to the kernel's inotify event waking a poll(2), as
    the daemon sleeps (reconciler.daemon.inotify in a reconciler.daemon.waker): the floor
    of a spec change."""
    directory = box.tmp / f"inotify.{time.monotonic_ns()}"
    directory.mkdir()
    dirs, waker = DirWatch(), Waker()
    waker.add_reader(dirs.fd, dirs.drain)
    dirs.ensure([str(directory)])
    latencies = []
    try:
        for i in range(samples):
            start = time.perf_counter()
            (directory / f"f{i}.yaml").write_text("x: 1\n")
            if not waker.wait(10.0):
                raise BenchError(f"no inotify event for {directory}/f{i}.yaml")
            latencies.append(time.perf_counter() - start)
    finally:
        dirs.close()
        waker.close()
    return median(latencies)


def cgroup_events_latency(box: Sandbox, samples: int, tag: str) -> float:
    """Median seconds from SIGKILL of a cgroup's only process to `populated 0` via poll(2)."""
    parent = box.cgroup(f"peer.events.{tag}")
    latencies = []
    try:
        for i in range(samples):
            cgroup = parent / f"c{i}"
            cgroup.mkdir()
            pid = box.spawn(PAYLOAD, cgroup)
            latencies.append(until_empty(cgroup, lambda pid=pid: os.kill(pid, signal.SIGKILL)))
    finally:
        box.remove(parent)
    return median(latencies)
