"""Job status (DESIGN §2) from one pass: the planner's view of each job, its records and spec; pure.

Every job wnr knows gets a status: its spec exists, or its cgroup or records
are still observed. `now` is passed in; no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.model.api import Job, NodeSpec
from reconciler.model.desired import Desired
from reconciler.model.layout import job_cgroup
from reconciler.model.observed import Observed
from reconciler.model.records import AttemptRecord, JobRecords
from reconciler.plan.builder import Note, Plan
from reconciler.plan.jobphase import JobView, Phase, view_under_policy
from reconciler.status.conditions import (
    Condition,
    spec_conditions,
    stall_condition,
    state_conditions,
)


def timestamp(seconds: float | None) -> str | None:
    """RFC 3339 in UTC, to the second, as Kubernetes writes times."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class JobStatus:
    """A job's status (DESIGN §2)."""

    name: str
    slot: str
    phase: str
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    attempts: int = 0
    start_time: float | None = None
    finish_time: float | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    cgroup: str | None = None
    # When wnr first spawned it (its first attempt), for AGE when the spec holds no time.
    first_spawned: float | None = None
    conditions: tuple[Condition, ...] = ()
    # Whom it runs (or ran) as: its last attempt's user, else its slot's for the next one.
    user: str = ""
    uid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The camelCase `status` of `wnr get job -o json`; unset fields are left out."""
        data: dict[str, Any] = {
            "phase": self.phase,
            "slot": self.slot,
            "reason": self.reason,
            "message": self.message,
            "exitCode": self.exit_code,
            "attempts": self.attempts,
            "startTime": timestamp(self.start_time),
            "finishTime": timestamp(self.finish_time),
            "cpuSeconds": self.cpu_seconds,
            "peakMemoryBytes": self.peak_memory_bytes,
            "cgroup": self.cgroup,
            "conditions": [c.to_dict() for c in self.conditions],
            "runAs": {"user": self.user, "uid": self.uid} if self.user else None,
        }
        return {k: v for k, v in data.items() if v not in (None, "", [])}


def job_statuses(
    desired: Desired,
    observed: Observed,
    plan: Plan,
    now: float,
    memo: JobStatusMemo | None = None,
) -> dict[str, JobStatus]:
    """Every job wnr knows: wanted (its spec exists) or still observed (cgroup or records).
    With a `memo`, a job whose status derives from what it derived from last time keeps
    that status."""
    node = desired.node_spec
    names = set(desired.jobs) | set(observed.jobs) | set(observed.records)
    waiting = _waiting_notes(plan.notes)
    if memo is None:
        return {
            name: _job_status(name, desired, observed, plan, node, now, waiting)
            for name in sorted(names)
        }
    found: dict[str, JobStatus] = {}
    kept: dict[str, tuple[tuple[object, ...], JobStatus, tuple[object, ...]]] = {}
    # What every job's status reads alike. While it is the same (the Desired by identity), a
    # job whose placement, records, view, sample and waiting note are those of the last pass
    # keeps its status without its whole key being made: a pass among thousands of quiet jobs.
    common = (plan.run_as, observed.state_fault, observed.root_path)
    alike = memo.desired is desired and memo.common == common
    placed, held, samples = observed.jobs, observed.records, observed.usage
    for name in sorted(names):
        view = plan.jobs.get(name)
        note = waiting.get(f"Job/{name}", "")
        seen = (placed.get(name), held.get(name), view, samples.get(name), note)
        last = memo.last.get(name)
        if alike and last is not None and view is not None and last[2] == seen:
            kept[name] = last
            found[name] = last[1]
            continue
        key = _inputs(name, desired, observed, plan, view, waiting) if view is not None else None
        if key is not None and last is not None and _same(last[0], key):
            status = last[1]
        else:
            status = _job_status(name, desired, observed, plan, node, now, waiting)
        if key is not None:
            kept[name] = (key, status, seen)
        found[name] = status
    memo.last, memo.desired, memo.common = kept, desired, common
    return found


class JobStatusMemo:
    """Each job's status of the last pass, with what it derived from (`_inputs`), and what
    every job's status read alike then."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[tuple[object, ...], JobStatus, tuple[object, ...]]] = {}
        self.desired: Desired | None = None
        self.common: tuple[object, ...] = ()


