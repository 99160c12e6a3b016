"""The per-job curve's measurements: one daemon per fleet size, its jobs spread across slots.

Part of a run (bench.run calls `measure` for each `--jobs` size, after the
table's scenarios); bench.curve turns the figures into the curve. Each size N
gets a daemon of its own and a fleet of N `sleep 600` jobs, JOBS_PER_SLOT to
a slot, every slot with one agent (so agents' wrappers are watched too), with
tiny limits so that the slots' sum fits this machine (2,000 jobs: 2 cores,
16 GiB). Measured, in this order:

- cold start: from writing the slot and job files to the last payload's
  `startedAt`; its floor (bench.coldstart.floor) for the same N after the
  fleet is gone;
- daemon RSS and the pidfds it holds (`/proc/PID/fd` entries reading
  `anon_inode:[pidfd]`) against the live wrappers (jobs and agents), once
  the daemon has had time to watch them all: every exit noticed by its pidfd;
- job exit -> `Completed` (bench.latency.job_exit) among the fleet, against
  `cgroup.events` (the kernel's own notification) measured right after;
- with the daemon stopped (its jobs keep running), the no-op pass's CPU
  in-process against reading `cgroup.procs`+`cpu.stat` of the same cgroups.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable

from bench import coldstart, latency, passes
from bench.common import BenchError, Sandbox, median, status_kib, wait_until
from bench.wnr import SLOT, WnrDaemon, job_names, job_yaml

JOBS_PER_SLOT = 64
# Per job: the smallest CPU quantity (cpu.max's quota is raised to the kernel's 1 ms minimum)
# and memory that still holds the wrapper and `sleep`; 2,000 of them need 16 GiB.
FLEET_JOB = {"cpus": 1, "memory": 8, "pids": 8}  # millicores, MiB, count
AGENT = '{replicas: 1, command: [sleep, "600"], resources: {cpus: 1m, memory: 8Mi, pids: 8}}'
PAYLOAD = ("sleep", "600")
# The latency samples are ordinary benchmark jobs (bench.wnr.JOB_RESOURCES) in the first slot.
SAMPLE_ROOM = {"cpus": 5, "memory": 48, "pids": 16}


def slot_names(jobs: int) -> list[str]:
    """The fleet's slots: the first is bench.wnr.SLOT (the latency samples go there)."""
    count = max(1, math.ceil(jobs / JOBS_PER_SLOT))
    return [SLOT] + [f"{SLOT}-{i}" for i in range(1, count)]


def fleet_slot_yaml(name: str, jobs: int, samples: int) -> str:
    """A slot with room for `jobs` fleet jobs, its agent and (the first) `samples` more."""
    extra = samples if name == SLOT else 0
    # One job's worth more for the agent.
    room = {k: (jobs + 1) * v + extra * SAMPLE_ROOM[k] for k, v in FLEET_JOB.items()}
    return (
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  resources: {{cpus: {room['cpus']}m, memory: {room['memory']}Mi, "
        f"pids: {room['pids']}}}\n"
        "  drainGracePeriodSeconds: 0\n"
        "  terminationGracePeriodSeconds: 0\n"
        f"  agents: {AGENT}\n"
    )


def write_fleet(daemon: WnrDaemon, names: list[str], samples: int) -> None:
    """The slot files, then one file per job, JOBS_PER_SLOT to a slot in order."""
    slots = slot_names(len(names))
    for i, slot in enumerate(slots):
        jobs = len(names[i * JOBS_PER_SLOT : (i + 1) * JOBS_PER_SLOT])
        (daemon.specs / f"slot-{slot}.yaml").write_text(fleet_slot_yaml(slot, jobs, samples))
    f = FLEET_JOB
    resources = f"{{cpus: {f['cpus']}m, memory: {f['memory']}Mi, pids: {f['pids']}}}"
    for i, name in enumerate(names):
        text = job_yaml(name, PAYLOAD, slot=slots[i // JOBS_PER_SLOT], resources=resources)
        (daemon.specs / f"job-{name}.yaml").write_text(text)


def pidfds(pid: int) -> int:
    """How many pidfds a process holds."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]"
    return count


def live_wrappers(daemon: WnrDaemon) -> int:
    """Wrappers alive that the records name (jobs' last attempts, agents' current runs)."""
    records = [*(daemon.state / "jobs").glob("*/attempt-*.json")]
    records += (daemon.state / "agents").glob("*/*/run.json")
    pids = set()
    for path in records:
        with contextlib.suppress(FileNotFoundError, ValueError):
            data = json.loads(path.read_bytes())
            if data.get("phase") == "running" and isinstance(data.get("wrapperPid"), int):
                pids.add(data["wrapperPid"])
    return sum(os.path.exists(f"/proc/{pid}") for pid in pids)


def _watched(daemon: WnrDaemon, wanted: int) -> Callable[[], bool]:
    return lambda: live_wrappers(daemon) >= wanted and pidfds(daemon.pid) >= wanted


def measure(
    box: Sandbox, jobs: int, tag: str, out: dict[str, float], *, samples: int, repeats: int
) -> None:
    """One size's figures into `out` (keys as in bench.curve.METRICS, in their units) as they
    are measured, so that a step failing keeps the ones before it; on a daemon of its own,
    torn down at the end."""
    names = job_names(jobs)
    daemon = WnrDaemon(box, tag)
    try:
        daemon.start()
        start = time.time()
        write_fleet(daemon, names, samples)
        # Polling thousands of records every 50 ms would take CPU from the daemon it times.
        started = daemon.wait_running(names, timeout=60 + jobs / 20, interval=0.05 + jobs / 1e4)
        out["cold"] = max(started.values()) - start
        wanted = jobs + len(slot_names(jobs))  # every job's wrapper and every agent's
        with contextlib.suppress(BenchError):  # short of it, the pidfd figures say so
            wait_until("every wrapper watched", _watched(daemon, wanted), 10 + jobs / 200, 0.2)
        out["rss"] = status_kib(daemon.pid) / 1024
        out["pidfds"], out["wrappers"] = pidfds(daemon.pid), live_wrappers(daemon)
        ended = [f"exit{tag}-{i}" for i in range(samples)]
        exits = latency.job_exit(daemon, ended, timeout=10 + jobs / 40)
        out["exit"] = 1e3 * median(exits)
        out["events"] = 1e3 * latency.cgroup_events_latency(box, samples, tag)
        daemon.stop()
        out["noop"] = 1e3 * passes.noop_cpu(daemon, repeats)
        out["read"] = 1e3 * passes.read_cgroups(daemon.root, repeats)
    finally:
        daemon.teardown()
    out["floor"] = coldstart.floor(box, jobs, tag)
