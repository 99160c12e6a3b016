"""The planner's entry point: visit the root, each slot and its jobs, then the removals."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.accounts import RunAsReason
from reconciler.model.api import Job, Node, Slot, SlotState
from reconciler.model.desired import Desired
from reconciler.model.observed import Observed
from reconciler.plan.agents import plan_agents
from reconciler.plan.builder import Builder, Plan
from reconciler.plan.jobs import plan_slot_jobs
from reconciler.plan.memo import PlanMemo
from reconciler.plan.removals import plan_removals
from reconciler.plan.runas import run_as
from reconciler.plan.strays import plan_strays
from reconciler.plan.tree import plan_root, plan_slot
from reconciler.plan.unenforced import unenforced_fields


def plan(
    desired: Desired,
    observed: Observed,
    now: float,
    quarantined: Mapping[str, str] | None = None,
    memo: PlanMemo | None = None,
) -> Plan:
    """Compute the actions that make the observed tree match the desired state; the jobs in
    `quarantined` (name -> error) are reported Failed and left alone. With a `memo`, running
    jobs whose inputs did not change since the last pass it saw keep that pass's plan."""
    out = Builder(desired, observed, now, quarantined)
    if memo is not None:
        memo.begin()
    for obj, fields in unenforced_fields(_objects(desired)):
        for path in fields:
            out.note(f"{obj.kind}/{obj.metadata.name}", "not-enforced-yet", path)
    out.enabled = plan_root(out)
    for name in sorted(desired.slots):
        slot = desired.slots[name]
        first_note = len(out.notes)
        out.run_as[name] = chosen = run_as(
            out.node, slot, observed.facts.daemon_uid, observed.accounts
        )
        if chosen.reason is RunAsReason.Root:
            out.note(f"Slot/{name}", "runs-as-root", chosen.message)
        drain_start = plan_slot(out, slot)
        if slot.spec.deadline is not None:
            # A slot deadline drains it in time: the drain begins one grace period before.
            by_deadline = slot.spec.deadline.timestamp() - slot.spec.drain_grace_period_seconds
            drain_start = by_deadline if drain_start is None else min(drain_start, by_deadline)
            if now < drain_start:
                out.requeue_at(drain_start)
        out.drain_starts[name] = drain_start
        plan_slot_jobs(out, slot, drain_start, memo)
        draining = drain_start is not None and now >= drain_start
        running = slot.spec.state != SlotState.Draining and not draining
        grace = float(slot.spec.termination_grace_period_seconds)
        plan_agents(out, name, slot.spec.agents, grace, running)
        out.slot_notes[name] = tuple(out.notes[first_note:])
    plan_removals(out)
    plan_strays(out)  # last: it kills the escapees of the jobs the steps above stop
    for foreign in observed.foreign:
        out.note(foreign, "foreign", "not a cgroup wnr owns; left alone")
    return out.build()


def _objects(desired: Desired) -> list[Node | Slot | Job]:
    node: list[Node | Slot | Job] = [desired.node] if desired.node is not None else []
    slots = [desired.slots[n] for n in sorted(desired.slots)]
    jobs = [desired.jobs[n] for n in sorted(desired.jobs)]
    return [*node, *slots, *jobs]
