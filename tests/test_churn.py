"""Short jobs in churn (bench.churn): no end taken for a death, no memory kept for removed cgroups.

Observe reads the records before the cgroups, so a job that records its end
and exits in between looks, to the pass, like one that died unrecorded; and
the cgroup layer's path cache must forget the cgroups it removed. Real
cgroup2 mount (tier 2), no wrapper: the record a short job's wrapper would
write is put in place between the two reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from reconciler.apply.applier import Applier
from reconciler.daemon.loop import pin_malloc_thresholds
from reconciler.host.atomicfile import write_json
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.statedir import JobRecords, StateDir
from reconciler.model.actions import ForgetJob, RemoveCgroup
from reconciler.observe.snapshot import observe
from reconciler.plan.jobphase import Phase, job_view

ENDED = {"phase": "exited", "spawnedAt": 100.0, "exitCode": 0, "finishedAt": 101.0}


class EndsMeanwhile(StateDir):
    """A state dir whose job ends (its record replaced) just after read_all read it."""

    def __init__(self, root: Path, job: str, phase: str) -> None:
        super().__init__(root)
        self.job = job
        self.job_dir(job).mkdir(parents=True)
        write_json(str(self.attempt_path(job, 1)), {"phase": phase, "spawnedAt": 100.0})
        # A live PID that is no wrapper: what a wrapper that has exited looks like to is_wrapper.
        write_json(str(self.attempt_path(job, 1).with_suffix(".pid")), {"wrapperPid": os.getpid()})

    def read_all(self, known: Mapping[str, JobRecords] | None = None) -> dict[str, JobRecords]:
        records = super().read_all(known)
        write_json(str(self.attempt_path(self.job, 1)), ENDED)
        return records


def _tree(root: Path) -> CgroupFS:
    """The root, a slot and an empty job cgroup (`populated 0`: its wrapper has left)."""
    fs = CgroupFS(root)
    for rel in ("", "slot.s", "slot.s/job.j"):
        fs.mkdir(rel)
    return fs


def test_a_job_that_ended_between_the_reads_succeeds(cgroup_root: Path, state_dir: Path) -> None:
    """Records read `running`, then its cgroup empty: the end it recorded meanwhile is seen."""
    observed = observe(_tree(cgroup_root), EndsMeanwhile(state_dir, "j", "running"))
    last = observed.records["j"].last
    assert last is not None
    assert "exited" == last.phase


def test_a_start_that_ran_to_its_end_is_no_failed_start(cgroup_root: Path, state_dir: Path) -> None:
    """Records read `starting`, then its wrapper gone: not a failed start (retrying would run
    the payload twice), but the end the wrapper recorded."""
    observed = observe(_tree(cgroup_root), EndsMeanwhile(state_dir, "j", "starting"))
    records = observed.records["j"]
    assert records.last is not None
    assert "exited" == records.last.phase
    assert not observed.jobs["j"].cgroup.populated
    view = job_view(records, observed.jobs["j"].cgroup, max_attempts=3, now=102.0)
    assert (Phase.Succeeded, "Completed") == (view.phase, view.reason)


def test_a_removed_cgroup_leaves_no_cached_path(cgroup_root: Path) -> None:
    """The path cache holds only cgroups that still exist (one entry per job ever seen would
    grow the daemon by ~200 bytes a job)."""
    fs = _tree(cgroup_root)
    fs.rmdir_tree("slot.s/job.j")
    fs.rmdir("slot.s")
    assert {""} == set(fs._dirs)


def test_removing_and_forgetting_a_job_through_the_applier_leaves_no_cached_path(
    cgroup_root: Path, state_dir: Path
) -> None:
    """The log lines of a job cgroup's removal and of the job's forgetting name its path without caching it again (the daemon grew by ~240 bytes a job through churn)."""
    fs = _tree(cgroup_root)
    applier = Applier(fs, StateDir(state_dir), time.time)

    failures = applier.apply(
        [RemoveCgroup("Job/j", "slot.s/job.j"), ForgetJob("Job/j", "slot.s/job.j", job="j")]
    )

    assert ([], False) == (failures, (cgroup_root / "slot.s" / "job.j").exists())
    assert {"", "slot.s"} == set(fs._dirs)


def test_malloc_thresholds_are_pinned_without_error() -> None:
    """The daemon's mallopt call works on this libc (and is a no-op where there is none)."""
    pin_malloc_thresholds()
