"""Cold start: from writing N job spec files to every payload running, with its floor and peer.

- wnr: a running daemon with an empty spec dir; the clock starts when the
  benchmark begins writing the slot file and one file per job, and stops at
  the latest `startedAt` the wrappers record (written just before a wrapper
  lets its forked payload exec: the payload waits at a gate until its attempt
  is recorded running), so the polling that waits for them never sits inside
  the measured interval.
- wnr, daemon launched with the specs already written (informational: the
  same start as supervisord's, interpreter start-up included).
- the floor: N x (mkdir a cgroup, write the limit files its controllers
  offer, posix_spawn `sleep`, write its PID to cgroup.procs), in-process.
- supervisord from PyPI starting N programs (`sleep 600`, startsecs=0): from
  launching it to every program exec'd (see `bench.supervisor`).
"""

from __future__ import annotations

import os
import time

from bench.common import Sandbox, write
from bench.supervisor import Supervisor
from bench.wnr import SLOT, WnrDaemon, job_names, slot_yaml, write_jobs
from reconciler.model.limits import CONTROLLER_OF

PAYLOAD = ("sleep", "600")


def wnr_cold(box: Sandbox, count: int, tag: str, keep: bool = False) -> tuple[float, WnrDaemon]:
    """Seconds from writing the specs to the last payload running; the daemon is returned
    still running with its jobs when `keep`, else torn down."""
    daemon = WnrDaemon(box, tag)
    try:
        daemon.start()
        names = job_names(count)
        start = time.time()
        (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
        write_jobs(daemon.specs, names, PAYLOAD)
        started = daemon.wait_running(names)
        elapsed = max(started.values()) - start
    except BaseException:
        daemon.teardown()
        raise
    if not keep:
        daemon.teardown()
    return elapsed, daemon


def wnr_boot(box: Sandbox, count: int, tag: str) -> float:
    """Seconds from launching the daemon on a spec dir already holding N jobs to all running."""
    daemon = WnrDaemon(box, tag)
    try:
        names = job_names(count)
        (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
        write_jobs(daemon.specs, names, PAYLOAD)
        start = time.time()
        daemon.start(settle=False)
        started = daemon.wait_running(names)
        return max(started.values()) - start
    finally:
        daemon.teardown()


def floor(box: Sandbox, count: int, tag: str) -> float:
    """N x (mkdir + limit writes + posix_spawn + enter the cgroup), in seconds."""
    parent = box.cgroup(f"floor.{tag}")
    # What wnr writes per job cgroup where the controllers exist (none do on a hybrid host).
    limits = {"cpu.max": "1000 100000", "memory.max": str(48 << 20), "pids.max": "16"}
    try:
        start = time.perf_counter()
        for i in range(count):
            cgroup = parent / f"c{i}"
            os.mkdir(cgroup)
            for name in CONTROLLER_OF:
                if name in limits and os.path.exists(cgroup / name):
                    write(cgroup / name, limits[name])
            box.spawn(PAYLOAD, cgroup)
        return time.perf_counter() - start
    finally:
        box.remove(parent)


def supervisord_cold(box: Sandbox, count: int, tag: str, keep: bool = False) -> Supervisor:
    """supervisord managing N programs, started and timed (`.startup`); stopped unless `keep`."""
    sup = Supervisor(box, tag, count)
    try:
        sup.start()
    except BaseException:
        sup.stop()
        raise
    if not keep:
        sup.stop()
    return sup
