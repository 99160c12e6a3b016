"""Pressure stall information of a job's cgroup (cpu/memory/io.pressure); part of observe.

The kernel's PSI (Linux 4.20+, unless booted psi=0) counts, per cgroup, the
microseconds in which at least one task waited for a CPU, for memory (reclaim,
swap-in, refaults) or for I/O: the `some` line's `total=`. Two samples give the
share of the time between them; the sampler (reconciler.observe.usage) keeps the
previous totals and the idle policy reads the shares (model.observed.Stall).
"""

from __future__ import annotations

from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.observed import Stall

RESOURCES = ("cpu", "memory", "io")


def stall_totals(fs: CgroupFS, rel: str) -> tuple[int, int, int] | None:
    """The `some total=` microseconds of cpu, memory and io; None where the kernel has no PSI."""
    totals = []
    for resource in RESOURCES:
        total = some_total(fs.read(rel, f"{resource}.pressure"))
        if total is None:
            return None
        totals.append(total)
    return totals[0], totals[1], totals[2]


def some_total(text: str | None) -> int | None:
    """`total=` of the `some` line of a pressure file; None when it has none."""
    for line in (text or "").splitlines():
        if line.startswith("some "):
            for item in line.split():
                key, _, value = item.partition("=")
                if key == "total" and value.isdigit():
                    return int(value)
    return None


def stall_between(
    before: tuple[float, tuple[int, int, int]], after: tuple[float, tuple[int, int, int]]
) -> Stall | None:
    """The shares of the time between two samples (time, totals) spent stalled; None for no
    time between them."""
    elapsed = after[0] - before[0]
    if elapsed <= 0:
        return None
    cpu, memory, io = (
        min(1.0, max(0, b - a) / 1e6 / elapsed) for a, b in zip(before[1], after[1], strict=True)
    )
    return Stall(cpu, memory, io)
