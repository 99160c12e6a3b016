"""Planner step: one slot's jobs: admit and start, keep limits live, stop for a reason
(reconciler.plan.stops), clean up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from reconciler.model.actions import (
    CreateCgroup,
    KillCgroup,
    RecordEnd,
    RemoveCgroup,
    StartJob,
)
from reconciler.model.api import Job, Slot, SlotState
from reconciler.model.errors import attributed
from reconciler.model.layout import job_cgroup, work_dir
from reconciler.model.limits import SAMPLED_FILES, Limits
from reconciler.model.observed import CgroupState
from reconciler.model.records import JobRecords
from reconciler.plan.builder import Builder
from reconciler.plan.jobphase import JobView, Phase, ended_with_its_wrapper, view_under_policy
from reconciler.plan.launch import launch, placement_refusal
from reconciler.plan.memo import JobInputs, JobPlan, PlanMemo, SlotPlan
from reconciler.plan.schedule import SlotQueue
from reconciler.plan.stops import plan_stop, stop_reason
from reconciler.plan.tree import plan_limits


def spec_order(out: Builder, slot: str) -> list[Job]:
    """The slot's jobs in spec order (Desired.slot_jobs, which status uses too)."""
    return out.desired.slot_jobs(slot)


@dataclass
class SlotPass:
    """One slot while its jobs are planned: whether it takes new jobs, its free room, its drain."""

    slot: Slot
    accepting: bool
    queue: SlotQueue
    drain_start: float | None


def plan_slot_jobs(
    out: Builder, slot: Slot, drain_start: float | None, memo: PlanMemo | None = None
) -> None:
    """Plan every job that names this slot; a running job whose inputs are unchanged gets
    the plan `memo` kept of it last pass, and a slot whose every job's inputs are unchanged
    gets all of them at once (reconciler.plan.memo.SlotPlan)."""
    draining = drain_start is not None and out.now >= drain_start
    accepting = slot.spec.state == SlotState.Active and not draining
    here = SlotPass(slot, accepting, SlotQueue.of(slot), drain_start)
    ordered = tuple(spec_order(out, slot.metadata.name))
    key: tuple[object, ...] = ()
    if memo is not None and not out.quarantined:
        seen = out.observed.jobs, out.observed.records, out.observed.usage
        key = SlotPlan.key_of(slot, ordered, seen, drain_start, out.node, out.enabled)
        whole = memo.recall_slot(slot.metadata.name, key, out.now)
        if whole is not None:
            out.jobs.update({name: kept.view for name, kept in whole.plans.items()})
            out.notes.extend(whole.notes)
            out.wake.extend(whole.wake)
            out.turns.extend(whole.turns)
            return
    marks = len(out.actions), len(out.notes), len(out.wake), len(out.turns)
    _plan_each_job(out, here, ordered, memo)
    if key and memo is not None and len(out.actions) == marks[0]:
        _keep_slot(out, memo, slot.metadata.name, (ordered, key, marks))


def _keep_slot(
    out: Builder,
    memo: PlanMemo,
    slot: str,
    planned: tuple[tuple[Job, ...], tuple[object, ...], tuple[int, int, int, int]],
) -> None:
    """Keep the slot's plan whole when every job's plan was kept (recalled or new);
    `planned`: its jobs, their inputs' key and where its planning began in `out`."""
    jobs, key, marks = planned
    kept: dict[str, JobPlan] = {}
    for job in jobs:
        plan = memo.kept(job.metadata.name)
        if plan is None:
            return
        kept[job.metadata.name] = plan
    until = min((plan.until for plan in kept.values()), default=math.inf)
    notes, wake, turns = out.notes[marks[1] :], out.wake[marks[2] :], out.turns[marks[3] :]
    memo.keep_slot(slot, SlotPlan(key, kept, tuple(notes), tuple(wake), tuple(turns), until))


