"""The events of one pass, derived from what it saw and did: phase changes and actions.

Pure: called by the reconciler (reconciler.reconcile) after apply, which writes
what this returns to the event log (reconciler.host.eventlog). A phase is compared
with the one last reported, so a change is reported once; an action's failure
repeated with the same error in the next pass is not reported again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from reconciler.model.actions import (
    Action,
    CreateCgroup,
    Failure,
    FailureKind,
    ForgetJob,
    KillCgroup,
    KillStrays,
    RemoveCgroup,
    Signal,
    StartAgent,
    StartJob,
    WriteLimit,
)
from reconciler.model.event import NORMAL, WARNING, Event
from reconciler.plan.jobphase import JobView, Phase
from reconciler.status import slot_statuses
from reconciler.status.passresult import PassResult
from reconciler.status.slots import SlotStatus

# The event reason of an action that failed, by its op.
FAILED_REASONS = {
    "create-cgroup": "FailedCreate",
    "enable-controllers": "FailedEnableControllers",
    "write-limit": "FailedWriteLimit",
    "start-job": "FailedStart",
    "start-agent": "FailedStartAgent",
    "signal": "FailedSignal",
    "kill-cgroup": "FailedKill",
    "kill-escapees": "FailedKill",
    "remove-cgroup": "FailedRemove",
}


class PassPhases(NamedTuple):
    """What one pass reports by comparison with the last report."""

    # Each job's phase, reason and attempts, and each slot's phase.
    phases: dict[str, str]
    # Each slot's status message, for the event of its new phase.
    messages: dict[str, str]
    # Why a slot's limits (or its jobs') are not all enforced by the kernel, by slot.
    unenforced: dict[str, str]


def current_phases(
    result: PassResult, now: float, slots: Mapping[str, SlotStatus] | None = None
) -> PassPhases:
    """What to compare between passes; `slots`: the pass's slot statuses without failures,
    if made already. A slot whose action failed keeps the phase it would have: the failure
    is an event of its own."""
    phases = {
        f"Job/{name}": f"{view.phase}/{view.reason}/{view.attempts}"
        for name, view in result.plan.jobs.items()
    }
    if slots is None:
        slots = slot_statuses(result.desired, result.observed, result.plan, now)
    phases.update({f"Slot/{name}": status.phase for name, status in slots.items()})
    messages = {f"Slot/{name}": status.message for name, status in slots.items()}
    unenforced = {
        f"Slot/{name}": condition.message
        for name, status in slots.items()
        if (condition := status.condition("LimitsEnforced")) is not None
        and condition.reason == "ControllersMissing"
    }
    return PassPhases(phases, messages, unenforced)


def unenforced_events(
    unenforced: Mapping[str, str], reported: Mapping[str, str], now: float
) -> tuple[dict[str, str], list[Event]]:
    """A Warning per slot whose limits the kernel cannot enforce (a controller the root is
    not offered: a batch system that delegates cpu and memory only), once while the reason
    stays the same: the marks to keep with the reported phases, and the new events."""
    marks = {f"Limits/{obj}": message for obj, message in unenforced.items()}
    events = [
        Event(now, obj, WARNING, "LimitsNotEnforced", message)
        for obj, message in unenforced.items()
        if reported.get(f"Limits/{obj}") != message
    ]
    return marks, events


def phase_events(
    before: Mapping[str, str],
    after: Mapping[str, str],
    jobs: Mapping[str, JobView],
    messages: Mapping[str, str],
    now: float,
) -> list[Event]:
    """Events for the phases that changed since they were last reported."""
    events: list[Event] = []
    for obj, phase in after.items():
        if before.get(obj) == phase:
            continue
        kind, _, name = obj.partition("/")
        if kind == "Job":
            event = _job_event(obj, jobs[name], now)
        elif phase == "Pending":
            event = None
        else:
            message = "the slot takes new jobs" if phase == "Ready" else messages.get(obj, "")
            event = Event(now, obj, NORMAL, phase, message)
        if event is not None:
            events.append(event)
    return events


def _job_event(obj: str, view: JobView, now: float) -> Event | None:
    """The event of a job's new phase: its end, a failed start, a refusal, an adoption."""
    if view.phase is Phase.Succeeded:
        message = view.message or f"exit code 0 (attempt {view.attempts})"
        return Event(now, obj, NORMAL, "Completed", message)
    if view.phase is Phase.Failed:
        return Event(now, obj, WARNING, view.reason or "Failed", view.message)
    if view.reason in ("StartFailed", "Unschedulable"):
        return Event(now, obj, WARNING, view.reason, view.message)
    if view.reason == "Adopted":
        return Event(now, obj, NORMAL, "Adopted", view.message)
    return None


def action_events(
    result: PassResult, now: float, failing: dict[tuple[str, str, str], str]
) -> list[Event]:
    """One event per action that did something worth reporting, one Warning per failure.

    A failure repeated with the same error in the next pass is not reported again.
    """
    failed: dict[int, Failure] = {f.index: f for f in result.failures}
    seen: dict[tuple[str, str, str], str] = {}
    events: list[Event] = []
    for index, action in enumerate(result.plan.actions):
        failure = failed.get(index)
        if failure is None:
            event = _done_event(action, now)
            if event is not None:
                events.append(event)
            continue
        if failure.kind in (FailureKind.SKIPPED, FailureKind.STATE_DIR):
            continue  # a state-dir fault is one event of the Node (reconciler.apply.statekeeper)
        key = (action.obj, action.op, action.path)
        seen[key] = failure.error
        if failing.get(key) != failure.error:
            reason = FAILED_REASONS.get(action.op, "Failed")
            events.append(Event(now, action.obj, WARNING, reason, str(failure)))
    failing.clear()
    failing.update(seen)
    return events


def _done_event(action: Action, now: float) -> Event | None:
    """The event of an action that succeeded, if it is one the admin wants to see."""
    obj, where = action.obj, action.path or "<root>"
    match action:
        case StartJob():
            message = f"attempt {action.attempt}: {' '.join(action.argv)}"
            return Event(now, obj, NORMAL, "Started", message)
        case StartAgent():
            message = f"agent {action.index} (restart {action.restarts}): {' '.join(action.argv)}"
            return Event(now, obj, NORMAL, "AgentStarted", message)
        case Signal():
            who = f"agent {action.agent}" if action.agent is not None else "the payload"
            message = (
                f"{action.why}: {action.signal} to {who}; "
                f"cgroup.kill after {action.grace_seconds:g}s"
            )
            return Event(now, obj, NORMAL, "Stopping", message)
        case KillCgroup():
            return Event(now, obj, NORMAL, "Killed", f"cgroup.kill {where}: {action.reason}")
        case KillStrays():
            pids = ", ".join(str(pid) for pid, _ in action.pids)
            return Event(now, obj, NORMAL, "KilledEscapees", f"SIGKILL {pids}: {action.reason}")
        case RemoveCgroup():
            return Event(now, obj, NORMAL, "Removed", f"cgroup {where} removed")
        case ForgetJob():
            return Event(now, obj, NORMAL, "Deleted", "the spec was removed; records deleted")
        case CreateCgroup() if "/" not in action.path:
            return Event(now, obj, NORMAL, "Created", f"cgroup {where} created")
        case WriteLimit() if action.old is not None:
            change = f"{action.file}: {action.old} -> {action.new}"
            return Event(now, obj, NORMAL, "LimitChanged", f"{where} {change}")
    return None
