"""The text of `wnr describe job|slot NAME`: metadata, spec, status, conditions and events.

Reads only the object, its status and the events it is given; prints nothing itself.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.model.api import Job, Slot
from reconciler.model.event import Event
from reconciler.model.quantity import format_bytes, format_millicpus
from reconciler.model.usage import LiveUsage
from reconciler.render.formats import NONE, age, dump, human_bytes, table
from reconciler.render.top import memory, memory_source
from reconciler.status import Condition, JobStatus, SlotStatus, spec_data, timestamp


def _fields(pairs: Sequence[tuple[str, object]], indent: str = "") -> list[str]:
    width = max(len(key) for key, _ in pairs) + 2
    lines = []
    for key, value in pairs:
        text = NONE if value is None or value == "" else str(value)
        lines.append(f"{indent}{key + ':':<{width}}{text}".rstrip())
    return lines


def _spec_lines(obj: Slot | Job | None) -> list[str]:
    if obj is None:
        return ["Spec:  <none> (removed)"]
    text = dump(spec_data(obj), "yaml")
    return ["Spec:", textwrap.indent(text, "  ")]


def _conditions_lines(conditions: Sequence[Condition]) -> list[str]:
    if not conditions:
        return ["Conditions:  <none>"]
    rows = [[c.type, c.status, c.reason, c.message or NONE] for c in conditions]
    return ["Conditions:", table(["Type", "Status", "Reason", "Message"], rows, "  ", True)]


def _events_lines(events: Sequence[Event], now: float) -> list[str]:
    if not events:
        return ["Events:  <none>"]
    rows = [[e.type, e.reason, age(now - e.time), e.message or NONE] for e in events]
    return ["Events:", table(["Type", "Reason", "Age", "Message"], rows, "  ", True)]


def _meta_lines(
    kind: str,
    obj: Slot | Job | None,
    name: str,
    source: str | None,
    identity: Sequence[tuple[str, object]],
) -> list[str]:
    labels = obj.metadata.labels if obj is not None else {}
    annotations = obj.metadata.annotations if obj is not None else {}
    return _fields(
        [
            ("Name", name),
            ("Kind", kind),
            *identity,
            ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))),
            ("Annotations", ", ".join(f"{k}={v}" for k, v in sorted(annotations.items()))),
            ("Source", source),
        ]
    )


def _usage_lines(usage: LiveUsage | None, what: str) -> list[str]:
    if usage is None:
        return [f"Usage:  <none> ({what})"]
    lines = ["Usage:"]
    lines += _fields(
        [
            ("CPU Seconds", f"{usage.cpu_seconds:.3f}"),
            ("Memory", f"{memory(usage)} working set ({memory_source(usage)})"),
            ("Memory Current", _bytes_or_none(usage.current_bytes, "memory.current, cache too")),
            ("Memory Peak", _bytes_or_none(usage.peak_bytes, "memory.peak, cache too")),
            ("Pids", usage.pids),
        ],
        "  ",
    )
    return lines


def describe_job(
    job: Job | None,
    status: JobStatus,
    events: Sequence[Event],
    now: float,
    source: str | None,
    *,
    identity: Sequence[tuple[str, object]] = (),
    usage: LiveUsage | None = None,
) -> str:
    """`wnr describe job NAME`: metadata (with uid and generations in `identity`), spec,
    status, live usage while it runs (`usage`), conditions, recent events."""
    s = status
    lines = _meta_lines("Job", job, s.name, source, identity)
    lines += _spec_lines(job)
    lines.append("Status:")
    lines += _fields(
        [
            ("Phase", s.phase),
            ("Reason", s.reason),
            ("Message", s.message),
            ("Slot", s.slot),
            ("User", f"{s.user} (uid {s.uid})" if s.user else None),
            ("Attempts", s.attempts),
            ("Exit Code", s.exit_code),
            ("Start Time", timestamp(s.start_time)),
            ("Finish Time", timestamp(s.finish_time)),
            ("CPU Seconds", None if s.cpu_seconds is None else f"{s.cpu_seconds:.3f}"),
            (
                "Peak Memory",
                None if s.peak_memory_bytes is None else human_bytes(s.peak_memory_bytes),
            ),
            ("Cgroup", s.cgroup),
        ],
        "  ",
    )
    lines += _usage_lines(usage, "not running")
    lines += _conditions_lines(s.conditions)
    lines += _events_lines(events, now)
    return "\n".join(lines)


def describe_slot(  # noqa: PLR0917
    slot: Slot | None,
    status: SlotStatus,
    jobs: Sequence[JobStatus],
    events: Sequence[Event],
    now: float,
    source: str | None,
    *,
    identity: Sequence[tuple[str, object]] = (),
    usage: LiveUsage | None = None,
) -> str:
    """`wnr describe slot NAME`: metadata, spec, status with resources, the totals its cgroup
    uses (`usage`), conditions, its jobs, recent events."""
    s = status
    lines = _meta_lines("Slot", slot, s.name, source, identity)
    lines += _spec_lines(slot)
    lines.append("Status:")
    lines += _fields(
        [
            ("Phase", s.phase),
            ("Message", s.message),
            ("User", _run_as_text(s.run_as)),
            ("Cgroup", s.cgroup),
        ],
        "  ",
    )
    resources = [
        ["cpus", *_resource_cells(s, "cpus", format_millicpus)],
        ["memory", *_resource_cells(s, "memory", format_bytes)],
    ]
    lines.append("Resources:")
    lines.append(table(["Resource", "Capacity", "Allocated", "Free"], resources, "  ", True))
    lines += _usage_lines(usage, "no cgroup")
    lines += _conditions_lines(s.conditions)
    if jobs:
        rows = [[j.name, j.phase, j.reason or NONE, str(j.attempts)] for j in jobs]
        lines += ["Jobs:", table(["Name", "Phase", "Reason", "Attempts"], rows, "  ", True)]
    else:
        lines.append("Jobs:  <none>")
    lines += _events_lines(events, now)
    return "\n".join(lines)


def _resource_cells(status: SlotStatus, key: str, fmt: Any) -> list[str]:
    cells = []
    for amounts in (status.capacity, status.allocated, status.free):
        value = getattr(amounts, key)
        cells.append("unlimited" if value is None else fmt(value))
    return cells


def _run_as_text(run_as: Mapping[str, Any] | None) -> str | None:
    """`nobody (uid 65534, gid 65534, groups 65534)`, from a slot status's runAs."""
    if not run_as:
        return None
    groups = ",".join(str(g) for g in run_as.get("groups", ()))
    return f"{run_as['user']} (uid {run_as['uid']}, gid {run_as['gid']}, groups {groups})"


def _bytes_or_none(value: int | None, what: str) -> str | None:
    """`1.2Gi (memory.current, cache too)`; None (shown `<none>`) where the kernel has none."""
    return None if value is None else f"{human_bytes(value)} ({what})"
