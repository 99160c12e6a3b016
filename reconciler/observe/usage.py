"""Sampling what running jobs use, for limits the kernel does not enforce and for the idle timeout.

Part of observe: the reconciler says which jobs need which measurements
(`Need`), the sampler reads them at most once per interval and hands the
planner plain `Usage` data. Memory is the working set of the cgroup's
processes (reconciler.observe.workingset: anonymous and shared memory and swap,
never the page cache), taken exactly only once a cheap bound passes the limit;
tasks come from `cgroup.threads`, CPU from
`cpu.stat usage_usec` (present on every cgroup2, controller or not), disk
from walking the working directory. The sampler remembers, per job, when
the job was last busy; a restarted daemon starts counting afresh, which
can only delay an idle kill, never hasten it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping

from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.keptfiles import KeptFiles, OwnerFiles
from reconciler.host.statedir import StateDir
from reconciler.model.api import Job, NodeSpec
from reconciler.model.desired import Desired
from reconciler.model.layout import job_cgroup, work_dir
from reconciler.model.observed import Need, Observed, Stall, Usage
from reconciler.model.usage import LiveUsage
from reconciler.observe.liveusage import KnownProcesses, live_usage, usage_usec
from reconciler.observe.pressure import stall_between, stall_totals
from reconciler.observe.workingset import ProportionalCache, working_set_within


def needs(
    desired: Desired, observed: Observed, state: StateDir, metrics_interval: float | None = None
) -> dict[str, Need]:
    """What to sample for each running job: the limits the kernel cannot enforce, idleness,
    and (with `metrics_interval`, while the daemon serves metrics) its whole live usage."""
    return Needs().of(desired, observed, state, metrics_interval)


class Needs:
    """`needs`, with each job's Need kept between passes while what it derives from is the
    same (its Job and the Node as the same objects, its slot, the kernel's controllers, the
    metrics interval): a pass among thousands of running jobs builds none anew."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[tuple[object, ...], Need]] = {}
        # The last pass's Desired, what it read alike for every job, its placements and
        # records, and its result: a job whose placement and records are the very objects
        # of then has the same Need, or none, again.
        self._last: tuple[object, tuple[object, ...], Mapping[str, object], Mapping[str, object]]
        self._last = (None, (), {}, {})
        self._result: dict[str, Need] = {}

    def of(
        self,
        desired: Desired,
        observed: Observed,
        state: StateDir,
        metrics_interval: float | None = None,
    ) -> dict[str, Need]:
        """What to sample for each running job (see `needs`)."""
        node = desired.node_spec
        kernel = observed.available & {str(c) for c in node.controllers}
        alike = (kernel, metrics_interval, state.root)
        last_desired, last_alike, last_jobs, last_records = self._last
        unchanged: Collection[str] = ()
        if last_desired is desired and last_alike == alike:
            # Compared in C, identity first: a pass among quiet jobs builds nothing.
            if observed.jobs == last_jobs and observed.records == last_records:
                self._last = (desired, alike, observed.jobs, observed.records)
                return dict(self._result)
            unchanged = {
                name
                for name, placed in observed.jobs.items()
                if last_jobs.get(name) is placed
                and last_records.get(name) is observed.records.get(name)
            }
        self._result = self._needs(desired, observed, state, alike, unchanged)
        self._last = (desired, alike, observed.jobs, observed.records)
        return dict(self._result)

    def _needs(
        self,
        desired: Desired,
        observed: Observed,
        state: StateDir,
        alike: tuple[frozenset[str], float | None, object],
        unchanged: Collection[str],
    ) -> dict[str, Need]:
        """Each running job's Need; `alike`: what `of` read for every job (the kernel's
        controllers, the metrics interval, the state root)."""
        node = desired.node_spec
        kernel, metrics_interval, _ = alike
        result: dict[str, Need] = {}
        kept: dict[str, tuple[tuple[object, ...], Need]] = {}
        for name, (slot, cgroup) in observed.jobs.items():
            if name in unchanged:
                if (found := self._result.get(name)) is not None:
                    result[name] = found
                    kept[name] = self._kept[name]
                continue
            job = desired.jobs.get(name)
            if job is None or not cgroup.populated or job.spec.slot != slot:
                continue
            records = observed.records.get(name)
            first = records.attempts[0] if records is not None and records.attempts else None
            # A record without its spawn time (0.0) gives none.
            since = first.spawned_at if first is not None and first.spawned_at > 0 else None
            key = (job, node, kernel, metrics_interval, state.root, since)
            last = self._kept.get(name)
            if last is not None and _same(last[0], key):
                need = last[1]
            else:
                need = _need(job, name, node, kernel, state, metrics_interval, since)
            result[name] = need
            kept[name] = (key, need)
        self._kept = kept
        return result


