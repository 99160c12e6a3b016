"""The conditions of a job or slot status (DESIGN §2): what each says and how it is derived; pure.

`SpecValid` (jobs and slots), `Stalled` (jobs), `CgroupReady`, `LimitsEnforced`,
`RunAsUser` and `MemoryLimitReached` (slots) are derived here from desired, observed and
the plan, for `status.jobs` and `status.slots` to attach to what they build; and the
Node's `StateDirWritable`, which every slot and every job waiting to start carries while it
is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model.accounts import RunAs
from reconciler.model.actions import WriteLimit
from reconciler.model.api import IdlePolicy, NodeSpec, Slot
from reconciler.model.desired import Desired
from reconciler.model.limits import CONTROLLER_OF, SAMPLED_LIMITS, Limits, is_set, ordered, render
from reconciler.model.observed import Observed, Usage
from reconciler.model.quantity import format_bytes
from reconciler.plan.builder import Plan

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
NOT_BY_KERNEL = "not-enforced-by-kernel"


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


def spec_conditions(desired: Desired, kind: str, name: str) -> tuple[Condition, ...]:
    """`SpecValid` False when the object's file has errors (it keeps its last good spec)."""
    errors = desired.errors_of(kind, name)
    if not errors:
        return ()
    message = "; ".join(str(e) for e in errors)
    if (kind, name) in desired.sources:
        message += " (the last good spec stays in force)"
    return (Condition("SpecValid", FALSE, "InvalidSpec", message),)


def state_conditions(observed: Observed) -> tuple[Condition, ...]:
    """`StateDirWritable` False while the state dir cannot record (then nothing starts)."""
    fault = observed.state_fault
    if fault is None:
        return ()
    message = f"{fault}; no job or agent starts until the state dir can record again"
    return (Condition("StateDirWritable", FALSE, fault.reason, message),)


def cgroup_condition(observed: Observed, rel: str, setup: Sequence[object]) -> Condition:
    """`CgroupReady`: the slot's cgroup exists and no setup action for it is left."""
    path = f"{observed.root_path}/{rel}"
    if rel.removeprefix("slot.") not in observed.slots:
        return Condition("CgroupReady", FALSE, "NotCreated", f"{path} does not exist yet")
    if setup:
        return Condition(
            "CgroupReady", FALSE, "ControllersPending", f"controllers of {path} are to be enabled"
        )
    return Condition("CgroupReady", TRUE, "Created", path)


def limits_condition(
    name: str,
    slot: Slot | None,
    observed: Observed,
    plan: Plan,
    node: NodeSpec,
) -> Condition:
    """Which limits the kernel enforces, which wnr enforces by sampling, which nobody does."""
    kind = "LimitsEnforced"
    if slot is None:
        return Condition(kind, UNKNOWN, "SpecRemoved", "the spec was removed")
    obj = f"Slot/{name}"
    # The slot's, its agents' and its jobs' (those of its spec order, planned there).
    notes = plan.slot_notes.get(name, ())
    unenforced = [n for n in notes if n.kind == NOT_BY_KERNEL]
    noted = {n.file for n in unenforced if n.obj == obj}
    limits = Limits.of_slot(slot)
    enforced = [
        f"{f}={v}" for f, v in render(limits, observed.page_size) if is_set(f, v) and f not in noted
    ]
    missing = ordered(CONTROLLER_OF[n.file] for n in unenforced if n.file in CONTROLLER_OF)
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
    sampled = [c for c in SAMPLED_LIMITS if c in missing]
    if sampled:
        interval = node.policies.user_space.interval_seconds
        parts.append(
            f"wnr enforces each job's {' and '.join(sampled)} limit by sampling every "
            f"{interval:g}s (policies.userSpace.intervalSeconds); the slot's own totals only "
            "through admission of job requests"
        )
    unguarded = [c for c in missing if c not in SAMPLED_LIMITS]
    if unguarded:
        parts.append(f"{_either(unguarded)} limits are not enforced at all")
    return Condition(kind, FALSE, "ControllersMissing", "; ".join(parts))


def _either(words: Sequence[str]) -> str:
    """`cpu`, `cpu or memory`, `cpu, memory or pids`."""
    return " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else words[0]


def run_as_condition(run_as: RunAs | None) -> tuple[Condition, ...]:
    """`RunAsUser`: whom the slot's jobs and agents run as, or why nothing of it may run."""
    if run_as is None:
        return ()
    status = FALSE if run_as.refusal else TRUE
    return (Condition("RunAsUser", status, str(run_as.reason), run_as.message),)


def stall_condition(usage: Usage | None, idle: IdlePolicy) -> tuple[Condition, ...]:
    """`Stalled`: whether the job's tasks waited on CPU, memory or I/O for at least the idle
    policy's minStallFraction of the last sample (PSI `some`); none where there are no figures."""
    if usage is None or usage.stall is None:
        return ()
    stall = usage.stall
    figures = f"{stall} of the last sample stalled (PSI some)"
    if stall.reaches(idle.min_stall_fraction):
        message = f"{figures}: waiting, not idle; the idle timeout does not count this time"
        return (Condition("Stalled", TRUE, "PressureStall", message),)
    return (Condition("Stalled", FALSE, "NoPressure", figures),)


def slot_oom_condition(
    slot: Slot | None, jobs: Sequence[str], observed: Observed
) -> tuple[Condition, ...]:
    """`MemoryLimitReached` on a slot whose own memory limit made the kernel OOM-kill its jobs
    (their last attempt's oomLevel is "slot"): the slot is told, and which jobs it cost; a
    job's own limit is the job's affair (its OOMKilled says so)."""
    killed = [
        name
        for name in jobs
        if (records := observed.records.get(name)) is not None
        and records.last is not None
        and records.last.oom_level == "slot"
    ]
    if not killed:
        return ()
    limit = slot.spec.resources.memory if slot is not None else None
    what = f"its memory limit ({format_bytes(limit)})" if limit is not None else "its memory limit"
    message = f"the slot reached {what}: the kernel OOM-killed job(s) {', '.join(killed)}"
    return (Condition("MemoryLimitReached", TRUE, "SlotOOM", message),)
