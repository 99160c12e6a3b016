"""Stopping and cleaning up without cgroup.kill: the freeze+kill fallback on a kernel before 5.14.

Every test here is marked `oldkernel`: tests/test_vm_tier.py runs them in the
6.1 boot with the rest of the guest suite (where wnr uses cgroup.kill) and again
in a boot of Debian bullseye's 5.10 kernel (`VM_KERNEL=5.10`), where the file
does not exist and wnr freezes the cgroup, SIGKILLs each process, thaws it and
removes it once `populated` drops to 0 (which `wnr apply -v` logs as freeze+kill: the
tests check it is logged exactly where the kernel lacks the file). The payloads
ignore SIGTERM, so only that kill ends them. Each ends with the same leak checks:
no process of the jobs alive, no cgroup of theirs left. Runs INSIDE the VM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.guest.harness import REPO, Wnr, alive, brief, wait_for

pytestmark = pytest.mark.oldkernel
GRACE = 2

# 20 processes that ignore SIGTERM, 10 of them moved into a cgroup of the payload's own
# (as a container runtime does): only a kill of the whole subtree ends them.
NESTED_CROWD = (
    "trap '' TERM; cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); mkdir $cg/inner; "
    "sh -c \"trap '' TERM; echo 0 > $cg/inner/cgroup.procs; "
    'for i in \\$(seq 9); do sleep 600 & done; wait" & for i in $(seq 9); do sleep 600 & done; wait'
)


def stop(wnr: Wnr) -> str:
    """`wnr apply --wait -v` until converged; its output, after checking which way wnr killed:
    freeze+kill exactly where the kernel has no cgroup.kill."""
    result = wnr.run("apply", "--wait", "--timeout", "60", "-v", check=None)
    log = brief(result)
    assert 0 == result.returncode, log
    assert old_kernel() == ("(freeze+kill)" in log), log
    return log


def old_kernel() -> bool:
    """Whether this kernel predates cgroup.kill (5.14), by its release."""
    major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    return (major, minor) < (5, 14)


def mechanism() -> str:
    """The stop mechanism `wnr doctor` must name on this kernel."""
    return "freeze+kill" if old_kernel() else "cgroup.kill"


def tree_pids(cgroup: Path) -> list[int]:
    """Every PID in a cgroup and the cgroups below it."""
    return [
        int(p) for d, _, _ in os.walk(cgroup) for p in Path(d, "cgroup.procs").read_text().split()
    ]


def leftovers(root: Path) -> list[str]:
    """The cgroups left below wnr's root, relative to it."""
    return sorted(str(Path(d).relative_to(root)) for d, _, _ in os.walk(root) if Path(d) != root)


def start_crowds(wnr: Wnr, *jobs: str) -> list[int]:
    """Apply a slot with one nested crowd per name; returns all their PIDs. They ignore the
    SIGTERM, so they live on until the grace (2 s) is over and wnr kills the cgroup."""
    wnr.slot("s", {}, terminationGracePeriodSeconds=GRACE, drainGracePeriodSeconds=0)
    for job in jobs:
        wnr.job(job, "s", ["sh", "-c", NESTED_CROWD])
    wnr.apply()
    for job in jobs:
        cgroup = wnr.cgroup(f"slot.s/job.{job}")
        # The wrapper, the shell and 9 sleepers; a shell and 9 sleepers in inner/.
        wait_for(f"21 processes in job.{job}", lambda c=cgroup: len(tree_pids(c)) == 21)
    if old_kernel():
        assert not (wnr.cgroup("slot.s") / "cgroup.kill").exists(), "this kernel has cgroup.kill"
    return [pid for job in jobs for pid in tree_pids(wnr.cgroup(f"slot.s/job.{job}"))]


def test_doctor_names_the_stop_mechanism_of_this_kernel(wnr: Wnr) -> None:
    """`wnr doctor` says whether jobs are stopped with cgroup.kill or with freeze+kill, as this kernel allows."""
    wnr.slot("s", {})
    wnr.apply()
    result = wnr.run("doctor", check=None)
    line = next(x for x in result.stdout.splitlines() if "] cgroup.kill:" in x)
    assert f"mechanism {mechanism()}" in line, result.stdout
    assert str(wnr.root) in line, "seen in the root's own files, not guessed from the release"


def test_deleting_a_job_kills_its_nested_processes_and_removes_its_cgroups(wnr: Wnr) -> None:
    """Deleting a job whose 20 processes ignore SIGTERM, half in a cgroup of their own, kills them all and removes its cgroups."""
    pids = start_crowds(wnr, "crowd")
    (wnr.specs / "job-crowd.yaml").unlink()
    log = stop(wnr)
    assert [] == [pid for pid in pids if alive(pid)], log
    assert ["slot.s"] == leftovers(wnr.root), log
    assert not (wnr.state / "jobs" / "crowd").exists(), log


def test_draining_a_slot_stops_every_job_and_deleting_it_leaves_nothing(wnr: Wnr) -> None:
    """A Draining slot stops both its jobs (which ignore SIGTERM) as Drained; deleting everything then leaves no process and no cgroup."""
    pids = start_crowds(wnr, "a", "b")
    wnr.slot(
        "s", {}, terminationGracePeriodSeconds=GRACE, drainGracePeriodSeconds=0, state="Draining"
    )
    log = stop(wnr)
    assert [] == [pid for pid in pids if alive(pid)], log
    jobs = json.loads(wnr.run("get", "jobs", "-o", "json").stdout)
    assert {"Drained"} == {j["status"]["reason"] for j in jobs["items"]}, jobs
    for spec in wnr.specs.iterdir():
        spec.unlink()
    result = wnr.run("apply", "--wait", "--timeout", "60", check=None)
    assert 0 == result.returncode, brief(result)
    assert [] == leftovers(wnr.root), brief(result)


def test_a_daemon_killed_mid_run_is_cleaned_up_after_by_the_next_wnr(wnr: Wnr) -> None:
    """After `wnr run` is SIGKILLed with jobs running and their specs deleted, the next `wnr apply` kills them all and removes every cgroup."""
    pids = start_crowds(wnr, "left")
    flags = ("--specs", wnr.specs, "--root", wnr.root, "--state-dir", wnr.state)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", *map(str, flags)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            "the daemon's lock", lambda: str(daemon.pid) in (wnr.state / "wnr.lock").read_text()
        )
    finally:
        daemon.send_signal(signal.SIGKILL)  # the daemon this test started, by its PID
        daemon.wait(timeout=30)
    assert [] == [pid for pid in pids if not alive(pid)], "jobs outlive their daemon"
    for spec in wnr.specs.iterdir():
        spec.unlink()
    log = stop(wnr)
    assert [] == [pid for pid in pids if alive(pid)], log
    assert [] == leftovers(wnr.root), log
