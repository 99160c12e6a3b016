"""Planner step: stop and remove what is observed but no longer desired.

A deleted Job is stopped at once (SIGTERM, grace, kill) and forgotten. A
deleted Slot drains: its jobs whose specs remain run for the slot's
`drainGracePeriodSeconds` (kept in its record, since the spec is gone), then
stop with `Drained`; the slot is removed once empty. Nothing here runs with
an incomplete spec set.
"""

from __future__ import annotations

from reconciler.model.actions import ForgetJob, ForgetSlot, RecordSlot, RemoveCgroup
from reconciler.model.api import SlotSpec
from reconciler.model.layout import job_cgroup, slot_cgroup
from reconciler.model.records import SlotRecord
from reconciler.plan.agents import plan_agents
from reconciler.plan.builder import Builder
from reconciler.plan.stops import plan_stop

_DEFAULTS = SlotSpec()
DEFAULT_RECORD = SlotRecord(
    float(_DEFAULTS.drain_grace_period_seconds), float(_DEFAULTS.termination_grace_period_seconds)
)
INCOMPLETE = "the spec set is incomplete (see errors); nothing is deleted"


def plan_removals(out: Builder) -> None:
    """Everything observed that the specs no longer ask for."""
    desired, observed = out.desired, out.observed
    gone_slots = sorted(set(observed.slots) - set(desired.slots))
    if not desired.complete:
        for name in sorted(set(observed.jobs) | set(observed.records)):
            job, where = desired.jobs.get(name), observed.jobs.get(name)
            if job is None or (where is not None and where.slot not in desired.slots):
                out.note(f"Job/{name}", "kept", INCOMPLETE)
        for slot in gone_slots:
            out.note(f"Slot/{slot}", "kept", INCOMPLETE)
        return
    removed = _plan_job_removals(out, {})
    for slot in gone_slots:
        obj, rel = f"Slot/{slot}", slot_cgroup(slot)
        record = observed.slot_records.get(slot) or DEFAULT_RECORD
        agents = plan_agents(out, slot, None, record.termination_grace_seconds, running=False)
        removed |= {f"{rel}/{agent}" for agent in agents}
        left = [c for c in observed.slots[slot].children if f"{rel}/{c}" not in removed]
        if left:
            out.note(obj, "waiting", f"removed once empty; still holds {', '.join(left)}")
        else:
            out.add(RemoveCgroup(obj, rel))
            out.add(ForgetSlot(obj, rel, slot=slot))
    for slot in sorted(set(observed.slot_records) - set(observed.slots) - set(desired.slots)):
        out.add(ForgetSlot(f"Slot/{slot}", slot_cgroup(slot), slot=slot))


def _drain_start(out: Builder, slot: str) -> float:
    """When a deleted slot began draining; records it on the first pass after the deletion."""
    record = out.observed.slot_records.get(slot) or DEFAULT_RECORD
    if record.draining_since is not None:
        return record.draining_since
    out.add(
        RecordSlot(
            f"Slot/{slot}",
            slot_cgroup(slot),
            slot,
            record.drain_grace_seconds,
            record.termination_grace_seconds,
            out.now,
        )
    )
    return out.now


def _plan_job_removals(out: Builder, draining: dict[str, float]) -> set[str]:
    """Stop, remove and forget jobs that are not wanted where they are; returns removed paths.

    `draining` memoises each deleted slot's drain start, recorded only when a job must drain.
    """
    desired, observed = out.desired, out.observed
    removed: set[str] = set()
    for name in sorted(set(observed.jobs) | set(observed.records)):
        job, where = desired.jobs.get(name), observed.jobs.get(name)
        if job is not None and (where is None or where.slot in desired.slots):
            continue  # wanted where it is: the job step handles it
        obj = f"Job/{name}"
        if where is None:
            out.add(ForgetJob(obj, "", job=name))
            continue
        slot, cgroup = where
        rel = job_cgroup(slot, name)
        if cgroup.populated:
            record = observed.slot_records.get(slot) or DEFAULT_RECORD
            grace = record.termination_grace_seconds
            if job is None:
                plan_stop(out, obj, rel, name, grace, "Deleted")
                continue
            if slot not in draining:
                draining[slot] = _drain_start(out, slot)
            drained_at = draining[slot] + record.drain_grace_seconds
            if out.now >= drained_at:
                plan_stop(out, obj, rel, name, grace, "Drained")
            else:
                out.note(
                    obj,
                    "waiting",
                    f"slot {slot} is draining; the job is stopped after the drain grace",
                )
                out.requeue_at(drained_at)
            continue
        out.add(RemoveCgroup(obj, rel))
        removed.add(rel)
        if job is None:
            out.add(ForgetJob(obj, "", job=name))
    return removed
