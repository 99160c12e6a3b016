"""Slot status (DESIGN §2) from one pass: phase, resources and conditions of each slot; pure.

The reconciler compares these phases between passes to log their changes.
`now` is passed in, and the failures of the pass (if any) come as a mapping
from object to error.

Slot phases:

    Pending   the slot's cgroup does not exist yet, or its controllers are still to enable
    Ready     set up; takes new jobs
    Cordoned  set up; `state: Cordoned` takes no new jobs
    Draining  `state: Draining`, its deadline's drain, or its spec removed: jobs still run
    Drained   draining and nothing runs in it any more
    Failed    an action on the slot failed (this pass's, or for `wnr get` the failure last
              logged, while the plan still has to retry it)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.actions import CreateCgroup, EnableControllers
from reconciler.model.api import NodeSpec, Slot, SlotState
from reconciler.model.desired import Desired
from reconciler.model.layout import slot_cgroup
from reconciler.model.observed import Observed
from reconciler.model.quantity import format_bytes, format_millicpus
from reconciler.plan.builder import Plan
from reconciler.plan.jobphase import JobView, Phase
from reconciler.status.conditions import (
    UNKNOWN,
    Condition,
    cgroup_condition,
    limits_condition,
    run_as_condition,
    slot_oom_condition,
    spec_conditions,
    state_conditions,
)

SLOT_PHASES = ("Pending", "Ready", "Cordoned", "Draining", "Drained", "Failed")


@dataclass(frozen=True)
class Resources:
    """CPUs (millicores) and memory (bytes); None is unlimited or unknown."""

    cpus: int | None = None
    memory: int | None = None

    def to_dict(self) -> dict[str, str]:
        """Kubernetes quantities (`500m`, `4Gi`); unset amounts are left out."""
        data: dict[str, str] = {}
        if self.cpus is not None:
            data["cpus"] = format_millicpus(self.cpus)
        if self.memory is not None:
            data["memory"] = format_bytes(self.memory)
        return data


@dataclass(frozen=True)
class SlotStatus:
    """A slot's status (DESIGN §2)."""

    name: str
    phase: str
    message: str = ""
    conditions: tuple[Condition, ...] = ()
    capacity: Resources = field(default_factory=Resources)
    allocated: Resources = field(default_factory=Resources)
    free: Resources = field(default_factory=Resources)
    jobs: tuple[str, ...] = ()  # jobs whose spec names this slot, in spec order
    active: tuple[str, ...] = ()  # those Starting or Running
    cgroup: str | None = None
    # Whom its jobs and agents run as: user, uid, gid, groups (none where not resolved).
    run_as: Mapping[str, Any] | None = None

    def condition(self, kind: str) -> Condition | None:
        """The condition of a type, if the slot has it."""
        return next((c for c in self.conditions if c.type == kind), None)

    def to_dict(self) -> dict[str, Any]:
        """The camelCase `status` of `wnr get slot -o json`."""
        data: dict[str, Any] = {
            "phase": self.phase,
            "message": self.message,
            "conditions": [c.to_dict() for c in self.conditions],
            "capacity": self.capacity.to_dict(),
            "allocated": self.allocated.to_dict(),
            "free": self.free.to_dict(),
            "jobs": len(self.jobs),
            "activeJobs": len(self.active),
            "cgroup": self.cgroup,
            "runAs": dict(self.run_as) if self.run_as is not None else None,
        }
        return {k: v for k, v in data.items() if v not in (None, "")}


def slot_statuses(
    desired: Desired,
    observed: Observed,
    plan: Plan,
    now: float,
    failures: Mapping[str, str] | None = None,
    *,
    memo: SlotStatusMemo | None = None,
) -> dict[str, SlotStatus]:
    """Every slot with a spec or a cgroup; `failures` maps an object to its error this pass.
    With a `memo`, a slot whose status derives from what it derived from last time keeps
    that status."""
    node, failures = desired.node_spec, failures or {}
    names = sorted(set(desired.slots) | set(observed.slots))
    if memo is None:
        return {n: _slot_status(n, desired, observed, plan, node, now, failures) for n in names}
    found: dict[str, SlotStatus] = {}
    kept: dict[str, tuple[tuple[object, ...], SlotStatus]] = {}
    for name in names:
        key = _inputs(name, desired, observed, plan, now, failures)
        last = memo.last.get(name)
        if last is not None and last[0] == key:
            status = last[1]
        else:
            status = _slot_status(name, desired, observed, plan, node, now, failures)
        kept[name] = (key, status)
        found[name] = status
    memo.last = kept
    return found


