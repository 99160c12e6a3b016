"""`wnr top` and the live usage `get -o wide` and `describe` show: which cgroups to read,
reading them (observe.liveusage), ordering, printing (render.top).

Below inspection (which calls `job_usage`/`slot_usage`) and above render: it takes the
job and slot statuses, whoever made them (a dry pass now, the daemon's published ones
later), and a CgroupFS on the root their `cgroup` paths are under.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.api import Slot
from reconciler.model.usage import LiveUsage
from reconciler.observe.liveusage import live_usages
from reconciler.render.top import top_jobs_table, top_slots_table
from reconciler.status import JobStatus, SlotStatus

# Jobs whose payload runs: the only ones with usage to show.
RUNNING_PHASES = frozenset({"Starting", "Running"})
SORT_KEYS = ("cpu", "memory", "pids")


def relative_cgroup(fs: CgroupFS, cgroup: str | None) -> str | None:
    """A status's absolute cgroup path relative to the root `fs` reads; None when it has
    none or it lies elsewhere (another root's status)."""
    if cgroup is None:
        return None
    path = Path(cgroup)
    if path == fs.root or fs.root not in path.parents:
        return None
    return str(path.relative_to(fs.root))


def job_cgroups(fs: CgroupFS, statuses: Iterable[JobStatus]) -> dict[str, str]:
    """Running job -> its cgroup relative to the root."""
    found = {s.name: relative_cgroup(fs, s.cgroup) for s in statuses if s.phase in RUNNING_PHASES}
    return {name: rel for name, rel in found.items() if rel is not None}


def slot_cgroups(fs: CgroupFS, statuses: Iterable[SlotStatus]) -> dict[str, str]:
    """Slot with a cgroup -> its cgroup relative to the root."""
    found = {s.name: relative_cgroup(fs, s.cgroup) for s in statuses}
    return {name: rel for name, rel in found.items() if rel is not None}


def job_usage(fs: CgroupFS, statuses: Iterable[JobStatus]) -> dict[str, LiveUsage]:
    """What each running job uses now (one read, no rate), by job name."""
    return live_usages(fs, job_cgroups(fs, statuses), interval=0)


def slot_usage(fs: CgroupFS, statuses: Iterable[SlotStatus]) -> dict[str, LiveUsage]:
    """What each slot's cgroup uses now in all (its jobs and agents), by slot name."""
    return live_usages(fs, slot_cgroups(fs, statuses), interval=0)


def by_usage(usage: Mapping[str, LiveUsage], sort_by: str) -> list[str]:
    """Names, the biggest user first (`cpu`: the rate, else the CPU seconds); ties by name."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"--sort-by must be one of {', '.join(SORT_KEYS)}, not {sort_by!r}")

    def key(name: str) -> tuple[float, float, str]:
        u = usage[name]
        if sort_by == "cpu":
            return (-(u.cores or 0.0), -u.cpu_seconds, name)
        if sort_by == "pids":
            return (-u.pids, -u.memory_bytes, name)
        return (-u.memory_bytes, -u.cpu_seconds, name)

    return sorted(usage, key=key)


def run_top(  # noqa: PLR0917 - what to show, what to read, and injected time
    fs: CgroupFS,
    jobs: Mapping[str, JobStatus],
    slots: Mapping[str, SlotStatus],
    specs: Mapping[str, Slot],
    resources: Iterable[str],
    sort_by: str = "memory",
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print `wnr top` for `resources` ("slots", "jobs" or both): each cgroup read twice
    `interval` seconds apart for its rate in cores, ordered by `sort_by`."""
    wanted = set(resources)
    cgroups: dict[str, str] = {}
    if "slots" in wanted:
        cgroups |= {f"Slot/{n}": rel for n, rel in slot_cgroups(fs, slots.values()).items()}
    if "jobs" in wanted:
        cgroups |= {f"Job/{n}": rel for n, rel in job_cgroups(fs, jobs.values()).items()}
    usage = live_usages(fs, cgroups, interval, clock, sleep)
    texts: list[str] = []
    for kind in [k for k in ("slots", "jobs") if k in wanted]:
        prefix = "Slot/" if kind == "slots" else "Job/"
        found = {k.removeprefix(prefix): u for k, u in usage.items() if k.startswith(prefix)}
        order = by_usage(found, sort_by)
        if not order:
            print(f"No {'slots' if kind == 'slots' else 'running jobs'} found.", file=sys.stderr)
        elif kind == "slots":
            texts.append(top_slots_table([(slots[n], found[n]) for n in order], specs))
        else:
            texts.append(top_jobs_table([(jobs[n], found[n]) for n in order]))
    if texts:
        print("\n\n".join(texts))
    return 0
