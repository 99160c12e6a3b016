"""The tables of `wnr get jobs` and `wnr get slots` (text and `-o wide`), like kubectl get.

Reads only the statuses and creation times it is given; prints nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.model.api import Slot
from reconciler.model.quantity import format_bytes, format_millicpus
from reconciler.model.usage import LiveUsage
from reconciler.render.formats import NONE, age, human_bytes, table
from reconciler.render.top import usage_cells
from reconciler.status import TRUE, Condition, JobStatus, SlotStatus


def conditions_summary(conditions: Sequence[Condition]) -> str:
    """`CgroupReady,LimitsEnforced=False,AgentsReady=Unknown`: true ones by name alone."""
    return ",".join(c.type if c.status == TRUE else f"{c.type}={c.status}" for c in conditions)


def _amount(allocated: int | None, capacity: int | None, fmt: Any) -> str:
    used = fmt(allocated or 0)
    return f"{used}/{fmt(capacity)}" if capacity is not None else f"{used}/unlimited"


def jobs_table(
    statuses: Sequence[JobStatus],
    created: Mapping[str, float | None],
    now: float,
    wide: bool,
    usage: Mapping[str, LiveUsage] | None = None,
) -> str:
    """`wnr get jobs`: NAME SLOT PHASE REASON ATTEMPTS AGE; wide adds exit code, CPU seconds
    and peak memory of the last finished attempt, the live CPU(S), MEMORY and PIDS of a
    running job (`usage`, by job name; <none> for jobs not in it) and the message."""
    headers = ["NAME", "SLOT", "PHASE", "REASON", "ATTEMPTS", "AGE"]
    if wide:
        headers += ["EXIT", "CPU-SECONDS", "PEAK-MEMORY", "CPU(S)", "MEMORY", "PIDS", "MESSAGE"]
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
                *usage_cells((usage or {}).get(s.name)),
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
