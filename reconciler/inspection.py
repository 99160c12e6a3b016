"""`wnr get` and `wnr describe`: a dry pass's job and slot statuses, printed for the admin.

The CLI runs the dry pass and reports spec errors; this module turns the
pass into statuses (`reconciler.status`), adds what only the node can tell
(spec file times, the event log), and prints them through `reconciler.render`.
"""

from __future__ import annotations

import os
import sys

from reconciler.model.api import API_VERSION
from reconciler.model.desired import Desired
from reconciler.model.event import WARNING
from reconciler.reconcile import Reconciler
from reconciler.render import describe_job, describe_slot, dump, jobs_table, slots_table
from reconciler.status import api_object, job_statuses, slot_statuses
from reconciler.status.passresult import PassResult
from reconciler.top import job_usage, slot_usage


def run_get(
    reconciler: Reconciler, result: PassResult, resource: str, name: str | None, output: str
) -> int:
    """The slots or jobs (`resource`, plural) of the pass as a table, JSON or YAML."""
    _warn_state(result)
    now = reconciler.clock()
    desired = result.desired
    if resource == "jobs":
        kind, jobs = "Job", job_statuses(desired, result.observed, result.plan, now)
        if name is not None and name not in jobs:
            return _not_found("job", name, sorted(jobs))
        job_list = [jobs[name]] if name is not None else list(jobs.values())
        created = {s.name: _created(desired, kind, s.name) or s.first_spawned for s in job_list}
        objects = [
            api_object("Job", desired.jobs.get(s.name), s, created[s.name]) for s in job_list
        ]
        usage = job_usage(reconciler.fs, job_list) if output == "wide" else None
        text = jobs_table(job_list, created, now, output == "wide", usage)
    else:
        failed = _failed_slots(reconciler, result)
        kind, slots = "Slot", slot_statuses(desired, result.observed, result.plan, now, failed)
        if name is not None and name not in slots:
            return _not_found("slot", name, sorted(slots))
        slot_list = [slots[name]] if name is not None else list(slots.values())
        created = {s.name: _created(desired, kind, s.name) for s in slot_list}
        objects = [
            api_object("Slot", desired.slots.get(s.name), s, created[s.name]) for s in slot_list
        ]
        text = slots_table(slot_list, desired.slots, created, now, output == "wide")
    if output in ("json", "yaml"):
        if name is not None:
            print(dump(objects[0], output))
        else:
            data = {"apiVersion": API_VERSION, "kind": f"{kind}List", "items": objects}
            print(dump(data, output))
    elif not objects:
        print(f"No {resource} found.", file=sys.stderr)
    else:
        print(text)
    return 0


def run_describe(
    reconciler: Reconciler, result: PassResult, resource: str, name: str, events: int
) -> int:
    """One object's spec, status, conditions and its last `events` events."""
    _warn_state(result)
    now = reconciler.clock()
    desired = result.desired
    jobs = job_statuses(desired, result.observed, result.plan, now)
    if resource == "jobs":
        if name not in jobs:
            return _not_found("job", name, sorted(jobs))
        recent = reconciler.events.recent(f"Job/{name}", events)
        source = _source(desired, "Job", name)
        usage = job_usage(reconciler.fs, [jobs[name]]).get(name)
        print(describe_job(desired.jobs.get(name), jobs[name], recent, now, source, usage))
        return 0
    failed = _failed_slots(reconciler, result)
    slots = slot_statuses(desired, result.observed, result.plan, now, failed)
    if name not in slots:
        return _not_found("slot", name, sorted(slots))
    recent = reconciler.events.recent(f"Slot/{name}", events)
    members = [jobs[j] for j in slots[name].jobs if j in jobs]
    members += [s for s in jobs.values() if s.slot == name and s.name not in slots[name].jobs]
    source = _source(desired, "Slot", name)
    usage = slot_usage(reconciler.fs, [slots[name]]).get(name)
    print(describe_slot(desired.slots.get(name), slots[name], members, recent, now, source, usage))
    return 0


def _warn_state(result: PassResult) -> None:
    """The Node's condition, which no slot or job table has a column for."""
    fault = result.observed.state_fault
    if fault is not None:
        print(
            f"Warning: Node StateDirWritable=False ({fault.reason}): {fault}; "
            "no job or agent starts until it clears",
            file=sys.stderr,
        )


def _created(desired: Desired, kind: str, name: str) -> float | None:
    """When the object's spec file was last written (its creation, as far as wnr can tell)."""
    source = desired.sources.get((kind, name))
    if source is None:
        return None
    try:
        return os.stat(source.path).st_mtime
    except OSError:
        return None


def _source(desired: Desired, kind: str, name: str) -> str | None:
    source = desired.sources.get((kind, name))
    return f"{source.path} (document {source.document + 1})" if source is not None else None


def _not_found(kind: str, name: str, known: list[str]) -> int:
    listed = ", ".join(known) if known else "none"
    print(f'wnr: error: {kind} "{name}" not found (known: {listed})', file=sys.stderr)
    return 1


def _failed_slots(reconciler: Reconciler, result: PassResult) -> dict[str, str]:
    """Slots whose last event is a failed action that the plan still has to do: Failed, with
    the error (a dry pass cannot see failures itself)."""
    last = {e.obj: e for e in reconciler.events.read() if e.obj.startswith("Slot/")}
    pending = {a.obj for a in result.plan.actions}
    return {
        obj: event.message
        for obj, event in last.items()
        if event.type == WARNING and event.reason.startswith("Failed") and obj in pending
    }