def _plan_each_job(
    out: Builder, here: SlotPass, ordered: tuple[Job, ...], memo: PlanMemo | None
) -> None:
    """Plan the slot's jobs one by one, each given its memo's plan where its inputs hold."""
    jobs: list[tuple[Job, JobInputs, JobPlan | None]] = []
    views: dict[str, JobView] = {}
    for job in ordered:
        name = job.metadata.name
        if name in out.quarantined:
            # A job whose planning kept raising: reported, and left as it is.
            message = f"wnr cannot reconcile this job: {out.quarantined[name]}"
            out.jobs[name] = JobView(Phase.Failed, "ReconcileError", message)
            continue
        inputs = _inputs(out, here, job)
        kept = memo.recall(name, inputs, out.now) if memo is not None else None
        if kept is not None:
            views[name] = out.jobs[name] = kept.view
        else:
            with attributed(f"Job/{name}"):
                views[name] = _view(out, job)
        jobs.append((job, inputs, kept))
        if views[name].phase in (Phase.Starting, Phase.Running):
            last = inputs.records.last if inputs.records is not None else None
            here.queue.take(job, last.gpus if last is not None else ())
    for job, inputs, kept in jobs:
        if kept is not None:
            out.notes.extend(kept.notes)
            out.wake.extend(kept.wake)
            out.turns.extend(kept.turns)
        else:
            _plan_and_keep(out, here, job, views[job.metadata.name], inputs, memo)


def _plan_and_keep(  # noqa: PLR0917 - one job's planning and what it keeps of it
    out: Builder, here: SlotPass, job: Job, view: JobView, inputs: JobInputs, memo: PlanMemo | None
) -> None:
    marks = len(out.actions), len(out.notes), len(out.wake), len(out.turns)
    with attributed(f"Job/{job.metadata.name}"):
        _plan_job(out, here, job, view)
    # Kept: only a running job's quiet plan. One that acts is about to change its inputs (and
    # asks for a pass relative to now); one still in another slot depends on which slots exist.
    moved = inputs.observed_slot not in (None, here.slot.metadata.name)
    quiet = len(out.actions) == marks[0]
    if memo is not None and view.phase is Phase.Running and quiet and not moved:
        planned = JobPlan(
            inputs,
            view,
            tuple(out.notes[marks[1] :]),
            tuple(out.wake[marks[2] :]),
            tuple(out.turns[marks[3] :]),
        )
        memo.keep(job.metadata.name, planned)


def _inputs(out: Builder, here: SlotPass, job: Job) -> JobInputs:
    name = job.metadata.name
    where = out.observed.jobs.get(name)
    return JobInputs(
        job,
        here.slot,
        out.observed.records.get(name),
        out.observed.usage.get(name),
        where.cgroup if where is not None else None,
        where.slot if where is not None else None,
        here.drain_start,
        out.node,
        out.enabled,
    )


def _view(out: Builder, job: Job) -> JobView:
    name = job.metadata.name
    where = out.observed.jobs.get(name)
    cgroup = where.cgroup if where is not None else None
    records = out.observed.records.get(name, JobRecords())
    view = view_under_policy(out.node, job, records, cgroup, out.now)
    out.jobs[name] = view
    return view


@dataclass(frozen=True)
class JobPlace:
    """Where one job is and should be: its names, its cgroup if any, and its limits."""

    name: str
    obj: str
    rel: str
    observed_slot: str | None
    cgroup: CgroupState | None
    limits: Limits

    @classmethod
    def of(cls, out: Builder, slot: Slot, job: Job) -> JobPlace:
        """Look the job up in the observed tree."""
        name = job.metadata.name
        where = out.observed.jobs.get(name)
        # Made once per spec set; the job and this very slot are the desired state's, so it
        # has their limits.
        limits = out.desired.job_limits(name)
        assert limits is not None, f"Job/{name} is planned in slot {slot.metadata.name}"
        return cls(
            name,
            f"Job/{name}",
            job_cgroup(slot.metadata.name, name),
            where.slot if where is not None else None,
            where.cgroup if where is not None else None,
            limits,
        )


def _plan_job(out: Builder, here: SlotPass, job: Job, view: JobView) -> None:
    slot = here.slot
    place = JobPlace.of(out, slot, job)
    name, obj, rel, cgroup = place.name, place.obj, place.rel, place.cgroup
    moved_from = place.observed_slot
    if moved_from is not None and moved_from != slot.metadata.name:
        if moved_from not in out.desired.slots:
            return  # its old slot is being removed: the removal step stops and removes it
        if view.finished and cgroup is not None:
            old = job_cgroup(moved_from, name)
            plan_empty_and_remove(out, obj, old, cgroup, "the job has finished")
        else:
            out.note(obj, "kept", f"runs in slot {moved_from}; a running job does not move slots")
        return
    if view.finished:
        if cgroup is not None:
            _record_end_of_wrapper(out, name, rel, cgroup)
            plan_empty_and_remove(out, obj, rel, cgroup, "the job has finished")
        return
    if view.phase is Phase.Pending:
        _plan_pending(out, here, job, view, place)
        return
    if view.deadline is not None:
        out.requeue_at(view.deadline)
    if cgroup is not None:
        # Live: a spec change reaches running jobs.
        plan_limits(out, obj, rel, place.limits, cgroup, sampled=SAMPLED_FILES)
        stop = stop_reason(out, slot, job, here.drain_start)
        if stop is not None and cgroup.populated:
            reason, message, grace = stop
            plan_stop(out, obj, rel, name, grace, reason, message)