def _inputs(  # noqa: PLR0917 - what one job's status reads
    name: str,
    desired: Desired,
    observed: Observed,
    plan: Plan,
    view: JobView,
    waiting: Mapping[str, str],
) -> tuple[object, ...]:
    """What `_job_status` reads of a job the planner viewed (the time only through the
    view)."""
    job = desired.jobs.get(name)
    where = observed.jobs.get(name)
    slot = where.slot if where is not None else (job.spec.slot if job is not None else "")
    usage = observed.usage.get(name) if view.phase is Phase.Running else None
    return (
        job,
        where,
        observed.records.get(name),
        view,
        # Of a usage sample the status reads the stall alone (stall_condition): a new sample
        # whose stall figures are those of the last one changes no status.
        usage.stall if usage is not None else None,
        plan.run_as.get(slot),
        waiting.get(f"Job/{name}", ""),
        desired.node_spec,
        desired.errors_of("Job", name),
        desired.sources.get(("Job", name)),
        ("Job", name) in desired.held,
        job is not None and job.spec.slot in desired.slots,
        observed.state_fault if view.phase is Phase.Pending else None,
        observed.root_path,
    )


def _same(last: tuple[object, ...], key: tuple[object, ...]) -> bool:
    # Tuple equality compares item by item, each by identity first, then `==`: in C, at a
    # fraction of a generator's cost (hundreds of jobs compared on every publishing pass).
    return last == key


def _job_status(  # noqa: PLR0917
    name: str,
    desired: Desired,
    observed: Observed,
    plan: Plan,
    node: NodeSpec,
    now: float,
    waiting: Mapping[str, str],
) -> JobStatus:
    job = desired.jobs.get(name)
    where = observed.jobs.get(name)
    records = observed.records.get(name, JobRecords())
    view = plan.jobs.get(name) or _own_view(job, node, records, observed, name, now)
    reason, message = view.reason, view.message
    if job is None:
        reason = "Deleted"
        message = "the spec was removed" + ("" if view.finished else "; the job is being stopped")
        if ("Job", name) in desired.held:
            message += "; it was written again: the new job starts once this one is gone"
    elif job.spec.slot not in desired.slots and view.phase is Phase.Pending:
        reason, message = "Unschedulable", f"slot {job.spec.slot} does not exist"
    elif not message:
        message = waiting.get(f"Job/{name}", "")
    slot = where.slot if where is not None else (job.spec.slot if job is not None else "")
    started = _last(records, lambda r: r.started_at is not None)
    measured = _last(records, lambda r: r.cpu_seconds is not None or r.exit_code is not None)
    last = records.last
    first = records.attempts[0] if records.attempts else None
    user, uid = (last.user, last.uid) if last is not None else ("", None)
    idle = (job.spec.idle if job is not None else None) or node.policies.idle
    chosen = plan.run_as.get(slot)
    if last is None and chosen is not None and chosen.credentials is not None:
        user, uid = chosen.credentials.name, chosen.credentials.uid
    return JobStatus(
        name=name,
        slot=slot,
        phase=str(view.phase),
        reason=reason,
        message=message,
        exit_code=view.exit_code,
        attempts=view.attempts,
        start_time=started.started_at if started is not None else None,
        finish_time=last.finished_at if view.finished and last is not None else None,
        cpu_seconds=measured.cpu_seconds if measured is not None else None,
        peak_memory_bytes=measured.peak_memory_bytes if measured is not None else None,
        cgroup=f"{observed.root_path}/{job_cgroup(where.slot, name)}"
        if where is not None
        else None,
        first_spawned=first.spawned_at if first is not None else None,
        conditions=(
            *spec_conditions(desired, "Job", name),
            *(state_conditions(observed) if view.phase is Phase.Pending else ()),
            *(
                stall_condition(observed.usage.get(name), idle)
                if view.phase is Phase.Running
                else ()
            ),
        ),
        user=user,
        uid=uid,
    )


def _own_view(  # noqa: PLR0917
    job: Job | None,
    node: NodeSpec,
    records: JobRecords,
    observed: Observed,
    name: str,
    now: float,
) -> JobView:
    """The view of a job the planner did not visit (its spec or its slot's spec is gone)."""
    where = observed.jobs.get(name)
    cgroup = where.cgroup if where is not None else None
    return view_under_policy(node, job, records, cgroup, now)


def _last(records: JobRecords, wanted: Any) -> AttemptRecord | None:
    return next((r for r in reversed(records.attempts) if wanted(r)), None)


def _waiting_notes(notes: Sequence[Note]) -> dict[str, str]:
    """The first `waiting` or `kept` note of each object: why a job does not start (one pass
    over the notes, not one per job)."""
    found: dict[str, str] = {}
    for note in notes:
        if note.kind in ("waiting", "kept"):
            found.setdefault(note.obj, note.message)
    return found
