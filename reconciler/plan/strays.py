"""Planner step: processes out of place (observed by reconciler.observe.membership): report, and end
a job's escapees with the job.

An escapee (one of a job's processes that left the job's cgroup: into its
slot, wnr's root, or a cgroup outside wnr's tree) is reported while its job
runs and killed when the job ends, is stopped or is deleted, so it cannot
outlive the job unnoticed. An intruder (a process moved into a job's cgroup
from outside the job) and a stray no job claims are reported only: nothing
signals them on their own; an intruder goes with its job's cgroup when the
job is stopped, as everything in that cgroup does. Runs after every other
step, since whether a job is stopping is decided by them.
"""

from __future__ import annotations

from reconciler.model.actions import KillCgroup, KillStrays, Signal
from reconciler.model.layout import job_cgroup
from reconciler.model.observed import Stray
from reconciler.plan.builder import Builder


def plan_strays(out: Builder) -> None:
    """Notes for every process out of place; a kill for the escapees of jobs that end."""
    escapees: dict[str, list[Stray]] = {}
    for stray in out.observed.strays:
        if stray.job is None:
            out.note(_holder(stray), "stray", _unknown(stray))
            continue
        escapees.setdefault(stray.job, []).append(stray)
        out.note(f"Job/{stray.job}", "escaped", escaped_message(stray))
    for intruder in out.observed.intruders:
        out.note(f"Job/{intruder.job}", "intruder", intruder_message(intruder))
    stopping = {a.obj for a in out.actions if isinstance(a, Signal | KillCgroup)}
    for job in sorted(escapees):
        reason = _ending(out, job, stopping)
        if reason is not None:
            obj = f"Job/{job}"
            where = out.observed.jobs.get(job)
            rel = job_cgroup(where.slot, job) if where is not None else ""
            pids = tuple((s.pid, s.start) for s in escapees[job])
            out.add(KillStrays(obj, rel, job=job, pids=pids, reason=reason))


def escaped_message(stray: Stray) -> str:
    """The note (and the Warning event) of an escapee: its PID, name and where it went."""
    return (
        f"process {stray.pid} ({stray.comm}) left the job's cgroup for {_place(stray)}; "
        "it is killed when the job ends"
    )


def intruder_message(stray: Stray) -> str:
    """The note (and the Warning event) of a process moved into a job's cgroup."""
    return (
        f"process {stray.pid} ({stray.comm}) was moved into {stray.cgroup} from outside the "
        "job; left alone (it is stopped only with the job)"
    )


def _unknown(stray: Stray) -> str:
    return (
        f"process {stray.pid} ({stray.comm}) sits in {stray.cgroup}, which holds no process "
        "of wnr's, and no job claims it; left alone"
    )


def _place(stray: Stray) -> str:
    if stray.rel is None:
        return f"{stray.cgroup} (outside wnr's tree)"
    return f"{stray.cgroup} ({'the root' if stray.rel == '' else stray.rel})"


def _holder(stray: Stray) -> str:
    """The object a stray is reported on: the slot it sits in, else the root."""
    if stray.rel is not None and stray.rel.startswith("slot.") and "/" not in stray.rel:
        return f"Slot/{stray.rel.removeprefix('slot.')}"
    return "Root"


def _ending(out: Builder, job: str, stopping: set[str]) -> str | None:
    """Why the job's escapees must go now, or None while the job runs as it should."""
    if job in out.quarantined:
        return None  # left alone, like the job itself
    spec = out.desired.jobs.get(job)
    if spec is None:
        # An incomplete spec set deletes nothing: its jobs may only seem gone.
        return "the job was deleted" if out.desired.complete else None
    view = out.jobs.get(job)
    if view is not None and view.finished:
        return "the job has finished"
    records = out.observed.records.get(job)
    if f"Job/{job}" in stopping or (records is not None and records.stop is not None):
        return "the job is stopped"
    return None
