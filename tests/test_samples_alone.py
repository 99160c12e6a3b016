"""Passes that take due usage samples alone (reconciler.samplesonly), on the real cgroup2 mount with real wrappers and the spec directory's real inotify: when a timer-woken pass may skip the rest, and each thing that makes it run in full."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.daemon.inotify import DirWatch
from reconciler.daemon.loop import Daemon
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.exits import Watched
from reconciler.host.statedir import StateDir
from reconciler.observe.quiet import RELIST_SECONDS
from reconciler.plan.jobphase import Phase
from reconciler.plan.samples import over_limits
from reconciler.reconcile import Reconciler
from reconciler.specs.loader import SpecLoader
from reconciler.status.passresult import PassResult
from tests.conftest import wait_for
from tests.helpers import USER_SPACE_NODE, DaemonProcess, job_document

# The payload waits for its trigger file, then holds 200 MiB (over its 64 MiB limit).
GROWER = (
    "import os, time\n"
    "while not os.path.exists('{trigger}'): time.sleep(0.05)\n"
    "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(600)\n"
)
JOBS = ("grower", "sleeper", "plain")
# The interpreter itself: `python3` on PATH may be a shell script that forks as it starts.
PYTHON = str(Path(sys.executable).resolve())
# A step past the user-space interval of USER_SPACE_NODE (0.2 s), so that every job's sample
# is due at each step whatever the float sums round to.
STEP = 0.25
# The jobs' idle window: far past anything but the test that moves there.
IDLE_WINDOW = 600


class Clock:
    """A clock the test moves, which also ticks a little at every read (as the real one
    moves within a pass)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1e-4
        return self.now


@dataclass
class Node:
    """A reconciler wired as the daemon wires it, its clock, and the spec and trigger files."""

    reconciler: Reconciler
    clock: Clock
    specs: Path
    trigger: Path

    def full(self) -> PassResult:
        """A pass an event woke."""
        self.clock.now += STEP
        return self.reconciler.run_pass()

    def timed(self, step: float = STEP) -> PassResult:
        """A pass the timer woke, `step` seconds on."""
        self.clock.now += step
        self.reconciler.timer_wake = True
        return self.reconciler.run_pass()


def specs_text(trigger: Path) -> str:
    """Two jobs under limits wnr enforces itself, one of which grows on its trigger, and one
    with no limit (its samples read no PIDs for the memory)."""
    idle = f"idle: {{windowSeconds: {IDLE_WINDOW}}}\n"
    limits = f"resources: {{memory: 64Mi, pids: 20}}\n{idle}"
    return (
        USER_SPACE_NODE
        + job_document("grower", [PYTHON, "-c", GROWER.format(trigger=trigger)], limits)
        + job_document("sleeper", ["sleep", "600"], limits)
        + job_document("plain", ["sleep", "600"], idle)
    )


@contextlib.contextmanager
def wired(text: str, cgroup_root: Path, state_dir: Path, tmp_path: Path) -> Iterator[Node]:
    """A reconciler on these specs, wired as the daemon wires it (the spec directory's
    inotify; the loop's own watches left to the test)."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(text)
    clock = Clock()
    loader = SpecLoader([specs])
    reconciler = Reconciler(loader, CgroupFS(cgroup_root), StateDir(state_dir), clock)
    dirs = DirWatch()
    assert [] == dirs.ensure([str(specs)])
    reconciler.spec_changes = dirs.take_changed
    try:
        yield Node(reconciler, clock, specs, tmp_path / "grow")
    finally:
        dirs.close()
        reconciler.sampler.files.close()
        reconciler.exits.close()  # the cgroup_root fixture kills the jobs and removes all


@pytest.fixture
def node(cgroup_root: Path, state_dir: Path, tmp_path: Path) -> Iterator[Node]:
    """Every job running and a full pass after them: the node is settled."""
    with wired(specs_text(tmp_path / "grow"), cgroup_root, state_dir, tmp_path) as here:

        def running() -> bool:
            views = here.full().plan.jobs
            return all(views[n].phase is Phase.Running for n in JOBS)

        wait_for(running, timeout=30, interval=0.05)
        here.full()
        yield here


def test_a_settled_node_takes_due_samples_alone(node: Node) -> None:
    """A timer-woken pass after a settled one samples every job (one without a limit too) and reads nothing else: it hands back the last full pass's reading with the new samples."""
    full = node.full()
    alone = node.timed()
    assert alone.samples_only
    assert full.observed.jobs is alone.observed.jobs
    taken = {usage.sampled_at for usage in alone.observed.usage.values()}
    assert (set(JOBS), 1) == (set(alone.observed.usage), len(taken))
    assert taken.pop() > full.observed.usage["plain"].sampled_at
    assert alone.plan.jobs is full.plan.jobs
    assert node.timed().samples_only


def test_a_pass_an_event_woke_is_full(node: Node) -> None:
    """Without the timer's word (an event ended the sleep) the pass runs in full, and so does a timer-woken one after a spec was edited."""
    assert not node.full().samples_only
    node.timed()
    path = node.specs / "specs.yaml"
    path.write_text(path.read_text().replace("windowSeconds: 600", "windowSeconds: 601", 1))
    edited = node.timed()
    assert not edited.samples_only
    assert 601 == edited.desired.jobs["grower"].spec.idle.window_seconds
    assert node.timed().samples_only  # the edit's pass changed nothing running: settled