def _same(kept: tuple[object, ...], key: tuple[object, ...]) -> bool:
    # The Job and the Node by identity (the loader hands out the same objects while their
    # files are unchanged), the rest by value.
    return kept[0] is key[0] and kept[1] is key[1] and kept[2:] == key[2:]


def _need(  # noqa: PLR0917 - one job's sampling, from what it derives from
    job: Job,
    name: str,
    node: NodeSpec,
    kernel: frozenset[str],
    state: StateDir,
    metrics_interval: float | None,
    since: float | None,
) -> Need:
    policy = node.policies
    r = job.spec.resources
    idle = job.spec.idle or policy.idle
    cores = (r.cpus or 1000) / 1000
    disk_dir = None
    if r.disk is not None:
        disk_dir = job.spec.working_dir or str(work_dir(state.root, name))
    memory_over = None
    if r.memory is not None and "memory" not in kernel:
        memory_over = int(r.memory * policy.user_space.memory_factor)
    tasks = r.pids is not None and "pids" not in kernel
    # The idle timeout needs a sample every tenth of its window. The user-space interval
    # applies where wnr enforces a limit itself, and on a node whose kernel lacks the memory
    # or pids controller, where the samples are also what finds processes moved in or out
    # of the job (reconciler.observe.membership). Where the kernel enforces every limit, an
    # idle node is woken that much less.
    interval = idle.window_seconds / 10
    user_space = memory_over is not None or tasks or disk_dir is not None
    if user_space or not {"memory", "pids"} <= kernel:
        interval = min(policy.user_space.interval_seconds, interval)
    return Need(
        rel=job_cgroup(job.spec.slot, name),
        memory_over=memory_over,
        tasks=tasks,
        disk_dir=disk_dir,
        busy_cpus=idle.min_cpu_fraction * cores,
        stall_fraction=idle.min_stall_fraction,
        interval=interval,
        idle_interval=idle.window_seconds / 10,
        metrics_interval=metrics_interval,
        controllers=kernel,
        since=since,
    )


