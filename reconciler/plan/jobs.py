"""Planner step: one slot's jobs: admit and start, keep limits live, stop for a reason, clean up.

A running job is stopped by wnr when its slot drains past the grace period
(`Drained`) or it outlives `activeDeadlineSeconds` (`DeadlineExceeded`).
Stopping is SIGTERM, then `cgroup.kill` once the grace period recorded with
the SIGTERM has passed; both are deadlines checked on each pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reconciler.model.actions import (
    CreateCgroup,
    KillCgroup,
    RecordEnd,
    RemoveCgroup,
    Signal,
    StartJob,
)
from reconciler.model.api import Job, Slot, SlotState
from reconciler.model.errors import attributed
from reconciler.model.layout import job_cgroup, work_dir
from reconciler.model.limits import SAMPLED_FILES, Limits
from reconciler.model.observed import CgroupState
from reconciler.model.quantity import format_bytes
from reconciler.model.records import JobRecords
from reconciler.plan.builder import Builder
from reconciler.plan.jobphase import JobView, Phase, ended_with_its_wrapper, view_under_policy
from reconciler.plan.launch import launch, placement_refusal
from reconciler.plan.memo import JobInputs, JobPlan, PlanMemo
from reconciler.plan.samples import active_at, over_limits
from reconciler.plan.schedule import SlotQueue
from reconciler.plan.tree import plan_limits

# After a SIGKILL the wrapper needs a moment to record the end before cgroup.kill takes all.
KILL_GRACE_SECONDS = 1.0


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
    the plan `memo` kept of it last pass."""
    draining = drain_start is not None and out.now >= drain_start
    accepting = slot.spec.state == SlotState.Active and not draining
    here = SlotPass(slot, accepting, SlotQueue.of(slot), drain_start)
    jobs: list[tuple[Job, JobInputs, JobPlan | None]] = []
    views: dict[str, JobView] = {}
    for job in spec_order(out, slot.metadata.name):
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
        # The desired state's (made once per spec set) is the one of this very slot.
        limits = out.desired.job_limits(name)
        return cls(
            name,
            f"Job/{name}",
            job_cgroup(slot.metadata.name, name),
            where.slot if where is not None else None,
            where.cgroup if where is not None else None,
            limits if limits is not None else Limits.of_job(job, slot),
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
        stop = _stop_reason(out, slot, job, here.drain_start)
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


def _stop_reason(
    out: Builder, slot: Slot, job: Job, drain_start: float | None
) -> tuple[str, str, float] | None:
    """Why a wanted, running job must stop now and with what grace; else asks for a pass at the
    next deadline. Limits enforced in user space kill at once, as the kernel's would."""
    grace = float(slot.spec.termination_grace_period_seconds)
    if drain_start is not None:
        drained_at = drain_start + slot.spec.drain_grace_period_seconds
        if out.now >= drained_at:
            return "Drained", "", grace
        out.requeue_at(drained_at)
    seconds = job.spec.active_deadline_seconds
    last = out.observed.records.get(job.metadata.name, JobRecords()).last
    if seconds is not None and last is not None and last.started_at is not None:
        expires = last.started_at + seconds
        if out.now >= expires:
            return "DeadlineExceeded", "", grace
        out.requeue_at(expires)
    usage = out.observed.usage.get(job.metadata.name)
    if usage is None:
        return None
    r = job.spec.resources
    memory, tasks, disk = over_limits(usage, r, out.node.policies.user_space.memory_factor)
    if memory is not None:
        used, limit = format_bytes(memory), format_bytes(r.memory or 0)
        return "OOMKilled", f"working set {used} over memory {limit} (enforced by wnr)", 0.0
    if tasks is not None:
        return "PidsLimitExceeded", f"{tasks} tasks over pids {r.pids} (enforced by wnr)", 0.0
    if disk is not None:
        used, limit = format_bytes(disk), format_bytes(r.disk or 0)
        return "DiskLimitExceeded", f"working directory holds {used}, over disk {limit}", grace
    idle = job.spec.idle or out.node.policies.idle
    active = active_at(usage)
    if active is not None and out.now < active + idle.window_seconds:
        # The sampler wakes the loop with the samples that decide it; no pass is due here.
        out.turns_at(active + idle.window_seconds)
    elif active is not None:
        share = f"{idle.min_cpu_fraction:.0%}"
        message = f"below {share} of its CPUs for {idle.window_seconds}s"
        if usage.stall is not None:
            message += f", and not stalled (PSI some: {usage.stall})"
        return "IdleTimeout", message, grace
    return None


def plan_stop(  # noqa: PLR0917 - one stop's place, timing and cause
    out: Builder, obj: str, rel: str, name: str, grace: float, reason: str, message: str = ""
) -> None:
    """SIGTERM (SIGKILL for a zero grace) to the payload, sparing the wrapper so it records the
    end; cgroup.kill once the grace recorded with the signal has passed."""
    records = out.observed.records.get(name, JobRecords())
    if records.stop is None:
        spare = records.last.wrapper_pid if records.last is not None else None
        signal = "SIGKILL" if grace <= 0 else "SIGTERM"
        wait = max(grace, KILL_GRACE_SECONDS)
        out.add(
            Signal(
                obj,
                rel,
                job=name,
                signal=signal,
                grace_seconds=wait,
                reason=reason,
                spare=spare,
                message=message,
            )
        )
        out.requeue_at(out.now + wait)
        return
    deadline = records.stop.requested_at + records.stop.grace_seconds
    if out.now >= deadline:
        out.add(KillCgroup(obj, rel, f"{records.stop.text}; grace period over"))
    else:
        out.requeue_at(deadline)


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
