"""Render resources as the list of `(file, value)` writes a cgroup needs; pure, used by the planner.

Values are normalised the way the kernel reads them back (memory in whole
pages, `cpu.max` as "quota period"), so a converged cgroup compares equal and
the planner plans nothing. The same list is what `wnr plan` prints.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model.api import Job, Slot

CPU_PERIOD_USEC = 100_000
# The kernel refuses a cpu.max quota below 1 ms.
CPU_MIN_QUOTA_USEC = 1_000

# Which controller provides each interface file wnr writes.
CONTROLLER_OF = {
    "cpu.max": "cpu",
    "memory.max": "memory",
    "memory.high": "memory",
    "memory.swap.max": "memory",
    "memory.oom.group": "memory",
    "pids.max": "pids",
    "io.weight": "io",
    "cpuset.cpus": "cpuset",
}

# What a freshly created cgroup reads back, so a new cgroup is not written needlessly.
KERNEL_DEFAULTS = {
    "cpu.max": f"max {CPU_PERIOD_USEC}",
    "memory.max": "max",
    "memory.high": "max",
    "memory.swap.max": "max",
    "memory.oom.group": "0",
    "pids.max": "max",
    "io.weight": "default 100",
    "cpuset.cpus": "",
}

# The order controllers are enabled and listed in, so plans and messages compare equal.
CONTROLLER_ORDER = ("cpuset", "cpu", "io", "memory", "pids")

# Job limits wnr enforces itself, by sampling, where the kernel lacks the controller.
SAMPLED_LIMITS = {"memory": "memory.max", "pids": "pids.max"}
SAMPLED_FILES = frozenset(SAMPLED_LIMITS.values())


def ordered(controllers: Iterable[str]) -> tuple[str, ...]:
    """Controllers in CONTROLLER_ORDER (unknown ones after, by name)."""
    return tuple(sorted(set(controllers), key=lambda c: (*CONTROLLER_ORDER, c).index(c)))


# A job's implicit files, shared: every job's Limits is kept for as long as its spec is.
_OOM_GROUP = frozenset({"memory.oom.group"})
_OOM_GROUP_NO_SWAP = frozenset({"memory.oom.group", "memory.swap.max"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource amounts for one cgroup, already parsed (bytes, millicores, counts)."""

    millicpus: int | None = None
    memory: int | None = None
    memory_high: int | None = None
    swap: int | None = None
    pids: int | None = None
    io_weight: int | None = None
    cpuset: str | None = None
    # memory.oom.group: the OOM killer takes the whole cgroup (jobs), not one process.
    oom_group: bool = False
    # Files set by wnr's own rules, not asked for by the spec: where the kernel cannot
    # enforce them there is nothing the admin asked for to report as unenforced.
    implicit: frozenset[str] = frozenset()

    @classmethod
    def of_slot(cls, slot: Slot) -> Limits:
        """A slot's limits from its spec (the planner writes them, status reports them). No
        oom.group: a job's OOM must not take its slot's agent and sibling jobs with it."""
        r = slot.spec.resources
        return cls(r.cpus, r.memory, r.memory_high, r.swap, r.pids, r.io_weight, slot.spec.cpuset)

    @classmethod
    def of_job(cls, job: Job, slot: Slot) -> Limits:
        """A job's limits: its requests, `memory.oom.group=1` (it dies whole, never half
        alive), and no swap unless the job asks for some or its slot allows swap (HTCondor's
        DISABLE_SWAP_FOR_JOB, on by default since 24.7.3)."""
        r = job.spec.resources
        implicit, swap = _OOM_GROUP, r.swap
        if swap is None and slot.spec.resources.swap is None:
            implicit, swap = _OOM_GROUP_NO_SWAP, 0
        return cls(
            millicpus=r.cpus,
            memory=r.memory,
            swap=swap,
            pids=r.pids,
            oom_group=True,
            implicit=implicit,
        )


def cpu_max(millicpus: int | None) -> str:
    """`cpu.max` for a CPU count: 1.5 CPUs -> "150000 100000"."""
    if millicpus is None:
        return KERNEL_DEFAULTS["cpu.max"]
    quota = max(CPU_MIN_QUOTA_USEC, millicpus * CPU_PERIOD_USEC // 1000)
    return f"{quota} {CPU_PERIOD_USEC}"


def memory_value(value: int | None, page_size: int) -> str:
    """A memory file value in bytes rounded down to whole pages, as the kernel stores it."""
    if value is None:
        return "max"
    return str(value // page_size * page_size)


def pids_max(value: int | None) -> str:
    """`pids.max` for a process count."""
    return "max" if value is None else str(value)


def io_weight(value: int | None) -> str:
    """`io.weight` as read back ("default N")."""
    return f"default {100 if value is None else value}"


def cpuset_list(value: str | None) -> str:
    """A CPU list in the kernel's read-back form: "3,0,1,2" -> "0-3"."""
    if not value:
        return ""
    cpus: set[int] = set()
    for part in value.split(","):
        first, _, last = part.partition("-")
        if int(last or first) < int(first):
            raise ValueError(f"invalid CPU range {part!r}: the end is below the start")
        cpus.update(range(int(first), int(last or first) + 1))
    ordered = sorted(cpus)
    ranges: list[str] = []
    start = previous = ordered[0]
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == previous + 1:
            previous = cpu
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if cpu is not None:
            start = previous = cpu
    return ",".join(ranges)


# Every pass renders every job's limits, and a fleet has few distinct ones.
@functools.lru_cache(maxsize=1024)
def render(limits: Limits, page_size: int) -> tuple[tuple[str, str], ...]:
    """Every limit file with its desired value, defaults included, so removing a limit resets it."""
    return (
        ("cpu.max", cpu_max(limits.millicpus)),
        ("memory.max", memory_value(limits.memory, page_size)),
        ("memory.high", memory_value(limits.memory_high, page_size)),
        ("memory.swap.max", memory_value(limits.swap, page_size)),
        ("memory.oom.group", "1" if limits.oom_group else "0"),
        ("pids.max", pids_max(limits.pids)),
        ("io.weight", io_weight(limits.io_weight)),
        ("cpuset.cpus", cpuset_list(limits.cpuset)),
    )


def is_set(file: str, value: str) -> bool:
    """Whether a rendered value asks for a limit (differs from the kernel's default)."""
    return KERNEL_DEFAULTS[file] != value
