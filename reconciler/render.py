"""Output of `wnr plan`, `apply`, `get` and `describe`: plans, tables and descriptions as text
(colored on a terminal), JSON or YAML.

Reads only the pass results, statuses and events it is given; prints nothing itself.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML

from reconciler.actions import CreateCgroup, KillCgroup, RemoveCgroup, Signal, StartJob
from reconciler.events import Event
from reconciler.models import Job, Slot
from reconciler.quantity import format_bytes, format_millicpus
from reconciler.reconcile import PassResult
from reconciler.status import (
    TRUE,
    Condition,
    JobStatus,
    SlotStatus,
    spec_data,
    timestamp,
)

_GREEN, _RED, _YELLOW, _DIM, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"


def plan_data(result: PassResult) -> dict[str, Any]:
    """The machine-readable plan: actions, fingerprint, notes, spec errors, job phases."""
    return {
        "actions": [a.to_dict() for a in result.plan.actions],
        "fingerprint": result.plan.fingerprint,
        "notes": [
            {"object": n.obj, "kind": n.kind, "message": n.message} for n in result.plan.notes
        ],
        "errors": [str(e) for e in result.desired.errors],
        "jobs": {
            name: {
                "phase": str(v.phase),
                "reason": v.reason,
                "message": v.message,
                "attempts": v.attempts,
            }
            for name, v in sorted(result.plan.jobs.items())
        },
        "root": result.observed.root_path,
    }


def plan_text(result: PassResult, color: bool) -> str:
    """A human-readable diff: + creates and starts, - removals and kills, ~ changes."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    lines = [f"cgroup root: {result.observed.root_path}"]
    actions = result.plan.actions
    if not actions:
        lines.append("No changes: the node matches the specs.")
    else:
        lines.append(f"{len(actions)} action(s), fingerprint {result.plan.fingerprint}:")
    for action in actions:
        if isinstance(action, CreateCgroup | StartJob):
            lines.append(paint(_GREEN, f"+ {action.describe()}"))
        elif isinstance(action, RemoveCgroup | KillCgroup | Signal):
            lines.append(paint(_RED, f"- {action.describe()}"))
        else:
            lines.append(paint(_YELLOW, f"~ {action.describe()}"))
    if result.plan.jobs:
        lines.append("Jobs:")
        for name, view in sorted(result.plan.jobs.items()):
            detail = " ".join(part for part in (view.reason, view.message) if part)
            lines.append(f"  {name:<24} {view.phase:<10} {detail}".rstrip())
    if result.plan.notes:
        lines.append("Notes:")
        lines.extend(paint(_DIM, f"  {note}") for note in result.plan.notes)
    return "\n".join(lines)


