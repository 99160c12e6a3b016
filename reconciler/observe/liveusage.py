"""Live usage of a job's or slot's cgroup, read on demand for `wnr top`, `get -o wide` and
`describe`.

Part of observe, beside the enforcement sampler (observe.usage, whose readers it
reuses): CPU seconds from `cpu.stat usage_usec` (in every cgroup2 cgroup, controller
or not); memory as the working set (reconciler.observe.workingset) from `memory.stat`
where the memory controller is enabled, beside `memory.current` and `memory.peak`, else
sampled from the processes below the cgroup; tasks
from `pids.current`, else counted in `cgroup.threads`. Everything goes through
CgroupFS. A cgroup that vanishes while it is read (its job just ended) reads as None.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from collections.abc import Callable, Mapping

from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.errors import CgroupError
from reconciler.model.usage import KERNEL, SAMPLED, LiveUsage, cores_between
from reconciler.observe.usage import usage_usec
from reconciler.observe.workingset import kernel_working_set, sampled_working_set

# What reading a cgroup that rmdir removed under us fails with.
_VANISHED = frozenset({errno.ENOENT, errno.ENODEV})


def live_usage(fs: CgroupFS, rel: str) -> LiveUsage | None:
    """What the cgroup `rel` (and everything nested in it) uses now; None once it is gone."""
    try:
        cpu = cpu_seconds(fs, rel)
        if cpu is None:
            return None
        memory, source = kernel_working_set(fs, rel), KERNEL
        if memory is None:
            memory, source = sampled_working_set(fs.procs_tree(rel)), SAMPLED
        pids = kernel_pids(fs, rel)
        if pids is None:
            pids = fs.threads_tree(rel)
        # Removed between the reads, the sampled figures would be zeros that mean nothing.
        if not fs.exists(rel):
            return None
    except CgroupError as exc:
        if exc.errno in _VANISHED:
            return None
        raise
    return LiveUsage(
        cpu_seconds=cpu,
        memory_bytes=memory,
        source=source,
        pids=pids,
        current_bytes=parse_counter(fs.read(rel, "memory.current")),
        peak_bytes=parse_counter(fs.read(rel, "memory.peak")),
    )


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
