"""`wnr get` and `wnr describe`: the published jobs and slots, printed for the admin.

The client (reconciler.client) hands over a Snapshot: what the running daemon
published, or a dry pass's objects when none runs. This module turns them
back into statuses (reconciler.status.published) and prints them through
reconciler.render; `get -w` prints a row again each time its object changes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from reconciler.client import Client, Snapshot
from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.api import API_VERSION, Job, Slot
from reconciler.render import describe_job, describe_slot, dump, jobs_table, slots_table
from reconciler.status import JobStatus, SlotStatus
from reconciler.status.published import created_of, job_status_of, slot_status_of
from reconciler.top import job_usage, run_top, slot_usage

KIND_OF = {"jobs": "Job", "slots": "Slot"}


def announce(snapshot: Snapshot) -> None:
    """On stderr: where the objects come from when no daemon runs, the spec errors, and the
    Node's condition, which no slot or job table has a column for."""
    if snapshot.stale:
        print(f"wnr: {snapshot.stale}: showing a dry pass", file=sys.stderr)
    elif snapshot.daemon is None:
        print("wnr: no daemon runs on this state dir: showing a dry pass", file=sys.stderr)
    for error in snapshot.errors:
        print(error, file=sys.stderr)
    for obj in snapshot.of_kind("Slot")[:1]:
        for c in obj.get("status", {}).get("conditions", ()):
            if c.get("type") == "StateDirWritable" and c.get("status") == "False":
                print(
                    f"Warning: Node StateDirWritable=False ({c.get('reason')}): {c.get('message')}",
                    file=sys.stderr,
                )


def _spec_object(obj: Mapping[str, Any]) -> Slot | Job | None:
    """The published object's spec as a model again (its quantities read back exactly)."""
    model = Job if obj.get("kind") == "Job" else Slot
    meta = obj.get("metadata", {})
    try:
        return model.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": obj.get("kind"),
                "metadata": {
                    k: v for k, v in meta.items() if k in ("name", "labels", "annotations")
                },
                "spec": obj.get("spec", {}),
            }
        )
    except ValidationError:
        return None


def _statuses(snapshot: Snapshot) -> tuple[list[JobStatus], list[SlotStatus]]:
    jobs = [job_status_of(o) for o in snapshot.of_kind("Job")]
    slots = [slot_status_of(o, jobs) for o in snapshot.of_kind("Slot")]
    return jobs, slots


def render_table(snapshot: Snapshot, resource: str, names: set[str] | None, wide: bool) -> str:
    """The `get` table of `resource` (plural), of `names` only when given."""
    kind = KIND_OF[resource]
    created = {o["metadata"]["name"]: created_of(o) for o in snapshot.of_kind(kind)}
    jobs, slots = _statuses(snapshot)
    if resource == "jobs":
        chosen = [s for s in jobs if names is None or s.name in names]
        usage = job_usage(CgroupFS(snapshot.root), chosen) if wide else None
        return jobs_table(chosen, created, snapshot.now, wide, usage)
    specs = {o["metadata"]["name"]: _spec_object(o) for o in snapshot.of_kind("Slot")}
    picked = [s for s in slots if names is None or s.name in names]
    defined = {n: s for n, s in specs.items() if isinstance(s, Slot)}
    return slots_table(picked, defined, created, snapshot.now, wide)


def run_get(snapshot: Snapshot, resource: str, name: str | None, output: str) -> int:
    """The slots or jobs (`resource`, plural) as a table, JSON or YAML."""
    announce(snapshot)
    kind = KIND_OF[resource]
    objects = snapshot.of_kind(kind)
    if name is not None:
        objects = [o for o in objects if o["metadata"]["name"] == name]
        if not objects:
            return _not_found(kind.lower(), name, snapshot.of_kind(kind))
    if output in ("json", "yaml"):
        data = (
            objects[0]
            if name is not None
            else {"apiVersion": API_VERSION, "kind": f"{kind}List", "items": objects}
        )
        print(dump(data, output))
    elif not objects:
        print(f"No {resource} found.", file=sys.stderr)
    else:
        names = {name} if name is not None else None
        print(render_table(snapshot, resource, names, output == "wide"))
    return 0