def dump(data: dict[str, Any], fmt: str) -> str:
    """Serialise data as JSON or YAML."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    buffer = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, buffer)
    return buffer.getvalue().rstrip("\n")


NONE = "<none>"


def age(seconds: float | None) -> str:
    """A duration the way kubectl prints AGE: `45s`, `5m12s`, `3h`, `2d4h`, `1y30d`."""
    if seconds is None:
        return NONE
    total = int(seconds)
    if total < 0:
        return "0s"
    minutes, hours = total // 60, total // 3600
    days, years = hours // 24, hours // (24 * 365)
    steps: list[tuple[bool, str]] = [
        (total < 120, f"{total}s"),
        (minutes < 10, f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"),
        (hours < 3, f"{minutes}m"),
        (hours < 8, f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"),
        (hours < 48, f"{hours}h"),
        (days < 8, f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"),
        (years < 2, f"{days}d"),
        (years < 8, f"{years}y{days % 365}d" if days % 365 else f"{years}y"),
    ]
    return next((text for fits, text in steps if fits), f"{years}y")


def human_bytes(value: int | None) -> str:
    """Bytes in binary units to one decimal (`10.5Mi`), for measured amounts."""
    if value is None:
        return NONE
    amount, unit = float(value), ""
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, suffix
    return f"{amount:.1f}".removesuffix(".0") + unit


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    indent: str = "",
    underline: bool = False,
) -> str:
    """Columns padded to their widest cell, three spaces apart, like kubectl; `describe`
    underlines its headers."""
    rule = [["-" * len(h) for h in headers]] if underline else []
    every = [headers, *rule, *rows]
    widths = [max(len(str(row[i])) for row in every) for i in range(len(headers))]
    lines = [
        indent + "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in every
    ]
    return "\n".join(line.rstrip() for line in lines)


def conditions_summary(conditions: Sequence[Condition]) -> str:
    """`CgroupReady,LimitsEnforced=False,AgentsReady=Unknown`: true ones by name alone."""
    return ",".join(c.type if c.status == TRUE else f"{c.type}={c.status}" for c in conditions)


def _amount(allocated: int | None, capacity: int | None, fmt: Any) -> str:
    used = fmt(allocated or 0)
    return f"{used}/{fmt(capacity)}" if capacity is not None else f"{used}/unlimited"


def jobs_table(
    statuses: Sequence[JobStatus], created: Mapping[str, float | None], now: float, wide: bool
) -> str:
    """`wnr get jobs`: NAME SLOT PHASE REASON ATTEMPTS AGE; wide adds exit code, CPU seconds,
    peak memory and the message."""
    headers = ["NAME", "SLOT", "PHASE", "REASON", "ATTEMPTS", "AGE"]
    if wide:
        headers += ["EXIT", "CPU-SECONDS", "PEAK-MEMORY", "MESSAGE"]
    rows: list[list[str]] = []
    for s in statuses:
        since = created.get(s.name)
        row = [
            s.name,
            s.slot or NONE,
            s.phase,
            s.reason or NONE,
            str(s.attempts),
            age(now - since if since is not None else None),
        ]
        if wide:
            row += [
                NONE if s.exit_code is None else str(s.exit_code),
                NONE if s.cpu_seconds is None else f"{s.cpu_seconds:.2f}",
                human_bytes(s.peak_memory_bytes),
                s.message or NONE,
            ]
        rows.append(row)
    return table(headers, rows)


def slots_table(
    statuses: Sequence[SlotStatus],
    slots: Mapping[str, Slot],
    created: Mapping[str, float | None],
    now: float,
    wide: bool,
) -> str:
    """`wnr get slots`: NAME PHASE CPUS MEMORY JOBS CONDITIONS (wide: state, deadline, age, cgroup).

    CPUS and MEMORY are allocated/capacity; JOBS is active/total."""
    headers = ["NAME", "PHASE", "CPUS", "MEMORY", "JOBS", "CONDITIONS"]
    if wide:
        headers += ["STATE", "DEADLINE", "AGE", "CGROUP"]
    rows: list[list[str]] = []
    for s in statuses:
        row = [
            s.name,
            s.phase,
            _amount(s.allocated.cpus, s.capacity.cpus, format_millicpus),
            _amount(s.allocated.memory, s.capacity.memory, format_bytes),
            f"{len(s.active)}/{len(s.jobs)}",
            conditions_summary(s.conditions),
        ]
        if wide:
            slot = slots.get(s.name)
            since = created.get(s.name)
            deadline = slot.spec.deadline if slot is not None else None
            row += [
                str(slot.spec.state) if slot is not None else "Deleted",
                deadline.isoformat() if deadline is not None else NONE,
                age(now - since if since is not None else None),
                s.cgroup or NONE,
            ]
        rows.append(row)
    return table(headers, rows)


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


def _meta_lines(kind: str, obj: Slot | Job | None, name: str, source: str | None) -> list[str]:
    labels = obj.metadata.labels if obj is not None else {}
    annotations = obj.metadata.annotations if obj is not None else {}
    return _fields(
        [
            ("Name", name),
            ("Kind", kind),
            ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))),
            ("Annotations", ", ".join(f"{k}={v}" for k, v in sorted(annotations.items()))),
            ("Source", source),
        ]
    )


def describe_job(
    job: Job | None, status: JobStatus, events: Sequence[Event], now: float, source: str | None
) -> str:
    """`wnr describe job NAME`: metadata, spec, status, conditions, recent events."""
    s = status
    lines = _meta_lines("Job", job, s.name, source)
    lines += _spec_lines(job)
    lines.append("Status:")
    lines += _fields(
        [
            ("Phase", s.phase),
            ("Reason", s.reason),
            ("Message", s.message),
            ("Slot", s.slot),
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
) -> str:
    """`wnr describe slot NAME`: metadata, spec, status with resources, conditions, its jobs,
    recent events."""
    s = status
    lines = _meta_lines("Slot", slot, s.name, source)
    lines += _spec_lines(slot)
    lines.append("Status:")
    lines += _fields(
        [
            ("Phase", s.phase),
            ("Message", s.message),
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