def test_memory_past_its_limit_makes_the_pass_full_and_kills(node: Node) -> None:
    """A payload that grows past its memory limit: the first sample that reads it over makes its pass run in full, which stops the job as OOMKilled."""
    assert node.timed().samples_only
    node.trigger.touch()

    def over() -> bool:
        result = node.timed()
        desired = result.desired
        factor = desired.node_spec.policies.user_space.memory_factor
        usage = result.observed.usage["grower"]
        if over_limits(usage, desired.jobs["grower"].spec.resources, factor)[0] is None:
            return False
        assert not result.samples_only
        assert "OOMKilled" in str(result.plan.actions)
        return True

    wait_for(over, timeout=30, interval=0.05)


def test_a_process_moved_into_a_job_makes_the_pass_full(node: Node, cgroup_root: Path) -> None:
    """A process the test started and wrote into a job's cgroup.procs is new to the job's next sample: that pass runs in full and reports the intruder."""
    assert node.timed().samples_only
    intruder = subprocess.Popen(["sleep", "600"])
    try:
        (cgroup_root / "slot.s" / "job.sleeper" / "cgroup.procs").write_text(str(intruder.pid))
        result = node.timed()
        assert not result.samples_only
        assert [intruder.pid] == [s.pid for s in result.observed.intruders]
    finally:
        intruder.kill()
        intruder.wait()


def test_a_process_moved_into_a_slot_makes_the_pass_full(node: Node, cgroup_root: Path) -> None:
    """A process the test started and wrote into a slot's cgroup.procs, where none of wnr's sits, is seen by the next timer-woken pass, which runs in full and reports it a stray."""
    assert node.timed().samples_only
    stray = subprocess.Popen(["sleep", "600"])
    try:
        (cgroup_root / "slot.s" / "cgroup.procs").write_text(str(stray.pid))
        result = node.timed()
        assert not result.samples_only
        assert stray.pid in {s.pid for s in result.observed.strays}
    finally:
        stray.kill()
        stray.wait()


def test_a_turn_reached_makes_the_pass_full(node: Node) -> None:
    """The end of the idle window is a turn (the plan asks no pass for it: the samples decide): the first timer-woken pass past it runs in full and stops the idle jobs, though their samples read as before."""
    node.reconciler.quiet.relist_seconds = 2 * IDLE_WINDOW  # as `wnr run --resync` sets it
    node.full()
    active = node.timed().observed.usage["sleeper"].busy_at
    assert active is not None
    step = IDLE_WINDOW / 12  # the idle figures are due at every step (a tenth of the window)
    passes = []
    while node.clock.now + step < active + IDLE_WINDOW:
        passes.append(node.timed(step))
    assert passes[-1].samples_only  # the figures settled: each sample reads as the last
    crossing = node.timed(step)
    assert not crossing.samples_only
    assert {f"Job/{name}" for name in JOBS} == {a.obj for a in crossing.plan.actions}
    assert "IdleTimeout" in str(crossing.plan.actions)


def test_the_resync_is_a_full_pass(node: Node) -> None:
    """A timer-woken pass once the relist is due reads everything again."""
    full = node.full()
    assert node.timed().samples_only
    resync = node.timed(RELIST_SECONDS)
    assert not resync.samples_only
    assert full.observed.jobs is not resync.observed.jobs


AGENT_SLOT = """\
---
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: agents}
spec:
  terminationGracePeriodSeconds: 1
  user: root
  agents:
    replicas: 1
    command: [sleep, "600"]
"""


def test_a_node_with_an_agent_settles_once_its_wrapper_is_watched(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """An agent's end is known only by its wrapper's pidfd: while nothing watches it (the loop watches it after a pass), timer-woken passes run in full; once watched, they take samples alone."""
    text = specs_text(tmp_path / "grow") + AGENT_SLOT
    with wired(text, cgroup_root, state_dir, tmp_path) as here:

        def agent_running() -> bool:
            agent = here.full().observed.agent_records.get(("agents", 0))
            return agent is not None and agent.run is not None and agent.run.phase == "running"

        wait_for(agent_running, timeout=30, interval=0.05)
        here.full()
        assert not here.timed().samples_only
        run = here.full().observed.agent_records[("agents", 0)].run
        assert run is not None
        assert run.wrapper_pid is not None
        assert Watched.WATCHING is here.reconciler.exits.watch(run.wrapper_pid)
        here.full()
        assert here.timed().samples_only


def test_the_daemon_kills_a_job_that_grows_after_it_settled(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Through `wnr run`: a job under its limit for a while (the daemon's timer passes take samples alone), then past it, is killed as OOMKilled."""
    specs = tmp_path / "specs"
    specs.mkdir()
    trigger = tmp_path / "grow"
    (specs / "specs.yaml").write_text(specs_text(trigger))
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.args += ["--resync", "600"]  # no resync within the test: only a sample can kill
    daemon.start()
    record = state_dir / "jobs" / "grower" / "stop.json"
    try:
        running = cgroup_root / "slot.s" / "job.grower" / "cgroup.procs"
        wait_for(lambda: len(running.read_text().split()) >= 2, timeout=30)
        time.sleep(2)  # ten intervals: settled passes, the timer's taking samples alone
        assert not record.exists()
        trigger.touch()
        wait_for(record.exists, timeout=30)
    finally:
        daemon.kill()
    assert "OOMKilled" in record.read_text(), (tmp_path / "daemon.log").read_text()


def test_the_daemon_says_whether_an_event_ended_its_sleep(node: Node) -> None:
    """The loop's sleep reports a wake-up as an event and its timeout as none: only the pass after a timeout may take samples alone."""
    daemon = Daemon(node.reconciler, [node.specs])
    try:
        assert not daemon._sleep(0.05)
        daemon.waker.wake()
        assert daemon._sleep(5.0)
    finally:
        daemon.waker.close()
