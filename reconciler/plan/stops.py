"""Planner step: why a running job stops now, and its stop: SIGTERM, then `cgroup.kill`.

A running job is stopped by wnr when its slot drains past the grace period
(`Drained`), it outlives `activeDeadlineSeconds` (`DeadlineExceeded`), a limit
wnr enforces in user space is passed (`OOMKilled`, `PidsLimitExceeded`,
`DiskLimitExceeded`) or it idles past its window (`IdleTimeout`). Stopping is
SIGTERM (SIGKILL for a zero grace), then `cgroup.kill` once the grace period
recorded with the signal has passed; both are deadlines checked on each pass.
"""

from __future__ import annotations

from reconciler.model.actions import KillCgroup, Signal
from reconciler.model.api import Job, Slot
from reconciler.model.quantity import format_bytes
from reconciler.model.records import JobRecords
from reconciler.plan.builder import Builder
from reconciler.plan.samples import active_at, over_limits

# After a SIGKILL the wrapper needs a moment to record the end before cgroup.kill takes all.
KILL_GRACE_SECONDS = 1.0


def stop_reason(
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
