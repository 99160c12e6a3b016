"""The planner: a pure function of (desired, observed, now) returning the ordered actions.

No I/O, no clock, no psutil, no cgroup layer (tests/test_layers.py enforces
the imports). Objects are visited by name, so the order of documents never
changes the plan. A converged system plans nothing; an incomplete spec set
(a file never parsed, an unreadable directory) plans no deletion at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.actions import (
    Action,
    CreateCgroup,
    EnableControllers,
    ForgetJob,
    KillCgroup,
    RemoveCgroup,
    Signal,
    StartJob,
    WriteLimit,
)
from reconciler.jobphase import JobView, Phase, job_view
from reconciler.limits import CONTROLLER_OF, KERNEL_DEFAULTS, Limits, is_set, render
from reconciler.models import Job, Node, NodeSpec, Slot, SlotState
from reconciler.observed import CgroupState, Observed
from reconciler.specs import Desired
from reconciler.state import JobRecords
from reconciler.unenforced import unenforced_fields

CONTROLLER_ORDER = ("cpuset", "cpu", "io", "memory", "pids")
DEFAULT_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Note:
    """Something the admin should know that is not an action (nothing to do about it here)."""

    obj: str
    kind: str  # not-enforced-by-kernel | not-enforced-yet | kept | foreign | waiting
    message: str

    def __str__(self) -> str:
        return f"{self.obj}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class Plan:
    """The ordered actions, the notes, each job's view, and when to look again."""

    actions: tuple[Action, ...]
    notes: tuple[Note, ...] = ()
    jobs: Mapping[str, JobView] = field(default_factory=dict)
    requeue_after: float | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of the actions, for `wnr apply --expect`."""
        text = json.dumps([a.to_dict() for a in self.actions], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Builder:
    """The plan under construction, with what every step reads (desired, observed, now)."""

    def __init__(self, desired: Desired, observed: Observed, now: float) -> None:
        self.desired = desired
        self.observed = observed
        self.node = desired.node.spec if desired.node is not None else NodeSpec()
        self.enabled: frozenset[str] = frozenset()
        self.now = now
        self.actions: list[Action] = []
        self.notes: list[Note] = []
        self.jobs: dict[str, JobView] = {}
        self.wake: list[float] = []

    def note(self, obj: str, kind: str, message: str) -> None:
        self.notes.append(Note(obj, kind, message))

    def requeue_at(self, when: float) -> None:
        self.wake.append(when)

    def build(self) -> Plan:
        after = max(0.0, min(self.wake) - self.now) if self.wake else None
        return Plan(tuple(self.actions), tuple(self.notes), self.jobs, after)


def plan(desired: Desired, observed: Observed, now: float) -> Plan:
    """Compute the actions that make the observed tree match the desired state."""
    out = _Builder(desired, observed, now)
    for obj in _objects(desired):
        for path in unenforced_fields(obj):
            out.note(f"{obj.kind}/{obj.metadata.name}", "not-enforced-yet", path)
    out.enabled = _plan_root(out)
    for name in sorted(desired.slots):
        _plan_slot(out, desired.slots[name])
    _plan_removals(out)
    for foreign in observed.foreign:
        out.note(foreign, "foreign", "not a cgroup wnr owns; left alone")
    return out.build()


def _objects(desired: Desired) -> list[Node | Slot | Job]:
    node: list[Node | Slot | Job] = [desired.node] if desired.node is not None else []
    slots = [desired.slots[n] for n in sorted(desired.slots)]
    jobs = [desired.jobs[n] for n in sorted(desired.jobs)]
    return [*node, *slots, *jobs]


def _plan_root(out: _Builder) -> frozenset[str]:
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
        out.actions.append(CreateCgroup("Root", ""))
    current = observed.root.subtree_control if observed.root is not None else frozenset()
    if offered - current:
        out.actions.append(EnableControllers("Root", "", _ordered(offered - current)))
    return frozenset(offered)


def _ordered(controllers: set[str] | frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(controllers, key=lambda c: (*CONTROLLER_ORDER, c).index(c)))


def _plan_limits(
    out: _Builder, obj: str, rel: str, limits: Limits, cgroup: CgroupState | None
) -> None:
    """Write each limit file that differs; report limits the kernel cannot enforce."""
    for file, value in render(limits, out.observed.page_size):
        controller = CONTROLLER_OF[file]
        if controller not in out.enabled or (cgroup is not None and file not in cgroup.limits):
            if is_set(file, value):
                out.note(
                    obj, "not-enforced-by-kernel", f"{file}={value} (no {controller} controller)"
                )
            continue
        old = cgroup.limits[file] if cgroup is not None else KERNEL_DEFAULTS[file]
        if old != value:
            out.actions.append(WriteLimit(obj, rel, file, old if cgroup else None, value))


def _plan_slot(out: _Builder, slot: Slot) -> None:
    name = slot.metadata.name
    obj, rel = f"Slot/{name}", f"slot.{name}"
    cgroup = out.observed.slots.get(name)
    enabled = out.enabled
    if cgroup is None:
        out.actions.append(CreateCgroup(obj, rel))
    r = slot.spec.resources
    limits = Limits(r.cpus, r.memory, r.memory_high, r.swap, r.pids, r.io_weight, slot.spec.cpuset)
    _plan_limits(out, obj, rel, limits, cgroup)
    current = cgroup.subtree_control if cgroup is not None else frozenset()
    if enabled - current:
        out.actions.append(EnableControllers(obj, rel, _ordered(enabled - current)))
    accepting = slot.spec.state == SlotState.Active
    for job_name in sorted(out.desired.jobs):
        job = out.desired.jobs[job_name]
        if job.spec.slot == name:
            _plan_job(out, slot, job, accepting)


def _plan_job(out: _Builder, slot: Slot, job: Job, accepting: bool) -> None:
    observed = out.observed
    name = job.metadata.name
    obj, rel = f"Job/{name}", f"slot.{slot.metadata.name}/job.{name}"
    where = observed.jobs.get(name)
    cgroup = where[1] if where is not None else None
    max_attempts = job.spec.max_start_attempts or out.node.policies.max_start_attempts
    view = job_view(observed.records.get(name, JobRecords()), cgroup, max_attempts, out.now)
    out.jobs[name] = view
    if where is not None and where[0] != slot.metadata.name:
        if where[0] not in out.desired.slots:
            return  # its old slot is being removed: _plan_removals stops and removes it
        if view.finished and cgroup is not None:
            moved = f"slot.{where[0]}/job.{name}"
            _plan_empty_and_remove(out, obj, moved, cgroup, "the job has finished")
        else:
            out.note(obj, "kept", f"runs in slot {where[0]}; a running job does not move slots")
        return
    if view.deadline is not None and view.phase is Phase.Starting:
        out.requeue_at(view.deadline)
    r = job.spec.resources
    limits = Limits(millicpus=r.cpus, memory=r.memory, pids=r.pids)
    if view.finished:
        if cgroup is not None:
            _plan_empty_and_remove(out, obj, rel, cgroup, "the job has finished")
        return
    if view.phase is Phase.Pending:
        if not accepting:
            out.note(obj, "waiting", f"slot is {slot.spec.state}: no new jobs start")
            return
        if cgroup is None:
            out.actions.append(CreateCgroup(obj, rel))
        _plan_limits(out, obj, rel, limits, cgroup)
        out.actions.append(
            StartJob(
                obj,
                rel,
                job=name,
                attempt=view.attempts + 1,
                argv=tuple(job.spec.command),
                env=dict(sorted(job.spec.env.items())),
                working_dir=job.spec.working_dir,
            )
        )
        return
    # Starting or Running: keep limits in step with the spec, live.
    if cgroup is not None:
        _plan_limits(out, obj, rel, limits, cgroup)


def _plan_empty_and_remove(
    out: _Builder, obj: str, rel: str, cgroup: CgroupState, reason: str
) -> None:
    if cgroup.populated:
        out.actions.append(KillCgroup(obj, rel, f"{reason}; leftover processes"))
    else:
        out.actions.append(RemoveCgroup(obj, rel))


def _plan_removals(out: _Builder) -> None:
    """Stop and remove what is observed but no longer desired; never with an incomplete spec."""
    desired, observed = out.desired, out.observed
    removed: set[str] = set()
    for name in sorted(set(observed.jobs) | set(observed.records)):
        job = desired.jobs.get(name)
        where = observed.jobs.get(name)
        slot_wanted = where is not None and where[0] in desired.slots
        if job is not None and (where is None or slot_wanted):
            continue
        obj = f"Job/{name}"
        if not desired.complete:
            out.note(obj, "kept", "the spec set is incomplete (see errors); nothing is deleted")
            continue
        if where is None:
            if job is None:
                out.actions.append(ForgetJob(obj, "", job=name))
            continue
        slot_name, cgroup = where
        rel = f"slot.{slot_name}/job.{name}"
        if cgroup.populated:
            _plan_stop(out, obj, rel, name, slot_name)
            continue
        out.actions.append(RemoveCgroup(obj, rel))
        removed.add(rel)
        if job is None:
            out.actions.append(ForgetJob(obj, "", job=name))
    for slot_name in sorted(set(observed.slots) - set(desired.slots)):
        obj, rel = f"Slot/{slot_name}", f"slot.{slot_name}"
        if not desired.complete:
            out.note(obj, "kept", "the spec set is incomplete (see errors); nothing is deleted")
            continue
        left = [c for c in observed.slots[slot_name].children if f"{rel}/{c}" not in removed]
        if left:
            out.note(obj, "waiting", f"removed once empty; still holds {', '.join(left)}")
        else:
            out.actions.append(RemoveCgroup(obj, rel))


def _plan_stop(out: _Builder, obj: str, rel: str, name: str, slot_name: str) -> None:
    """SIGTERM first; cgroup.kill once the grace period recorded with the SIGTERM has passed."""
    stop = out.observed.records.get(name, JobRecords()).stop
    if stop is None:
        slot = out.desired.slots.get(slot_name)
        grace = (
            float(slot.spec.termination_grace_period_seconds)
            if slot is not None
            else DEFAULT_GRACE_SECONDS
        )
        reason = "job deleted" if slot is not None else "slot deleted"
        out.actions.append(Signal(obj, rel, job=name, grace_seconds=grace, reason=reason))
        out.requeue_at(out.now + grace)
        return
    deadline = stop.requested_at + stop.grace_seconds
    if out.now >= deadline:
        out.actions.append(KillCgroup(obj, rel, f"{stop.reason}; grace period over"))
    else:
        out.requeue_at(deadline)
