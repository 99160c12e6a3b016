"""Live usage of a job's or slot's cgroup, read on demand for `wnr top`, `get -o wide` and
`describe`.

Part of observe, below the enforcement sampler (observe.usage, which reuses its
readers): CPU seconds from `cpu.stat usage_usec` (in every cgroup2 cgroup, controller
or not); memory as the working set (reconciler.observe.workingset) from `memory.stat`
where the memory controller is enabled, beside `memory.current` and `memory.peak`, else
sampled from the processes below the cgroup; tasks
from `pids.current`, else counted in `cgroup.threads`. Everything goes through
CgroupFS. A cgroup that vanishes while it is read (its job just ended) reads as None.
With `detail` (the metrics sample the enforcement sampler takes, reconciler.observe.usage)
also swap, CPU throttling and the PSI totals (reconciler.observe.pressure).
"""

from __future__ import annotations

import dataclasses
import errno
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.host.cgroupfs import CgroupFS, flat_keyed
from reconciler.model.errors import CgroupError
from reconciler.model.usage import KERNEL, SAMPLED, LiveUsage, cores_between
from reconciler.observe.pressure import stall_totals
from reconciler.observe.workingset import (
    ProportionalCache,
    kernel_working_set,
    sampled_working_set,
)


@dataclass(frozen=True)
class KnownProcesses:
    """What the enforcement sampler has just read of a job cgroup with nothing nested in
    it, so that its metrics sample does not read it again."""

    pids: tuple[int, ...]
    bounds: tuple[int, ...] | None = None  # each process's status counters, if read
    tasks: int | None = None  # cgroup.threads counted, if read


# What reading a cgroup that rmdir removed under us fails with.
_VANISHED = frozenset({errno.ENOENT, errno.ENODEV})


def live_usage(
    fs: CgroupFS,
    rel: str,
    detail: bool = False,
    *,
    cpu_stat: str | None = None,
    pressure: tuple[int, int, int] | None = None,
    reuse: ProportionalCache | None = None,
    controllers: frozenset[str] | None = None,
    known: KnownProcesses | None = None,
) -> LiveUsage | None:
    """What the cgroup `rel` (and everything nested in it) uses now; None once it is gone.
    With `detail`, also swap, throttling and pressure (for metrics). The sampler passes the
    `cpu.stat` text and PSI totals (microseconds) it has just read itself, the figures of
    processes whose memory did not move (`reuse`), and the controllers the cgroup has
    (`controllers`; None: unknown), whose missing files it then does not try, and what it
    read of the cgroup's processes (`known`)."""
    memory_files = controllers is None or "memory" in controllers
    try:
        stat = cpu_stat if cpu_stat is not None else fs.read(rel, "cpu.stat")
        if stat is None:
            return None
        memory, source = (kernel_working_set(fs, rel) if memory_files else None), KERNEL
        if memory is None:
            if known is not None:
                memory = sampled_working_set(known.pids, reuse=reuse, bounds=known.bounds)
            else:
                memory = sampled_working_set(fs.procs_tree(rel), reuse=reuse)
            source = SAMPLED
        pids = kernel_pids(fs, rel) if controllers is None or "pids" in controllers else None
        if pids is None and known is not None:
            pids = known.tasks
        usage = LiveUsage(
            cpu_seconds=usage_usec(stat) / 1e6,
            memory_bytes=memory,
            source=source,
            pids=fs.threads_tree(rel) if pids is None else pids,
            current_bytes=parse_counter(fs.read(rel, "memory.current")) if memory_files else None,
            peak_bytes=parse_counter(fs.read(rel, "memory.peak")) if memory_files else None,
        )
        if detail:
            usage = _detailed(fs, rel, stat, usage, pressure, memory_files)
        # Removed between the reads, the sampled figures would be zeros that mean nothing.
        if not fs.exists(rel):
            return None
    except CgroupError as exc:
        if exc.errno in _VANISHED:
            return None
        raise
    return usage


def _detailed(  # noqa: PLR0917 - live_usage's own step
    fs: CgroupFS,
    rel: str,
    stat: str,
    usage: LiveUsage,
    pressure: tuple[int, int, int] | None,
    memory_files: bool,
) -> LiveUsage:
    """`usage` with swap, throttled time (from the cpu.stat already read) and PSI totals."""
    throttled = flat_keyed(stat).get("throttled_usec")
    totals = pressure if pressure is not None else stall_totals(fs, rel)
    swap = parse_counter(fs.read(rel, "memory.swap.current")) if memory_files else None
    return dataclasses.replace(
        usage,
        swap_bytes=swap,
        throttled_seconds=None if throttled is None else throttled / 1e6,
        stall_seconds=_seconds(totals),
    )


def _seconds(usec: tuple[int, int, int] | None) -> tuple[float, float, float] | None:
    return None if usec is None else (usec[0] / 1e6, usec[1] / 1e6, usec[2] / 1e6)


def usage_usec(cpu_stat: str | None) -> int:
    """`usage_usec` of a cpu.stat (its first line; present with or without the cpu controller)."""
    if cpu_stat is None:
        return 0
    key, _, rest = cpu_stat.partition(" ")
    if key == "usage_usec":
        return int(rest.partition("\n")[0])
    return flat_keyed(cpu_stat).get("usage_usec", 0)


def cpu_seconds(fs: CgroupFS, rel: str) -> float | None:
    """The CPU time the cgroup's tasks have used since it was created; None when it is gone."""
    text = fs.read(rel, "cpu.stat")
    return None if text is None else usage_usec(text) / 1e6


def kernel_pids(fs: CgroupFS, rel: str) -> int | None:
    """`pids.current`, the tasks in the subtree; None where the pids controller is not enabled."""
    return parse_counter(fs.read(rel, "pids.current"))


def parse_counter(text: str | None) -> int | None:
    """A single-value interface file (`memory.current`, `pids.current`) as an integer."""
    if text is None or not text.isdigit():
        return None
    return int(text)


def live_usages(
    fs: CgroupFS,
    cgroups: Mapping[str, str],
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, LiveUsage]:
    """Usage of each named cgroup (name -> relative path), with the CPU rate in cores over
    `interval` seconds (none where the interval is 0); cgroups that vanished are left out."""
    before: dict[str, tuple[float, float]] = {}
    if interval > 0:
        for name, rel in cgroups.items():
            at = clock()
            cpu = _cpu_or_none(fs, rel)
            if cpu is not None:
                before[name] = (cpu, at)
        sleep(interval)
    result: dict[str, LiveUsage] = {}
    for name, rel in cgroups.items():
        at = clock()
        usage = live_usage(fs, rel)
        if usage is None:
            continue
        if name in before:
            cpu, at_before = before[name]
            rate = cores_between(cpu, at_before, usage.cpu_seconds, at)
            usage = dataclasses.replace(usage, cores=rate)
        result[name] = usage
    return result


def _cpu_or_none(fs: CgroupFS, rel: str) -> float | None:
    try:
        return cpu_seconds(fs, rel)
    except CgroupError as exc:
        if exc.errno in _VANISHED:
            return None
        raise