def show_top(snapshot: Snapshot, resources: list[str], sort_by: str, interval: float) -> int:
    """`wnr top`: what the published slots and running jobs use now."""
    announce(snapshot)
    jobs, slots = _statuses(snapshot)
    specs = {o["metadata"]["name"]: _spec_object(o) for o in snapshot.of_kind("Slot")}
    defined = {n: s for n, s in specs.items() if isinstance(s, Slot)}
    fs = CgroupFS(snapshot.root)
    by_job, by_slot = {j.name: j for j in jobs}, {s.name: s for s in slots}
    return run_top(fs, by_job, by_slot, defined, resources, sort_by, interval)


def watch_get(
    client: Client, resource: str, name: str | None, wide: bool, until: Callable[[], bool]
) -> int:
    """`get -w`: the table, then a row each time an object changes (or goes), until `until`."""
    snapshot = client.snapshot()
    announce(snapshot)
    kind = KIND_OF[resource]
    print(render_table(snapshot, resource, {name} if name else None, wide), flush=True)
    last = _of(snapshot, kind, name)
    while not until():
        client.sleep(0.2)
        snapshot = client.snapshot()
        now = _of(snapshot, kind, name)
        changed = {n for n, o in now.items() if last.get(n) != o}
        if changed:
            rows = render_table(snapshot, resource, changed, wide).splitlines()[1:]
            print("\n".join(rows), flush=True)
        for gone in sorted(set(last) - set(now)):
            print(f"{gone}   <deleted>", flush=True)
        last = now
    return 0


def _of(snapshot: Snapshot, kind: str, name: str | None) -> dict[str, dict[str, Any]]:
    found = {o["metadata"]["name"]: o for o in snapshot.of_kind(kind)}
    return {n: o for n, o in found.items() if name is None or n == name}


def run_describe(snapshot: Snapshot, resource: str, name: str, events: int) -> int:
    """One object's spec, status, conditions and its last `events` events."""
    announce(snapshot)
    kind = KIND_OF[resource]
    obj = snapshot.objects.get((kind, name))
    if obj is None:
        return _not_found(kind.lower(), name, snapshot.of_kind(kind))
    recent = snapshot.events.recent(f"{kind}/{name}", events)
    identity = _identity(obj)
    source = obj.get("status", {}).get("specSource")
    jobs, slots = _statuses(snapshot)
    spec = _spec_object(obj)
    if kind == "Job":
        status = next(j for j in jobs if j.name == name)
        job = spec if isinstance(spec, Job) else None
        usage = job_usage(CgroupFS(snapshot.root), [status]).get(name)
        text = describe_job(
            job, status, recent, snapshot.now, source, identity=identity, usage=usage
        )
        print(text)
        return 0
    slot_status = next(s for s in slots if s.name == name)
    members = [j for j in jobs if j.slot == name]
    slot = spec if isinstance(spec, Slot) else None
    usage = slot_usage(CgroupFS(snapshot.root), [slot_status]).get(name)
    text = describe_slot(
        slot, slot_status, members, recent, snapshot.now, source, identity=identity, usage=usage
    )
    print(text)
    return 0


def _identity(obj: Mapping[str, Any]) -> list[tuple[str, object]]:
    meta, status = obj.get("metadata", {}), obj.get("status", {})
    pairs: list[tuple[str, object]] = [
        ("UID", meta.get("uid")),
        ("Created", meta.get("creationTimestamp")),
        ("Generation", meta.get("generation")),
        ("Observed", status.get("observedGeneration")),
    ]
    if meta.get("deletionTimestamp"):
        pairs.append(("Deleted", meta["deletionTimestamp"]))
    return pairs


def _not_found(kind: str, name: str, known: list[dict[str, Any]]) -> int:
    names = sorted(o["metadata"]["name"] for o in known)
    listed = ", ".join(names) if names else "none"
    print(f'wnr: error: {kind} "{name}" not found (known: {listed})', file=sys.stderr)
    return 1
