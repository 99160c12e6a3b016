"""The status the daemon publishes, as Kubernetes objects, and the statuses read back from it; pure.

After each real pass the reconciler publishes `published_objects` into the
state dir (reconciler.host.objectstore's StatusBoard writes only what
changed); `wnr get`, `describe`, `wait` and `reconciler.client` read them
back with `job_status_of` and `slot_status_of`, so that what they print is
what the daemon saw. Each object carries what the API server would add:
`metadata.uid`, `creationTimestamp`, `generation` (and `deletionTimestamp`
while a deleted object is still being stopped), and `status.observedGeneration`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciler.model.api import Job, Slot
from reconciler.model.quantity import parse_bytes, parse_millicpus
from reconciler.model.stored import ObjectKey, StoredObject
from reconciler.status.conditions import Condition
from reconciler.status.jobs import JobStatus, JobStatusMemo, job_statuses, timestamp
from reconciler.status.objects import api_object
from reconciler.status.passresult import PassResult
from reconciler.status.slots import Resources, SlotStatus, slot_statuses

ACTIVE_PHASES = ("Starting", "Running")


def _pairs(
    result: PassResult,
    now: float,
    failures: Mapping[str, str] | None,
    memo: JobStatusMemo | None = None,
    slots: Mapping[str, SlotStatus] | None = None,
) -> Iterator[tuple[ObjectKey, Slot | Job | None, JobStatus | SlotStatus]]:
    """Each job and slot of the pass: its key, its spec object (if any) and its status;
    `slots`: the pass's slot statuses, if made already (without failures: used only when
    no action failed)."""
    desired, observed, plan = result.desired, result.observed, result.plan
    for name, job in job_statuses(desired, observed, plan, now, memo).items():
        yield ("Job", name), desired.jobs.get(name), job
    if slots is None or failures:
        slots = slot_statuses(desired, observed, plan, now, failures)
    for name, slot in slots.items():
        yield ("Slot", name), desired.slots.get(name), slot


def published_objects(
    result: PassResult,
    stored: Mapping[ObjectKey, StoredObject],
    now: float,
    failures: Mapping[str, str] | None = None,
) -> dict[ObjectKey, dict[str, Any]]:
    """Every job and slot of the pass as the object `wnr get -o json` shows."""
    return {
        key: _published(key[0], obj, status, stored.get(key))
        for key, obj, status in _pairs(result, now, failures)
    }


class Publication:
    """`published_objects` pass after pass: a job whose status derives from what it derived
    from last pass keeps that status (reconciler.status.jobs.JobStatusMemo), and an object
    whose status, spec object and store entry are those of the previous pass is the very
    dict it was then (a daemon among
    hundreds of idle jobs builds no dict for them; the status board compares by identity
    first)."""

    def __init__(self) -> None:
        self._last: dict[ObjectKey, tuple[object, object, object, dict[str, Any]]] = {}
        self._statuses = JobStatusMemo()

    def objects(
        self,
        result: PassResult,
        stored: Mapping[ObjectKey, StoredObject],
        now: float,
        failures: Mapping[str, str] | None = None,
        slots: Mapping[str, SlotStatus] | None = None,
    ) -> dict[ObjectKey, dict[str, Any]]:
        """Every job and slot of the pass, as `published_objects` makes them (`slots`: the
        pass's slot statuses without failures, if made already)."""
        found: dict[ObjectKey, dict[str, Any]] = {}
        memo: dict[ObjectKey, tuple[object, object, object, dict[str, Any]]] = {}
        for key, obj, status in _pairs(result, now, failures, self._statuses, slots):
            entry = stored.get(key)
            hit = self._last.get(key)
            kept = hit is not None and hit[1] is obj and hit[2] is entry
            # A dataclass's == compares every field even of the very same object.
            if hit is not None and kept and (hit[0] is status or hit[0] == status):
                data = hit[3]
            else:
                data = _published(key[0], obj, status, entry)
            memo[key] = (status, obj, entry, data)
            found[key] = data
        self._last = memo
        return found


def _published(
    kind: str, obj: Slot | Job | None, status: JobStatus | SlotStatus, entry: StoredObject | None
) -> dict[str, Any]:
    """One object: its spec from the desired state, or from the store while it is deleted."""
    data = api_object(kind, obj, status)
    if entry is None:
        return data
    meta = data["metadata"]
    if obj is None:
        # Deleted and still being stopped: shown with the spec it was last given.
        written = entry.document.get("metadata")
        if isinstance(written, dict):
            meta.update({k: v for k, v in written.items() if k in ("labels", "annotations")})
        data["spec"] = entry.document.get("spec", {})
    if entry.uid:
        meta["uid"] = entry.uid
    meta["creationTimestamp"] = timestamp(entry.created_at)
    meta["generation"] = entry.generation
    if entry.deleted_at is not None:
        meta["deletionTimestamp"] = timestamp(entry.deleted_at)
    data["status"]["observedGeneration"] = entry.generation
    if entry.source.path:
        data["status"]["specSource"] = f"{entry.source.path} (document {entry.source.document + 1})"
    return data


def seconds(text: object) -> float | None:
    """An RFC 3339 time of `timestamp` back as seconds since the epoch."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def created_of(obj: Mapping[str, Any]) -> float | None:
    """An object's creationTimestamp in seconds."""
    return seconds(obj.get("metadata", {}).get("creationTimestamp"))


def _conditions(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    return tuple(
        Condition(str(c["type"]), str(c["status"]), str(c["reason"]), str(c.get("message", "")))
        for c in status.get("conditions", ())
    )


def job_status_of(obj: Mapping[str, Any]) -> JobStatus:
    """The JobStatus of a published Job."""
    status = obj.get("status", {})
    return JobStatus(
        name=str(obj["metadata"]["name"]),
        slot=str(status.get("slot") or obj.get("spec", {}).get("slot", "")),
        phase=str(status.get("phase", "")),
        reason=str(status.get("reason", "")),
        message=str(status.get("message", "")),
        exit_code=status.get("exitCode"),
        attempts=int(status.get("attempts", 0)),
        start_time=seconds(status.get("startTime")),
        finish_time=seconds(status.get("finishTime")),
        cpu_seconds=status.get("cpuSeconds"),
        peak_memory_bytes=status.get("peakMemoryBytes"),
        cgroup=status.get("cgroup"),
        conditions=_conditions(status),
        user=str(status.get("runAs", {}).get("user", "")),
        uid=status.get("runAs", {}).get("uid"),
    )


def _amount(value: object, parse: Callable[[object], int]) -> int | None:
    """A published quantity back as a number: none left is `0`, which no spec may ask for."""
    if value is None:
        return None
    return 0 if str(value) == "0" else parse(value)


def _resources(data: Mapping[str, Any] | None) -> Resources:
    data = data or {}
    cpus = _amount(data.get("cpus"), parse_millicpus)
    return Resources(cpus, _amount(data.get("memory"), parse_bytes))


def slot_status_of(obj: Mapping[str, Any], jobs: Sequence[JobStatus]) -> SlotStatus:
    """The SlotStatus of a published Slot; `jobs` are the published jobs, whose slot and phase
    give its jobs and active jobs."""
    status = obj.get("status", {})
    name = str(obj["metadata"]["name"])
    members = tuple(j.name for j in jobs if j.slot == name and j.reason != "Deleted")
    active = tuple(j.name for j in jobs if j.name in members and j.phase in ACTIVE_PHASES)
    return SlotStatus(
        name=name,
        phase=str(status.get("phase", "")),
        message=str(status.get("message", "")),
        conditions=_conditions(status),
        capacity=_resources(status.get("capacity")),
        allocated=_resources(status.get("allocated")),
        free=_resources(status.get("free")),
        jobs=members,
        active=active,
        cgroup=status.get("cgroup"),
        run_as=status.get("runAs"),
    )