class SlotStatusMemo:
    """Each slot's status of the last pass, with what it derived from (`_inputs`)."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[tuple[object, ...], SlotStatus]] = {}


def _inputs(  # noqa: PLR0917 - what one slot's status reads
    name: str,
    desired: Desired,
    observed: Observed,
    plan: Plan,
    now: float,
    failures: Mapping[str, str],
) -> tuple[object, ...]:
    """What `_slot_status` reads (the time only through the drain's start): its jobs' views
    and records looked up with `map`, so that a slot of quiet jobs is compared in C (tuple
    equality: identity first), and the notes made while it was planned."""
    obj, rel = f"Slot/{name}", slot_cgroup(name)
    jobs = desired.slot_jobs(name)
    names = [job.metadata.name for job in jobs]
    drain = plan.drain_starts.get(name)
    return (
        desired.slots.get(name),
        tuple(jobs),
        observed.slots.get(name),
        name in observed.running_slots,
        tuple(map(plan.jobs.get, names)),
        tuple(map(observed.records.get, names)),
        plan.slot_notes.get(name),
        tuple(a for a in plan.actions if a.obj == obj or a.path in (rel, "")),
        drain,
        drain is not None and now >= drain,
        failures.get(obj),
        plan.run_as.get(name),
        desired.node_spec,
        desired.errors_of("Slot", name),
        ("Slot", name) in desired.sources,
        observed.page_size,
        observed.state_fault,
        observed.root_path,
    )


def _slot_status(  # noqa: PLR0917
    name: str,
    desired: Desired,
    observed: Observed,
    plan: Plan,
    node: NodeSpec,
    now: float,
    failures: Mapping[str, str],
) -> SlotStatus:
    slot = desired.slots.get(name)
    obj, rel = f"Slot/{name}", slot_cgroup(name)
    cgroup = observed.slots.get(name)
    jobs = tuple(j.metadata.name for j in desired.slot_jobs(name))
    active = tuple(n for n in jobs if _active(plan.jobs.get(n)))
    running = name in observed.running_slots
    setup = [
        a
        for a in plan.actions
        if isinstance(a, CreateCgroup | EnableControllers) and a.path in (rel, "")
    ]
    phase, message = _slot_phase(slot, plan.drain_starts.get(name), now, running)
    if phase in ("Pending", "Ready", "Cordoned") and (cgroup is None or setup):
        phase = "Pending"
        message = "the slot's cgroup is to be created" if cgroup is None else message
    if obj in failures:
        phase, message = "Failed", failures[obj]
    capacity = Resources()
    if slot is not None:
        capacity = Resources(slot.spec.resources.cpus, slot.spec.resources.memory)
    cpus = sum(desired.jobs[n].spec.resources.cpus or 0 for n in active)
    memory = sum(desired.jobs[n].spec.resources.memory or 0 for n in active)
    free = Resources(
        max(0, capacity.cpus - cpus) if capacity.cpus is not None else None,
        max(0, capacity.memory - memory) if capacity.memory is not None else None,
    )
    conditions = (
        cgroup_condition(observed, rel, setup),
        limits_condition(name, slot, observed, plan, node),
        Condition("AgentsReady", UNKNOWN, "NotReported", "agent status is not reported yet"),
        *spec_conditions(desired, "Slot", name),
        *run_as_condition(plan.run_as.get(name)),
        *slot_oom_condition(slot, jobs, observed),
        *state_conditions(observed),
    )
    chosen = plan.run_as.get(name)
    return SlotStatus(
        name=name,
        phase=phase,
        message=message,
        conditions=conditions,
        capacity=capacity,
        allocated=Resources(cpus, memory),
        free=free,
        jobs=jobs,
        active=active,
        cgroup=f"{observed.root_path}/{rel}" if cgroup is not None else None,
        run_as=chosen.account.to_dict() if chosen is not None and chosen.account else None,
    )


def _active(view: JobView | None) -> bool:
    return view is not None and view.phase in (Phase.Starting, Phase.Running)


def _slot_phase(
    slot: Slot | None, drain: float | None, now: float, running: bool
) -> tuple[str, str]:
    """The phase from the spec and what runs, before setup and failures are considered."""
    if slot is None:
        if running:
            return "Draining", "the spec was removed: jobs run until the drain grace, then stop"
        return "Drained", "the spec was removed: the slot is removed once empty"
    if drain is not None and now >= drain:
        if running:
            return "Draining", "no new jobs; running jobs stop after the drain grace period"
        return "Drained", "no jobs run in the slot any more"
    if slot.spec.state == SlotState.Cordoned:
        return "Cordoned", "no new jobs start"
    return "Ready", ""