def _plan_pending(out: Builder, here: SlotPass, job: Job, view: JobView, place: JobPlace) -> None:
    slot = here.slot
    name, obj, rel, cgroup, limits = place.name, place.obj, place.rel, place.cgroup, place.limits
    if not here.accepting:
        out.note(
            obj, "waiting", f"slot {slot.metadata.name} is {slot.spec.state}: no new jobs start"
        )
        return
    chosen = out.run_as[slot.metadata.name]
    if chosen.refusal:
        out.jobs[name] = replace(view, reason="RunAsRefused", message=chosen.refusal)
        out.note(obj, "waiting", f"RunAsRefused: {chosen.refusal}")
        return
    facts = out.observed.facts
    refusal = (
        placement_refusal(out.node, facts, job)
        or _deadline_refusal(slot, job, out.now)
        or here.queue.admit(job)
    )
    if refusal is not None:
        out.jobs[name] = replace(view, reason="Unschedulable", message=refusal)
        out.note(obj, "waiting", f"Unschedulable: {refusal}")
        return
    if view.deadline is not None and out.now < view.deadline:
        out.requeue_at(view.deadline)  # backoff after a failed start
        return
    if out.observed.state_fault is not None:
        # An attempt that cannot be recorded could be started twice: wait for the state dir.
        out.note(obj, "waiting", state_wait(out))
        return
    if cgroup is None:
        out.add(CreateCgroup(obj, rel))
    plan_limits(out, obj, rel, limits, cgroup, sampled=SAMPLED_FILES)
    workdir = job.spec.working_dir or str(work_dir(out.observed.state_root, name))
    gpus = here.queue.granted
    credentials = out.run_as[slot.metadata.name].credentials
    how = launch(out.node, facts, slot, job, workdir=workdir, gpus=gpus, account=credentials)
    out.add(
        StartJob(
            obj,
            rel,
            job=name,
            slot=slot.metadata.name,
            attempt=view.attempts + 1,
            argv=how.argv,
            env=how.env,
            working_dir=workdir,
            image=how.image,
            gpus=gpus,
            log_max_size=out.node.policies.logs.max_size,
            log_max_files=out.node.policies.logs.max_files,
            error=how.error,
            credentials=credentials,
        )
    )


def state_wait(out: Builder) -> str:
    """Why nothing starts while the state dir cannot record."""
    return f"no new starts while the state dir cannot record: {out.observed.state_fault}"


def _deadline_refusal(slot: Slot, job: Job, now: float) -> str | None:
    """A job whose activeDeadlineSeconds would outlive the slot's deadline is not started."""
    deadline, seconds = slot.spec.deadline, job.spec.active_deadline_seconds
    if deadline is None or seconds is None or now + seconds <= deadline.timestamp():
        return None
    return f"activeDeadlineSeconds {seconds} would pass the slot deadline {deadline.isoformat()}"


def _record_end_of_wrapper(out: Builder, name: str, rel: str, cgroup: CgroupState) -> None:
    """Record the end the wrapper could not (an OOM group kill took it): before the cgroup,
    which shows the OOM, is removed."""
    last = out.observed.records.get(name, JobRecords()).last
    ended = ended_with_its_wrapper(last, cgroup, out.now) if last is not None else None
    if ended is not None:
        record = ended.to_json()
        out.add(RecordEnd(f"Job/{name}", rel, job=name, attempt=ended.attempt, record=record))


def plan_empty_and_remove(
    out: Builder, obj: str, rel: str, cgroup: CgroupState, reason: str
) -> None:
    """Kill what a finished job left behind, or remove its empty cgroup."""
    if cgroup.populated:
        out.add(KillCgroup(obj, rel, f"{reason}; leftover processes"))
    else:
        out.add(RemoveCgroup(obj, rel))
