"""Job and slot status (DESIGN §2) derived from one pass: desired, observed and the plan; pure.

`wnr get` and `wnr describe` show these, and the reconciler compares slot
phases between passes to log their changes. No I/O and no clock: `now` is
passed in, and the failures of the pass (if any) come as a mapping from
object to error.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.actions import CreateCgroup, EnableControllers, WriteLimit
from reconciler.jobphase import JobView, Phase, job_view
from reconciler.limits import CONTROLLER_OF, Limits, is_set, render
from reconciler.models import API_VERSION, CoreFiles, Job, NodeSpec, Slot, SlotState
from reconciler.observed import Observed
from reconciler.plan.builder import Note, Plan
from reconciler.quantity import format_bytes, format_millicpus
from reconciler.specs import Desired
from reconciler.state import AttemptRecord, JobRecords

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
NOT_BY_KERNEL = "not-enforced-by-kernel"
SLOT_PHASES = ("Pending", "Ready", "Cordoned", "Draining", "Drained", "Failed")
_CONTROLLER_ORDER = ("cpuset", "cpu", "io", "memory", "pids")
# Controllers whose job limits wnr enforces in user space when the kernel lacks them.
_SAMPLED = ("memory", "pids")
_BYTES_KEYS = frozenset({"memory", "memoryHigh", "swap", "disk"})
_RESOURCE_KEYS = frozenset({"resources", "capacity", "reserved"})


def timestamp(seconds: float | None) -> str | None:
    """RFC 3339 in UTC, to the second, as Kubernetes writes times."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition: type, True|False|Unknown, a CamelCase reason, a message."""

    type: str
    status: str
    reason: str
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        """The camelCase form."""
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }


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

    def to_dict(self) -> dict[str, Any]:
        """The camelCase `status` of `wnr get job -o json`; unset fields are left out."""
        data: dict[str, Any] = {
            "phase": self.phase,
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
        }
        return {k: v for k, v in data.items() if v not in (None, "", [])}


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
        }
        return {k: v for k, v in data.items() if v not in (None, "")}


def job_statuses(
    desired: Desired, observed: Observed, plan: Plan, now: float
) -> dict[str, JobStatus]:
    """Every job wnr knows: wanted (its spec exists) or still observed (cgroup or records)."""
    node = desired.node.spec if desired.node is not None else NodeSpec()
    names = set(desired.jobs) | set(observed.jobs) | set(observed.records)
    return {name: _job_status(name, desired, observed, plan, node, now) for name in sorted(names)}


def _job_status(  # noqa: PLR0917
    name: str, desired: Desired, observed: Observed, plan: Plan, node: NodeSpec, now: float
) -> JobStatus:
    job = desired.jobs.get(name)
    where = observed.jobs.get(name)
    records = observed.records.get(name, JobRecords())
    view = plan.jobs.get(name) or _own_view(job, node, records, observed, name, now)
    reason, message = view.reason, view.message
    if job is None:
        reason = "Deleted"
        message = "the spec was removed" + ("" if view.finished else "; the job is being stopped")
    elif job.spec.slot not in desired.slots and view.phase is Phase.Pending:
        reason, message = "Unschedulable", f"slot {job.spec.slot} does not exist"
    elif not message:
        message = _note(plan.notes, f"Job/{name}", ("waiting", "kept"))
    slot = where[0] if where is not None else (job.spec.slot if job is not None else "")
    started = _last(records, lambda r: r.started_at is not None)
    measured = _last(records, lambda r: r.cpu_seconds is not None or r.exit_code is not None)
    last = records.last
    first = records.attempts[0] if records.attempts else None
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
        cgroup=f"{observed.root_path}/slot.{where[0]}/job.{name}" if where is not None else None,
        first_spawned=first.spawned_at if first is not None else None,
        conditions=_spec_conditions(desired, "Job", name),
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
    attempts = node.policies.max_start_attempts
    cores = node.policies.core_files
    if job is not None:
        attempts = job.spec.max_start_attempts or attempts
        cores = job.spec.core_files or cores
    cgroup = where[1] if where is not None else None
    return job_view(records, cgroup, attempts, now, cores == CoreFiles.check)


def _last(records: JobRecords, wanted: Any) -> AttemptRecord | None:
    return next((r for r in reversed(records.attempts) if wanted(r)), None)


def _note(notes: Sequence[Note], obj: str, kinds: tuple[str, ...]) -> str:
    return next((n.message for n in notes if n.obj == obj and n.kind in kinds), "")


