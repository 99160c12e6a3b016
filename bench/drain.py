"""Drain: a slot holding P processes (none ignores signals), grace 0, until its cgroup is gone.

- wnr: a second slot (drain and termination grace 0) with one job whose
  payload is `sh` with P-2 background `sleep`s (wrapper + sh + sleeps = P
  processes), next to the fleet. The clock starts when the slot's spec file
  is deleted (a deleted Slot drains, DESIGN §2) and stops when its cgroup
  directory is gone (polled every 2 ms). The job's own file is deleted
  afterwards and its records waited for.
- peer: cgroup.kill alone on a cgroup with P `sleep`s: write `1`, wait for
  `populated 0` (poll(2) on cgroup.events), rmdir.
"""

from __future__ import annotations

import os
import time

from bench.common import BenchError, Sandbox, populated, until_empty, wait_until, write
from bench.wnr import WnrDaemon, job_yaml, slot_yaml

POLL = 0.002


def wnr_drain(daemon: WnrDaemon, processes: int, tag: str) -> float:
    """Seconds from deleting the slot's spec to its cgroup removed."""
    slot, job = f"drain{tag}", f"drain{tag}-job"
    forks = processes - 2
    script = f"i=0; while [ $i -lt {forks} ]; do sleep 600 & i=$((i+1)); done; wait"
    slot_file = daemon.specs / f"slot-{slot}.yaml"
    job_file = daemon.specs / f"job-{job}.yaml"
    slot_file.write_text(slot_yaml(slot, grace=0))
    # Limits that P processes fit (wnr enforces pids and memory itself on a hybrid host).
    resources = f"{{cpus: 5m, memory: 512Mi, pids: {processes + 16}}}"
    job_file.write_text(job_yaml(job, ["sh", "-c", script], slot=slot, resources=resources))
    cgroup = daemon.root / f"slot.{slot}"
    procs = cgroup / f"job.{job}" / "cgroup.procs"
    wait_until(
        f"{processes} processes in {job}",
        lambda: len(procs.read_text().split()) >= processes,
        30,
    )
    time.sleep(0.5)  # the passes that started it are over; it must still run, unstopped
    if (daemon.state / "jobs" / job / "stop.json").exists():
        raise BenchError(f"{job} was stopped before its slot was deleted; see {daemon.log}")
    start = time.perf_counter()
    slot_file.unlink()
    wait_until(f"{cgroup} removed", lambda: not cgroup.exists(), 30, interval=POLL)
    elapsed = time.perf_counter() - start
    if not any(
        e.get("object") == f"Job/{job}" and str(e.get("message", "")).startswith("Drained")
        for e in daemon.events()
    ):
        raise BenchError(f"{job} was not stopped by the drain; see {daemon.state}/events.jsonl")
    job_file.unlink()
    wait_until(f"{job}'s records removed", lambda: not (daemon.state / "jobs" / job).exists(), 30)
    return elapsed


def kill_alone(box: Sandbox, processes: int, tag: str) -> float:
    """Seconds for cgroup.kill of P sleeps until the cgroup is removed."""
    cgroup = box.cgroup(f"peer.kill.{tag}")
    try:
        for _ in range(processes):
            box.spawn(("sleep", "600"), cgroup)
        wait_until("the sleeps", lambda: populated(cgroup), 10)
        start = time.perf_counter()
        until_empty(cgroup, lambda: write(cgroup / "cgroup.kill", "1"))
        os.rmdir(cgroup)
        return time.perf_counter() - start
    finally:
        box.remove(cgroup)
