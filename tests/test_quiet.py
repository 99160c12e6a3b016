"""Quiet running jobs (reconciler.observe.quiet) on the real cgroup2 mount with real wrappers: what a pass may skip reading, and what ends the quiet."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.statedir import StateDir
from reconciler.observe.quiet import RELIST_SECONDS
from reconciler.plan.jobphase import Phase
from reconciler.reconcile import Reconciler
from reconciler.specs.loader import SpecLoader
from tests.conftest import wait_for
from tests.helpers import procs, write_job, write_slot


class Clock:
    """A clock the test moves (the relist is due by time)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> Iterator[tuple[Reconciler, Clock]]:
    """A reconciler whose two jobs (`sleep 600`) run, after the passes that started them."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s", grace=0)
    for name in ("a", "b"):
        write_job(specs, name, "s", ["sleep", "600"])
    clock = Clock()
    reconciler = Reconciler(SpecLoader([specs]), CgroupFS(cgroup_root), StateDir(state_dir), clock)

    def both_running() -> bool:
        clock.now += 0.5
        views = reconciler.run_pass().plan.jobs
        return all(views[n].phase is Phase.Running for n in ("a", "b"))

    wait_for(both_running, timeout=30, interval=0.05)
    try:
        yield reconciler, clock
    finally:
        reconciler.exits.close()  # the cgroup_root fixture kills the jobs and removes all


def test_a_running_job_is_quiet_and_not_read_again(running: tuple[Reconciler, Clock]) -> None:
    """Once running, both jobs are quiet: later passes reuse their reading until the relist, which reads them again (and finds them as they were)."""
    reconciler, clock = running
    clock.now += 0.5
    reconciler.run_pass()
    assert 2 == len(reconciler.quiet)
    first = reconciler.run_pass().observed.jobs["a"]
    clock.now += 0.5
    assert first is reconciler.run_pass().observed.jobs["a"]
    clock.now += RELIST_SECONDS + 1  # past the relist: everything is read again
    again = reconciler.run_pass().observed.jobs["a"]
    assert first is not again
    assert first == again


def test_a_quiet_jobs_end_is_seen_by_the_next_pass(
    running: tuple[Reconciler, Clock], cgroup_root: Path
) -> None:
    """Killing a quiet job's payload ends its quiet: the pass after its wrapper exits reads it, and the job has ended, the other still running."""
    reconciler, clock = running
    clock.now += 0.5
    reconciler.run_pass()
    assert 2 == len(reconciler.quiet)
    job = cgroup_root / "slot.s" / "job.a"
    wrapper = reconciler.run_pass().observed.records["a"].last
    assert wrapper is not None
    for pid in procs(job):
        if pid != wrapper.wrapper_pid:
            os.kill(pid, signal.SIGKILL)

    def ended() -> bool:
        clock.now += 0.01  # well within the relist: only the exit can end the quiet
        return reconciler.run_pass().plan.jobs["a"].phase is Phase.Failed

    wait_for(ended, timeout=30, interval=0.05)
    assert Phase.Running is reconciler.run_pass().plan.jobs["b"].phase
    assert 1 == len(reconciler.quiet)


def test_a_quiet_job_the_pass_acts_on_is_read_again(
    running: tuple[Reconciler, Clock], tmp_path: Path
) -> None:
    """A quiet job whose spec is deleted is signalled, and is no longer quiet after that pass though its reading had been reused: the next pass reads its stop record."""
    reconciler, clock = running
    clock.now += 0.5
    reconciler.run_pass()
    assert 2 == len(reconciler.quiet)
    (tmp_path / "specs" / "job-a.yaml").unlink()
    clock.now += 0.01
    acted = reconciler.run_pass()
    assert ["Job/a"] == sorted({a.obj for a in acted.plan.actions})
    assert 1 == len(reconciler.quiet)
    clock.now += 0.01
    assert reconciler.run_pass().observed.records["a"].stop is not None