class Sampler:
    """Keeps the last sample and the last busy time of each job between passes."""

    def __init__(self) -> None:
        self._usage: dict[str, Usage] = {}
        self._cpu: dict[str, tuple[float, int]] = {}
        self._pressure: dict[str, tuple[float, tuple[int, int, int]]] = {}
        # The metrics samples' smaps_rollup figures, reused while a process's memory holds.
        self._walked = ProportionalCache()
        # The cgroup.procs each job's sample read at `_procs_at`, the time of the last
        # `sample` (membership compares them); a second call at that time adds to them.
        self.procs_read: dict[str, tuple[int, ...]] = {}
        self._procs_at: float | None = None
        # The limit samples' files, kept open up to what the daemon allows (`capacity`).
        self.files = KeptFiles()

    def sample(self, fs: CgroupFS, needs: Mapping[str, Need], now: float) -> dict[str, Usage]:
        """Fresh samples for jobs whose interval has passed; the previous ones for the rest."""
        for gone in set(self._usage) - set(needs):
            self._usage.pop(gone, None)
            self._cpu.pop(gone, None)
            self._pressure.pop(gone, None)
        for owner in self.files.owners() - set(needs):  # also one whose first sample raised
            self.files.release(owner)
        self.files.shrink()
        swap: bool | None = None
        self._walked.start(now)
        if now != self._procs_at:
            self.procs_read, self._procs_at = {}, now
        for job, need in needs.items():
            last = self._usage.get(job)
            if last is None or now - last.sampled_at >= need.interval:
                if swap is None:
                    swap = swap_configured()
                self._usage[job] = self._measure(fs, job, need, now, last, swap)
        return dict(self._usage)

    def _measure(  # noqa: PLR0917 - one sample's inputs
        self, fs: CgroupFS, job: str, need: Need, now: float, last: Usage | None, swap: bool
    ) -> Usage:
        busy_at = last.busy_at if last is not None else now
        stat = None
        previous = self._cpu.get(job)
        if previous is not None and now - previous[0] < need.idle_interval and last is not None:
            # The idle figures are not due: the last ones stand (limits are sampled alone).
            stall, stalled_at = last.stall, last.stalled_at
        else:
            if need.busy_cpus is not None:
                stat = fs.read(need.rel, "cpu.stat")
                usec = usage_usec(stat)
                self._cpu[job] = (now, usec)
                if previous is not None and now > previous[0]:
                    used = (usec - previous[1]) / 1e6 / (now - previous[0])
                    if used >= need.busy_cpus:
                        busy_at = now
            stall, stalled_at = self._stall(fs, job, need, now, last)
        memory, bounds, pids = None, None, None
        # What a limit sample reads every interval goes through kept descriptors.
        files = OwnerFiles(self.files, job)
        if need.memory_over is not None:
            pids = self.procs_read[job] = fs.procs(need.rel, files)
            memory, bounds = working_set_within(pids, need.memory_over, swap, files)
        tasks = None
        if need.tasks:
            tasks = len((fs.read(need.rel, "cgroup.threads", files) or "").split())
        files.done()
        live, live_at = (last.live, last.live_at) if last is not None else (None, None)
        if need.metrics_interval is None:
            live, live_at = None, None  # not kept while nobody reads them: they would go stale
        elif live_at is None or now - live_at >= need.metrics_interval:
            known = None
            if pids is not None and not fs.nested(need.rel):
                known = KnownProcesses(pids, bounds, tasks)
            live, live_at = self._live(fs, job, need, now, stat, known), now
        return Usage(
            sampled_at=now,
            memory_bytes=memory,
            tasks=tasks,
            disk_bytes=disk_usage(need.disk_dir) if need.disk_dir else None,
            busy_at=busy_at,
            stall=stall,
            stalled_at=stalled_at,
            live=live,
            live_at=live_at,
        )

    def _live(  # noqa: PLR0917 - what this sample read already
        self,
        fs: CgroupFS,
        job: str,
        need: Need,
        now: float,
        stat: str | None,
        known: KnownProcesses | None,
    ) -> LiveUsage | None:
        """The job's whole live usage for metrics, reading again nothing this sample read:
        cpu.stat, the PSI totals, and (nothing nested below it) its processes and tasks."""
        pressure = self._pressure.get(job)
        totals = pressure[1] if pressure is not None and pressure[0] == now else None
        return live_usage(
            fs,
            need.rel,
            True,
            cpu_stat=stat,
            pressure=totals,
            reuse=self._walked,
            controllers=need.controllers,
            known=known,
        )

    def _stall(
        self, fs: CgroupFS, job: str, need: Need, now: float, last: Usage | None
    ) -> tuple[Stall | None, float | None]:
        """The job's pressure since the previous sample, and when it last stalled (waited on
        CPU, memory or I/O for at least `need.stall_fraction` of the time)."""
        stalled_at = last.stalled_at if last is not None else None
        if need.stall_fraction is None:
            return None, stalled_at
        totals = stall_totals(fs, need.rel)
        if totals is None:
            return None, stalled_at
        previous = self._pressure.get(job)
        if previous is None and need.since is not None:
            previous = (need.since, (0, 0, 0))  # the totals began with the job's cgroup
        self._pressure[job] = (now, totals)
        stall = stall_between(previous, (now, totals)) if previous is not None else None
        if stall is not None and stall.reaches(need.stall_fraction):
            stalled_at = now
        return stall, stalled_at


def swap_configured() -> bool:
    """Whether the node has any swap area (/proc/swaps lists one below its header)."""
    try:
        with open("/proc/swaps", "rb") as handle:
            return handle.read().count(b"\n") > 1
    except OSError:
        return True


def disk_usage(path: str) -> int:
    """Bytes allocated under a directory (like `du -s`), not following symlinks."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total
