"""Single passes in-process, with `Reconciler.run_pass` on the fleet's spec dir, root and state.

Run after the daemon was stopped with SIGTERM (its jobs keep running), so
nothing else acts on the tree meanwhile.

- no-op pass: after two warm-up passes (cold spec cache, first usage
  samples), the CPU time (this process, `time.process_time`) of passes that
  find nothing to do and sample nothing (samples are due every 5 s; these
  passes take a few seconds in all). Informational: a pass that also takes
  every job's usage sample (PSS+swap for memory limits the kernel lacks,
  `cpu.stat` for idleness), as the daemon does every `intervalSeconds`.
- peer: reading `cgroup.procs` and `cpu.stat` of every job cgroup.
- metrics scrape: what one scrape of `wnr run --metrics-address` costs with every job
  running (the collector rendering the latest pass, and generate_latest), after passes
  that took the metrics samples; against the no-op pass of the same run.
- reload: one of the spec files is edited (a label changes: no action
  follows), then one pass: its wall time (the spec loader re-parses only the
  changed file). Peer: parsing every spec file with ruamel's round-trip
  loader, what the loader would cost without its cache and C loader.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from bench.common import BenchError, median
from bench.wnr import WnrDaemon, job_yaml
from reconciler.daemon.inotify import DirWatch
from reconciler.daemon.loop import kept_capacity
from reconciler.daemon.metrics import SAMPLE_SECONDS, DaemonMetrics
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.exits import descriptor_budget
from reconciler.host.statedir import StateDir
from reconciler.observe.usage import Sampler
from reconciler.reconcile import Reconciler
from reconciler.specs.loader import SpecLoader


@dataclass(frozen=True)
class PassTimes:
    """Medians: no-op pass CPU, sampling pass CPU, reload wall time (seconds)."""

    noop_cpu: float
    sampling_cpu: float
    reload_wall: float
    reload_cpu: float


@contextlib.contextmanager
def reconciler_for(daemon: WnrDaemon) -> Iterator[Reconciler]:
    """A Reconciler wired like `wnr run`'s: trusted spec dir, the daemon's root and state, the
    spec directory's inotify telling each pass whether a spec may have changed, and the
    sampler keeping files open; its descriptors (kept files, pidfds, inotify) are closed when
    the block ends: a 5-run bench opens one per fleet size and run."""
    loader = SpecLoader([daemon.specs], trusted_uid=os.geteuid())
    reconciler = Reconciler(loader, CgroupFS(daemon.root), StateDir(daemon.state))
    dirs = DirWatch()
    try:
        if dirs.ensure([str(daemon.specs)]):
            raise BenchError(f"inotify refused to watch {daemon.specs}")
        reconciler.spec_changes = dirs.take_changed
        fresh_sampler(reconciler)
        yield reconciler
    finally:
        reconciler.sampler.files.close()
        reconciler.exits.close()  # a pidfd per running wrapper the passes watched
        dirs.close()


def fresh_sampler(reconciler: Reconciler) -> None:
    """A new Sampler (no samples yet: the next pass takes every job's), keeping files as the
    daemon lends them (loop.kept_capacity: here, what this process's budget holds); the
    old one's descriptors are closed."""
    reconciler.sampler.files.close()
    reconciler.sampler = Sampler()
    reconciler.sampler.files.capacity = kept_capacity(descriptor_budget(), 0)


def _timed(reconciler: Reconciler) -> tuple[float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = reconciler.run_pass()
    return time.process_time() - cpu, time.perf_counter() - wall, len(result.plan.actions)


def measure(daemon: WnrDaemon, names: list[str], repeats: int) -> PassTimes:
    """Run the passes; `names` are the fleet's jobs (one of them is edited for reload).

    No-op and reload passes alternate, so that both meet the same conditions.
    """
    if daemon.alive():
        raise BenchError("stop the daemon before passes are run in-process")
    with reconciler_for(daemon) as reconciler:
        return _measured(reconciler, daemon, names, repeats)


def _measured(
    reconciler: Reconciler, daemon: WnrDaemon, names: list[str], repeats: int
) -> PassTimes:
    for _ in range(2):
        reconciler.run_pass()
    name = names[len(names) // 2]
    edited = daemon.specs / f"job-{name}.yaml"
    noop, reload_wall, reload_cpu = [], [], []
    for i in range(repeats):
        cpu, _wall, actions = _timed(reconciler)
        if actions:
            raise BenchError(f"a no-op pass planned {actions} actions")
        noop.append(cpu)
        edited.write_text(job_yaml(name, ("sleep", "600"), labels=f"edit: e{i}"))
        cpu, wall, actions = _timed(reconciler)
        if actions:
            raise BenchError(f"an edited label planned {actions} actions")
        reload_wall.append(wall)
        reload_cpu.append(cpu)
    sampling = []
    for _ in range(max(1, repeats // 3)):
        fresh_sampler(reconciler)
        sampling.append(_timed(reconciler)[0])
    return PassTimes(median(noop), median(sampling), median(reload_wall), median(reload_cpu))


def noop_cpu(daemon: WnrDaemon, repeats: int) -> float:
    """Median CPU seconds of a no-op pass, after two warm-up passes (any fleet: nothing is
    edited, unlike `measure`)."""
    if daemon.alive():
        raise BenchError("stop the daemon before passes are run in-process")
    with reconciler_for(daemon) as reconciler:
        for _ in range(2):
            reconciler.run_pass()
        times = []
        for _ in range(repeats):
            cpu, _wall, actions = _timed(reconciler)
            if actions:
                raise BenchError(f"a no-op pass planned {actions} actions")
            times.append(cpu)
    return median(times)


def scrape_cpu(daemon: WnrDaemon, running: int, repeats: int) -> float:
    """Median CPU seconds of one metrics scrape (collect and text exposition) of the fleet,
    from a pass that sampled every job for metrics."""
    with reconciler_for(daemon) as reconciler:
        return _scraped(reconciler, running, repeats)


def _scraped(reconciler: Reconciler, running: int, repeats: int) -> float:
    reconciler.metrics_interval = SAMPLE_SECONDS
    metrics = DaemonMetrics()
    for _ in range(2):
        metrics.passed(reconciler.run_pass(), 0.0)
    latest = metrics.collector.latest
    sampled = (
        0 if latest is None else sum(u.live is not None for u in latest[0].observed.usage.values())
    )
    if sampled < running:
        raise BenchError(f"only {sampled} of {running} jobs have a metrics sample")
    times = []
    for _ in range(repeats):
        cpu = time.process_time()
        metrics.exposition()
        times.append(time.process_time() - cpu)
    return median(times)


def read_cgroups(root: Path, repeats: int) -> float:
    """Median CPU seconds to read cgroup.procs and cpu.stat of every job cgroup below `root`
    (paths prepared beforehand; plain open/read/close)."""
    files = [
        os.path.join(directory, name)
        for directory, _, _ in os.walk(root)
        if os.path.basename(directory).startswith("job.")
        for name in ("cgroup.procs", "cpu.stat")
    ]
    times = []
    for _ in range(repeats):
        cpu = time.process_time()
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            os.read(fd, 65536)
            os.close(fd)
        times.append(time.process_time() - cpu)
    return median(times)


def round_trip_parse(specs: Path, repeats: int) -> float:
    """Median wall seconds to parse every spec file with ruamel's round-trip loader."""
    files = sorted(specs.glob("*.yaml"))
    loader = YAML(typ="rt")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in files:
            list(loader.load_all(path.read_text()))
        times.append(time.perf_counter() - start)
    return median(times)
