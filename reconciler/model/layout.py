"""The names wnr owns: cgroups below its root and paths in its state dir, in one place.

Pure (string and path arithmetic, no I/O), below the whole pipeline: the
planner names what it creates with these, the state dir (reconciler.host.statedir)
reads and writes at these paths, and usage sampling measures the same working
directory the planner gave the job. Job and slot names are DNS labels
(reconciler.model.api), so none of these can leave the root or the state dir.
"""

from __future__ import annotations

from pathlib import PurePath


def slot_cgroup(slot: str) -> str:
    """A slot's cgroup, relative to wnr's root."""
    return f"slot.{slot}"


def job_cgroup(slot: str, job: str) -> str:
    """A job's cgroup, relative to wnr's root."""
    return f"slot.{slot}/job.{job}"


def agent_cgroup(slot: str, index: int) -> str:
    """An agent replica's cgroup, relative to wnr's root."""
    return f"slot.{slot}/agent.{index}"


def job_dir(state_root: str | PurePath, job: str) -> PurePath:
    """A job's directory in the state dir: its attempts, logs and stop record."""
    return PurePath(state_root) / "jobs" / job


def work_dir(state_root: str | PurePath, job: str) -> PurePath:
    """A job's default working directory (when its spec sets no `workingDir`)."""
    return job_dir(state_root, job) / "work"
