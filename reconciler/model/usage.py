"""What a running job's or slot's cgroup uses right now, as `wnr top`, `get -o wide` and
`describe` show it: plain data from observe (reconciler.observe.liveusage) to render.

Unlike `Usage` (model.observed), which the sampler keeps for enforcement, this is read
on demand and never reaches the planner.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where the working set came from: the kernel's own accounting (memory.stat), or summed over
# the cgroup's processes (smaps_rollup) where the memory controller is not enabled.
KERNEL = "kernel"
SAMPLED = "sampled"


@dataclass(frozen=True)
class LiveUsage:
    """One cgroup's usage at one moment; `cores` only where two reads measured a rate."""

    cpu_seconds: float
    # The working set: anonymous + shared memory + kernel stacks + swap, without the page
    # cache the kernel reclaims before it kills (reconciler.observe.workingset).
    memory_bytes: int
    source: str  # KERNEL or SAMPLED
    pids: int  # tasks (threads), as pids.current counts them
    cores: float | None = None
    # The kernel's memory.current and memory.peak (page cache included); None when sampled
    # (or, for the peak, before Linux 5.19).
    current_bytes: int | None = None
    peak_bytes: int | None = None
    # Read only for metrics (`live_usage(..., detail=True)`), each None where the kernel lacks
    # it: memory.swap.current, cpu.stat `throttled_usec` (the cpu controller), and the PSI
    # `some` totals of cpu, memory and io.pressure in seconds.
    swap_bytes: int | None = None
    throttled_seconds: float | None = None
    stall_seconds: tuple[float, float, float] | None = None


def cores_between(cpu_before: float, at_before: float, cpu_after: float, at_after: float) -> float:
    """The CPU rate in cores between two reads of a cgroup's CPU seconds (0 for no time)."""
    elapsed = at_after - at_before
    if elapsed <= 0:
        return 0.0
    return max(0.0, cpu_after - cpu_before) / elapsed
