"""A job's working set: the memory it holds that the kernel cannot just drop; part of observe.

Page cache (file-backed pages) is reclaimed under pressure before anything is
killed, so counting it makes a job reading big files look like it is running out
of memory (HTCondor's CGROUP_IGNORE_CACHE_MEMORY, kubernetes#43916). The working
set is anonymous memory + shared memory (tmpfs, shm) + kernel stacks, plus swap
where the job may swap:

- with the memory controller, from `memory.stat` (`anon`, `shmem`, `kernel_stack`)
  and `memory.swap.current`, beside `memory.current` and `memory.peak`, which
  include the cache (reconciler.observe.liveusage shows all three);
- without it (hybrid hosts), sampled per process from `/proc/<pid>/smaps_rollup`
  (`Pss_Anon + Pss_Shmem + SwapPss`), only once the cheap bounds, never less, pass
  the limit: on a node without swap first `/proc/<pid>/statm`'s resident pages
  (anonymous, file and shared: ~5 us a process), then `/proc/<pid>/status`
  (`RssAnon + RssShmem + VmSwap`, ~12 us; a payload mapping big libraries stops at
  this one). Kernels before 5.8 have no `Pss_Anon` there: PSS (file pages included)
  is used. "Never less" holds to the kernel's RSS counters, which it keeps per CPU and
  sums without the CPUs' pending deltas for statm and status (proc(5): "inaccurate"): a
  bound can fall short of the page walk by a few hundred KiB, far below any limit.

Used by the enforcement sampler (reconciler.observe.usage) and live usage.
"""

from __future__ import annotations

import os

from reconciler.host import procfs
from reconciler.host.cgroupfs import CgroupFS, flat_keyed
from reconciler.host.keptfiles import OwnerFiles

# memory.stat keys of the working set; memory.swap.current is added where it exists.
KERNEL_KEYS = ("anon", "shmem", "kernel_stack")


def kernel_working_set(fs: CgroupFS, rel: str) -> int | None:
    """anon + shmem + kernel_stack (+ swap) of a cgroup; None without the memory controller."""
    stat = fs.read(rel, "memory.stat")
    if stat is None:
        return None
    counters = flat_keyed(stat)
    swap = fs.read(rel, "memory.swap.current")
    swapped = int(swap) if swap is not None and swap.isdigit() else 0
    return sum(counters.get(key, 0) for key in KERNEL_KEYS) + swapped


def working_set_within(
    pids: tuple[int, ...], over: int, swap: bool, files: OwnerFiles | None = None
) -> tuple[int, tuple[int, ...] | None]:
    """The working set of the processes as far as a limit of `over` bytes needs it (a bound,
    never less, while that stays at or below `over`), and their `status` bounds where they
    were read. Without swap the resident pages of `statm` are tried first (through `files`,
    the sampler's kept descriptors, where given)."""
    if not swap:
        resident = sum(_resident_pages(pid, files) for pid in pids)
        if resident <= over:
            return resident, None
    bounds = resident_bounds(pids, swap)
    return sampled_working_set(pids, over, swap, bounds=bounds), bounds


def sampled_working_set(
    pids: tuple[int, ...],
    over: int | None = None,
    swap: bool = True,
    reuse: ProportionalCache | None = None,
    bounds: tuple[int, ...] | None = None,
) -> int:
    """The working set of the given processes, in bytes (processes that vanished count 0).

    smaps_rollup walks every page table (~40 us a process); `status` is counters (~5 us)
    and never less. While that bound stays at or below `over`, so does the working set,
    and the bound is returned instead. Without swap areas there is no swap to count.
    With `reuse`, a process whose bound has not moved since its last walk is not walked
    again (see ProportionalCache). `bounds`: each process's bound, already read.
    """
    if bounds is None and (over is not None or reuse is not None):
        bounds = resident_bounds(pids, swap)
    if over is not None and bounds is not None and sum(bounds) <= over:
        return sum(bounds)
    if reuse is not None and bounds is not None:
        return sum(reuse.proportional(pid, swap, b) for pid, b in zip(pids, bounds, strict=True))
    return sum(_proportional(pid, swap) for pid in pids)


def resident_bounds(pids: tuple[int, ...], swap: bool) -> tuple[int, ...]:
    """RssAnon + RssShmem (+ VmSwap) of each process, from its `status`."""
    return tuple(_resident_bound(pid, swap) for pid in pids)


class ProportionalCache:
    """The last smaps_rollup figure of each process, reused while its `status` counters
    (RssAnon, RssShmem, VmSwap) stay the same and the figure is under `max_age` seconds old.

    For the metrics samples (reconciler.observe.usage), which would otherwise walk the
    page tables of every process of every job every 15 s although an idle job's memory
    does not move. Unchanged counters can hide one change: pages shared with a process
    that exited count more in PSS; `max_age` bounds how long that goes unseen. Time is
    the caller's (`start`), never read here.
    """

    def __init__(self, max_age: float = 60.0) -> None:
        self.max_age = max_age
        self._now = 0.0
        # pid -> (its status counters, the figure, when its page tables were walked)
        self._figures: dict[int, tuple[int, int, float]] = {}

    def start(self, now: float) -> None:
        """Begin the samples of a pass at `now`: figures as old as `max_age` go (they would be
        walked again anyway), and with them those of processes that exited."""
        self._now = now
        old = [pid for pid, (_, _, at) in self._figures.items() if now - at >= self.max_age]
        for pid in old:
            del self._figures[pid]

    def proportional(self, pid: int, swap: bool, counters: int | None = None) -> int:
        """The process's working set from smaps_rollup, or its last one if still good;
        `counters`: its status counters, when already read."""
        if counters is None:
            counters = _resident_bound(pid, swap)
        last = self._figures.get(pid)
        if last is not None and last[0] == counters:
            return last[1]
        figure = _proportional(pid, swap)
        self._figures[pid] = (counters, figure, self._now)
        return figure


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _resident_pages(pid: int, files: OwnerFiles | None) -> int:
    """RssAnon + RssFile + RssShmem of one process (statm's second field), in bytes: never
    less than its working set without swap; 0 for one that is gone."""
    fields = procfs.read(pid, "statm", files).split(maxsplit=2)
    return int(fields[1]) * _PAGE if len(fields) > 1 else 0


def _resident_bound(pid: int, swap: bool) -> int:
    """RssAnon + RssShmem (+ VmSwap) of one process; 0 for one that is gone."""
    status = procfs.read(pid, "status")
    total = _kib(status, b"\nRssAnon:") + _kib(status, b"\nRssShmem:")
    return total + (_kib(status, b"\nVmSwap:") if swap else 0)


def _proportional(pid: int, swap: bool) -> int:
    """Pss_Anon + Pss_Shmem (+ SwapPss) of one process; PSS where the kernel has no Pss_Anon."""
    rollup = b"\n" + procfs.read(pid, "smaps_rollup")
    if b"\nPss_Anon:" in rollup:
        total = _kib(rollup, b"\nPss_Anon:") + _kib(rollup, b"\nPss_Shmem:")
    else:
        total = _kib(rollup, b"\nPss:")
    return total + (_kib(rollup, b"\nSwapPss:") if swap else 0)


def _kib(text: bytes, key: bytes) -> int:
    """The `key: N kB` value of /proc status-like text, in bytes; 0 where it is missing."""
    start = text.find(key)
    if start < 0:
        return 0
    end = text.find(b"kB", start)
    return int(text[start + len(key) : end]) * 1024