def _spec_conditions(desired: Desired, kind: str, name: str) -> tuple[Condition, ...]:
    """`SpecValid` False when the object's file has errors (it keeps its last good spec)."""
    source = desired.sources.get((kind, name))
    errors = [
        str(e)
        for e in desired.errors
        if (e.kind, e.name) == (kind, name) or (source is not None and e.path == source.path)
    ]
    if not errors:
        return ()
    message = "; ".join(errors)
    if source is not None:
        message += " (the last good spec stays in force)"
    return (Condition("SpecValid", FALSE, "InvalidSpec", message),)


def slot_statuses(
    desired: Desired,
    observed: Observed,
    plan: Plan,
    now: float,
    failures: Mapping[str, str] | None = None,
) -> dict[str, SlotStatus]:
    """Every slot with a spec or a cgroup; `failures` maps an object to its error this pass."""
    node = desired.node.spec if desired.node is not None else NodeSpec()
    names = set(desired.slots) | set(observed.slots)
    return {
        name: _slot_status(name, desired, observed, plan, node, now, failures or {})
        for name in sorted(names)
    }


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
    obj, rel = f"Slot/{name}", f"slot.{name}"
    cgroup = observed.slots.get(name)
    jobs = tuple(
        n
        for n, j in sorted(desired.jobs.items(), key=lambda item: _order(desired, item[0]))
        if j.spec.slot == name
    )
    active = tuple(n for n in jobs if _active(plan.jobs.get(n)))
    running = any(s == name and c.populated for s, c in observed.jobs.values()) or any(
        s == name and c.populated for (s, _), c in observed.agents.items()
    )
    setup = [
        a
        for a in plan.actions
        if isinstance(a, CreateCgroup | EnableControllers) and a.path in (rel, "")
    ]
    phase, message = _slot_phase(slot, name, observed, now, running)
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
        _cgroup_condition(observed, rel, setup),
        _limits_condition(name, slot, jobs, observed, plan, node),
        Condition("AgentsReady", UNKNOWN, "NotReported", "agent status is not reported yet"),
        *_spec_conditions(desired, "Slot", name),
    )
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
    )


def _order(desired: Desired, job: str) -> tuple[str, int, str]:
    source = desired.sources.get(("Job", job))
    return (source.path, source.document, job) if source is not None else ("", 0, job)


def _active(view: JobView | None) -> bool:
    return view is not None and view.phase in (Phase.Starting, Phase.Running)


def _slot_phase(
    slot: Slot | None, name: str, observed: Observed, now: float, running: bool
) -> tuple[str, str]:
    """The phase from the spec and what runs, before setup and failures are considered."""
    if slot is None:
        if running:
            return "Draining", "the spec was removed: jobs run until the drain grace, then stop"
        return "Drained", "the spec was removed: the slot is removed once empty"
    drain = _drain_start(slot, name, observed, now)
    if drain is not None and now >= drain:
        if running:
            return "Draining", "no new jobs; running jobs stop after the drain grace period"
        return "Drained", "no jobs run in the slot any more"
    if slot.spec.state == SlotState.Cordoned:
        return "Cordoned", "no new jobs start"
    return "Ready", ""


def _drain_start(slot: Slot, name: str, observed: Observed, now: float) -> float | None:
    """When the slot's drain began or begins (its state, or its deadline less the drain grace)."""
    start: float | None = None
    if slot.spec.state == SlotState.Draining:
        record = observed.slot_records.get(name)
        since = record.draining_since if record is not None else None
        start = since if since is not None else now
    if slot.spec.deadline is not None:
        by_deadline = slot.spec.deadline.timestamp() - slot.spec.drain_grace_period_seconds
        start = by_deadline if start is None else min(start, by_deadline)
    return start


def _cgroup_condition(observed: Observed, rel: str, setup: Sequence[object]) -> Condition:
    path = f"{observed.root_path}/{rel}"
    if rel.removeprefix("slot.") not in observed.slots:
        return Condition("CgroupReady", FALSE, "NotCreated", f"{path} does not exist yet")
    if setup:
        return Condition(
            "CgroupReady", FALSE, "ControllersPending", f"controllers of {path} are to be enabled"
        )
    return Condition("CgroupReady", TRUE, "Created", path)


