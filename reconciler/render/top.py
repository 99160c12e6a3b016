"""The tables of `wnr top slots|jobs` (like kubectl top) and the usage cells `get -o wide`
and `describe` share.

Takes rows already chosen and ordered (reconciler.top gathers and sorts them); reads only
the statuses, specs and usage it is given; prints nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.model.api import Slot
from reconciler.model.quantity import format_bytes, format_millicpus
from reconciler.model.usage import KERNEL, LiveUsage
from reconciler.render.formats import NONE, human_bytes, table
from reconciler.status import JobStatus, SlotStatus


def cores(value: float | None) -> str:
    """A CPU rate in millicores, as kubectl top prints it (`250m`)."""
    return NONE if value is None else f"{round(value * 1000)}m"


def cpu_seconds(usage: LiveUsage | None) -> str:
    """The cumulative CPU seconds of a cgroup, to two decimals."""
    return NONE if usage is None else f"{usage.cpu_seconds:.2f}"


def memory(usage: LiveUsage | None) -> str:
    """The working set in binary units (`64.2Mi`), as `kubectl top` shows it."""
    return NONE if usage is None else human_bytes(usage.memory_bytes)


def memory_source(usage: LiveUsage) -> str:
    """How the memory figure was taken, for `describe`."""
    if usage.source == KERNEL:
        return "kernel: memory.stat anon+shmem+kernel_stack, +swap"
    return "sampled: Pss_Anon+Pss_Shmem+SwapPss of its processes, no memory controller"


def usage_cells(usage: LiveUsage | None) -> list[str]:
    """The CPU(S), MEMORY and PIDS cells of `get jobs -o wide`; <none> when not running."""
    return [cpu_seconds(usage), memory(usage), NONE if usage is None else str(usage.pids)]


def _of(used: str, limit: str | None) -> str:
    return used if limit is None else f"{used}/{limit}"


def top_jobs_table(rows: Sequence[tuple[JobStatus, LiveUsage]]) -> str:
    """`wnr top jobs`: NAME SLOT CPU(cores) CPU(s) MEMORY PIDS, in the order given."""
    headers = ["NAME", "SLOT", "CPU(cores)", "CPU(s)", "MEMORY", "PIDS"]
    cells = [
        [s.name, s.slot or NONE, cores(u.cores), cpu_seconds(u), memory(u), str(u.pids)]
        for s, u in rows
    ]
    return table(headers, cells)


def top_slots_table(rows: Sequence[tuple[SlotStatus, LiveUsage]], slots: Mapping[str, Slot]) -> str:
    """`wnr top slots`: NAME CPU(cores) CPU(s) MEMORY PIDS JOBS, each amount beside the
    slot's limit where its spec sets one (`250m/2`, `64Mi/1Gi`, `3/100`)."""
    headers = ["NAME", "CPU(cores)", "CPU(s)", "MEMORY", "PIDS", "JOBS"]
    cells: list[list[str]] = []
    for s, u in rows:
        cpus, mem, pids = _limits(slots.get(s.name))
        cells.append(
            [
                s.name,
                _of(cores(u.cores), cpus),
                cpu_seconds(u),
                _of(memory(u), mem),
                _of(str(u.pids), pids),
                f"{len(s.active)}/{len(s.jobs)}",
            ]
        )
    return table(headers, cells)


def _limits(slot: Slot | None) -> tuple[str | None, str | None, str | None]:
    """The slot's CPU, memory and pids limits as quantities; None where it sets none."""
    if slot is None:
        return None, None, None
    r = slot.spec.resources
    return (
        format_millicpus(r.cpus) if r.cpus is not None else None,
        format_bytes(r.memory) if r.memory is not None else None,
        str(r.pids) if r.pids is not None else None,
    )
