"""The kernel enforces what wnr writes: OOM kill, pids.max, cpu.max throttling, cgroup.kill."""

from __future__ import annotations

import time
from pathlib import Path

from tests.vm.guest.harness import Wnr, alive, brief, gate, wait_for

# A payload that touches 200 MB (bytes * n fills every page, unlike a lazy calloc).
ALLOCATE_200MB = "exec python3 -c 'data = b\"x\" * (200 * 1024 * 1024)'"


def test_job_past_its_memory_is_oom_killed_and_its_neighbour_survives(
    wnr: Wnr, tmp_path: Path
) -> None:
    """A job allocating 200 MB with memory 64Mi is OOM-killed (signal 9, oom_kill) while another job in the slot runs on."""
    go = tmp_path / "go"
    wnr.slot("s", {"memory": "512Mi"})
    wnr.job("hog", "s", gate(go, ALLOCATE_200MB), {"memory": "64Mi"})
    wnr.job("bystander", "s", ["sleep", "600"])
    wnr.apply()
    bystander = wnr.procs("slot.s/job.bystander")
    go.touch()
    # No wnr runs now, so the finished job's cgroup stays until this test's teardown.
    wait_for(
        "oom_kill in job.hog's memory.events",
        lambda: wnr.keyed("slot.s/job.hog", "memory.events")["oom_kill"] >= 1,
    )
    wait_for(
        "the hog's attempt record to say exited", lambda: wnr.record("hog")["phase"] == "exited"
    )
    record = wnr.record("hog")
    assert 9 == record["signal"], record
    if "oomKills" in record:
        assert record["oomKills"] >= 1, record
    assert bystander == wnr.procs("slot.s/job.bystander")
    assert [True, True] == [alive(pid) for pid in bystander]


def test_pids_limit_stops_a_fork_bomb_at_the_limit(wnr: Wnr, tmp_path: Path) -> None:
    """With `pids: 20` a payload forking 100 sleepers never holds more than 20 tasks, and pids.events counts the refusals."""
    go = tmp_path / "go"
    bomb = "for i in $(seq 100); do sleep 30 & done; wait"
    wnr.slot("s", {})
    wnr.job("bomb", "s", gate(go, bomb), {"pids": 20})
    wnr.apply()
    assert "20" == wnr.read("slot.s/job.bomb", "pids.max")
    samples = []
    go.touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        samples.append(int(wnr.read("slot.s/job.bomb", "pids.current")))
        if wnr.keyed("slot.s/job.bomb", "pids.events")["max"] > 0:
            break
    for _ in range(20):  # keep watching a little after the first refusal
        samples.append(int(wnr.read("slot.s/job.bomb", "pids.current")))
        time.sleep(0.05)
    assert wnr.keyed("slot.s/job.bomb", "pids.events")["max"] > 0
    assert max(samples) <= 20, samples
    assert max(samples) >= 15, samples


def test_cpu_limit_throttles_a_busy_loop_to_a_tenth_of_a_cpu(wnr: Wnr) -> None:
    """With `cpus: 0.1` a busy loop is throttled (nr_throttled > 0) to well under 20% of a CPU over 2 s."""
    wnr.slot("s", {})
    wnr.job("spin", "s", ["sh", "-c", "while :; do :; done"], {"cpus": "100m"})
    wnr.apply()
    assert "10000 100000" == wnr.read("slot.s/job.spin", "cpu.max")
    time.sleep(0.5)
    before, start = wnr.keyed("slot.s/job.spin", "cpu.stat"), time.monotonic()
    time.sleep(2.0)
    after, end = wnr.keyed("slot.s/job.spin", "cpu.stat"), time.monotonic()
    share = (after["usage_usec"] - before["usage_usec"]) / 1e6 / (end - start)
    assert after["nr_throttled"] > before["nr_throttled"] > 0, after
    assert 0.03 < share < 0.20, f"busy loop got {share:.1%} of a CPU"


def test_deleting_a_job_spec_empties_and_removes_its_cgroup(wnr: Wnr) -> None:
    """Deleting the spec of a job of 20 processes that ignore SIGTERM (grace 0) kills them all and removes its cgroup."""
    wnr.slot("s", {}, terminationGracePeriodSeconds=0)
    crowd = "trap '' TERM; for i in $(seq 19); do sleep 600 & done; wait"
    spec = wnr.job("crowd", "s", ["sh", "-c", crowd])
    wnr.apply()
    # The payload's 20 processes (the shell and its 19 sleepers) and the wrapper.
    wait_for("21 processes in job.crowd", lambda: len(wnr.procs("slot.s/job.crowd")) == 21)
    pids = wnr.procs("slot.s/job.crowd")
    spec.unlink()
    result = wnr.apply()
    assert not wnr.cgroup("slot.s/job.crowd").exists(), result.stdout
    assert not (wnr.state / "jobs" / "crowd").exists(), result.stdout
    assert [] == [pid for pid in pids if alive(pid)], result.stdout


def test_deleting_a_job_spec_also_kills_and_removes_cgroups_its_payload_made(wnr: Wnr) -> None:
    """Deleting the spec of a job whose payload moved 10 of its 20 processes into a cgroup of its own (as container runtimes do) kills them through cgroup.kill and removes the whole job cgroup."""
    wnr.slot("s", {}, terminationGracePeriodSeconds=0)
    inner = "echo 0 > $0/inner/cgroup.procs; for i in $(seq 9); do sleep 600 & done; wait"
    payload = (
        "cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); mkdir $cg/inner; "
        f"sh -c '{inner}' $cg & for i in $(seq 9); do sleep 600 & done; wait"
    )
    spec = wnr.job("nest", "s", ["sh", "-c", payload])
    wnr.apply()
    # job.nest: the wrapper, the shell and 9 sleepers; job.nest/inner: a shell and 9 sleepers.
    wait_for(
        "10 processes in job.nest/inner", lambda: len(wnr.procs("slot.s/job.nest/inner")) == 10
    )
    wait_for("11 processes in job.nest", lambda: len(wnr.procs("slot.s/job.nest")) == 11)
    pids = wnr.procs("slot.s/job.nest") + wnr.procs("slot.s/job.nest/inner")
    spec.unlink()
    # Short: the passes converge within seconds or never (the guest runs wnr slowly enough).
    result = wnr.run("apply", "--wait", "--timeout", "10", check=None)
    log = brief(result)
    assert [] == [pid for pid in pids if alive(pid)], log
    assert not wnr.cgroup("slot.s/job.nest").exists(), log
    assert 0 == result.returncode, log