def _limits_condition(  # noqa: PLR0917
    name: str,
    slot: Slot | None,
    jobs: Sequence[str],
    observed: Observed,
    plan: Plan,
    node: NodeSpec,
) -> Condition:
    """Which limits the kernel enforces, which wnr enforces by sampling, which nobody does."""
    kind = "LimitsEnforced"
    if slot is None:
        return Condition(kind, UNKNOWN, "SpecRemoved", "the spec was removed")
    obj = f"Slot/{name}"
    objs = {obj} | {f"Job/{j}" for j in jobs}
    unenforced = [n for n in plan.notes if n.kind == NOT_BY_KERNEL and n.obj in objs]
    noted = {n.message.partition("=")[0] for n in unenforced if n.obj == obj}
    r = slot.spec.resources
    limits = Limits(r.cpus, r.memory, r.memory_high, r.swap, r.pids, r.io_weight, slot.spec.cpuset)
    enforced = [
        f"{f}={v}" for f, v in render(limits, observed.page_size) if is_set(f, v) and f not in noted
    ]
    missing = sorted(
        {
            CONTROLLER_OF[f]
            for n in unenforced
            if (f := n.message.partition("=")[0]) in CONTROLLER_OF
        },
        key=lambda c: (*_CONTROLLER_ORDER, c).index(c),
    )
    pending = [a.file for a in plan.actions if isinstance(a, WriteLimit) and a.obj == obj]
    if not missing:
        if pending:
            return Condition(kind, FALSE, "Pending", f"to be written: {', '.join(pending)}")
        if not enforced:
            return Condition(kind, TRUE, "NoLimits", "the slot and its jobs set no limits")
        return Condition(kind, TRUE, "KernelEnforced", f"the kernel enforces {', '.join(enforced)}")
    parts = [f"the kernel has no {_either(missing)} controller"]
    slot_notes = [n.message for n in unenforced if n.obj == obj]
    job_notes = sorted({n.obj for n in unenforced if n.obj != obj})
    if slot_notes:
        parts.append(f"not enforced by the kernel: {', '.join(slot_notes)}")
    if job_notes:
        parts.append(f"limits of {', '.join(job_notes)} not enforced by the kernel")
    if enforced:
        parts.append(f"the kernel enforces {', '.join(enforced)}")
    sampled = [c for c in _SAMPLED if c in missing]
    if sampled:
        interval = node.policies.user_space.interval_seconds
        parts.append(
            f"wnr enforces each job's {' and '.join(sampled)} limit by sampling every "
            f"{interval:g}s (policies.userSpace.intervalSeconds); the slot's own totals only "
            "through admission of job requests"
        )
    unguarded = [c for c in missing if c not in _SAMPLED]
    if unguarded:
        parts.append(f"{_either(unguarded)} limits are not enforced at all")
    return Condition(kind, FALSE, "ControllersMissing", "; ".join(parts))


def _either(words: Sequence[str]) -> str:
    """`cpu`, `cpu or memory`, `cpu, memory or pids`."""
    return " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else words[0]


def spec_data(obj: Slot | Job | None) -> dict[str, Any]:
    """The spec as the admin wrote it, quantities in their usual form (`500m`, `4Gi`)."""
    if obj is None:
        return {}
    data = obj.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    result = _quantities(data, False)
    assert isinstance(result, dict)
    return result


def _quantities(value: object, in_resources: bool) -> object:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            if in_resources and key == "cpus" and isinstance(item, int):
                out[key] = format_millicpus(item)
            elif in_resources and key in _BYTES_KEYS and isinstance(item, int):
                out[key] = format_bytes(item)
            else:
                out[key] = _quantities(item, key in _RESOURCE_KEYS)
        return out
    if isinstance(value, list):
        return [_quantities(item, in_resources) for item in value]
    return value


def _metadata(obj: Slot | Job | None, name: str, created: float | None) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name}
    if obj is not None:
        data.update(obj.metadata.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    if created is not None:
        data["creationTimestamp"] = timestamp(created)
    return data


def job_object(job: Job | None, status: JobStatus, created: float | None = None) -> dict[str, Any]:
    """A Job as `wnr get job -o json|yaml` prints it: metadata, spec, status."""
    data: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": _metadata(job, status.name, created),
    }
    if job is not None:
        data["spec"] = spec_data(job)
    data["status"] = status.to_dict()
    return data


def slot_object(
    slot: Slot | None, status: SlotStatus, created: float | None = None
) -> dict[str, Any]:
    """A Slot as `wnr get slot -o json|yaml` prints it: metadata, spec, status."""
    data: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Slot",
        "metadata": _metadata(slot, status.name, created),
    }
    if slot is not None:
        data["spec"] = spec_data(slot)
    data["status"] = status.to_dict()
    return data
