"""Planner step: the root and the slots, their controllers, limits and records."""

from __future__ import annotations

from reconciler.model.actions import CreateCgroup, EnableControllers, RecordSlot, WriteLimit
from reconciler.model.api import Slot, SlotState
from reconciler.model.layout import slot_cgroup
from reconciler.model.limits import CONTROLLER_OF, KERNEL_DEFAULTS, Limits, is_set, ordered, render
from reconciler.model.observed import CgroupState
from reconciler.plan.builder import Builder


def plan_root(out: Builder) -> frozenset[str]:
    """Create the root and enable the wanted controllers the kernel offers; return them."""
    desired, observed = out.desired, out.observed
    wanted = {str(c) for c in out.node.controllers}
    offered = wanted & observed.available
    for missing in sorted(wanted - observed.available):
        out.note(
            "Root", "not-enforced-by-kernel", f"controller {missing} is not available in the root"
        )
    if observed.root is None:
        if not desired.slots:
            return frozenset(offered)
        out.add(CreateCgroup("Root", ""))
    current = observed.root.subtree_control if observed.root is not None else frozenset()
    if offered - current:
        out.add(EnableControllers("Root", "", ordered(offered - current)))
    return frozenset(offered)


def plan_limits(
    out: Builder,
    obj: str,
    rel: str,
    limits: Limits,
    cgroup: CgroupState | None,
    *,
    sampled: frozenset[str] = frozenset(),
) -> None:
    """Write each limit file that differs; report limits the kernel cannot enforce, and which
    of them wnr enforces by sampling instead."""
    for file, value in render(limits, out.observed.page_size):
        controller = CONTROLLER_OF[file]
        if controller not in out.enabled or (cgroup is not None and file not in cgroup.limits):
            if is_set(file, value) and file not in limits.implicit:
                every = out.node.policies.user_space.interval_seconds
                fallback = (
                    f"; wnr enforces it by sampling every {every:g}s" if file in sampled else ""
                )
                message = f"{file}={value} (no {controller} controller{fallback})"
                out.note(obj, "not-enforced-by-kernel", message, file)
            continue
        old = cgroup.limits[file] if cgroup is not None else KERNEL_DEFAULTS[file]
        if old != value:
            out.add(WriteLimit(obj, rel, file, old if cgroup else None, value))


def plan_slot(out: Builder, slot: Slot) -> float | None:
    """Create the slot cgroup with its limits and record; returns when its drain began."""
    name = slot.metadata.name
    obj, rel = f"Slot/{name}", slot_cgroup(name)
    cgroup = out.observed.slots.get(name)
    if cgroup is None:
        out.add(CreateCgroup(obj, rel))
    plan_limits(out, obj, rel, Limits.of_slot(slot), cgroup)
    current = cgroup.subtree_control if cgroup is not None else frozenset()
    if out.enabled - current:
        out.add(EnableControllers(obj, rel, ordered(out.enabled - current)))
    absent = [g for g in slot.spec.gpus if g not in out.observed.facts.gpus]
    if absent:
        message = f"GPUs {', '.join(absent)} are not detected on this node; jobs get them anyway"
        out.note(obj, "warning", message)
    return _plan_record(out, slot)


def _plan_record(out: Builder, slot: Slot) -> float | None:
    """Keep the slot's record in step with its spec; a Draining slot records when it began."""
    name = slot.metadata.name
    record = out.observed.slot_records.get(name)
    since = record.draining_since if record is not None else None
    if slot.spec.state != SlotState.Draining:
        since = None
    elif since is None:
        since = out.now
    drain = float(slot.spec.drain_grace_period_seconds)
    term = float(slot.spec.termination_grace_period_seconds)
    if (
        record is None
        or (record.drain_grace_seconds, record.termination_grace_seconds) != (drain, term)
        or record.draining_since != since
    ):
        out.add(RecordSlot(f"Slot/{name}", slot_cgroup(name), name, drain, term, since))
    return since
