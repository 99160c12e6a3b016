"""The daemon (`wnr run`): level-triggered passes, woken by file events, exits, timers and resyncs.

An event only wakes the loop; every pass re-reads everything that may have changed, and
the resync (`--resync`) everything (reconciler.observe.quiet). The loop sleeps
in poll(2) (reconciler.daemon.waker) on the spec directory's inotify descriptor, on a
pidfd per wrapper (its exit, just after it recorded how its payload ended, is
the job-exit event) and on the `cgroup.events` of stopping jobs (the kernel
says when one has emptied). Where inotify is unavailable a watchfiles thread
polls the spec directory instead. The state dir is not watched: wnr writes it
itself, and the one wrapper record that needs a prompt pass comes with an exit.
SIGTERM stops the daemon between passes and leaves every job running.
Under systemd (`Type=notify`) it tells the service manager through
reconciler.daemon.notify: ready after the first pass, a status line, watchdog pings.
While the state dir cannot record (reconciler.apply.statekeeper), the loop looks
again every STATE_RECHECK_SECONDS, so it resumes by itself once it can.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType

from reconciler.daemon.inotify import DirWatch
from reconciler.daemon.notify import Notifier
from reconciler.daemon.passguard import BACKOFF_MAX, BACKOFF_MIN, ErrorLog, PassGuard
from reconciler.daemon.waker import Waker
from reconciler.host.nodelock import NodeLock
from reconciler.host.process import is_wrapper
from reconciler.model.actions import FailureKind
from reconciler.model.layout import agent_cgroup, job_cgroup
from reconciler.model.records import LIVE_PHASES
from reconciler.observe.quiet import RELIST_SECONDS
from reconciler.reconcile import Reconciler
from reconciler.status.passresult import PassResult
from reconciler.status.summary import pass_summary

log = logging.getLogger("wnr.daemon")

RESYNC_SECONDS = RELIST_SECONDS
# Waking descriptors never lent to the sampler's kept files, for what the specs add next.
KEPT_MARGIN = 64
# After acting, look again soon: created cgroups and spawned wrappers emit no event of their own.
VERIFY_SECONDS = 0.5
STATE_RECHECK_SECONDS = 1.0
# The daemon's record (`<state>/daemon.json`) is written when it changes; its lastPass alone
# is renewed at most this often, so a busy daemon does not rewrite it on every pass.
HEARTBEAT_SECONDS = 10.0
# glibc's mallopt parameters, and its default thresholds (bytes).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_THRESHOLD = 128 * 1024


def installed_version() -> str:
    """The version of the installed wnr package (daemon.json, wnr_build_info)."""
    try:
        return metadata.version("wnr")
    except metadata.PackageNotFoundError:
        return "unknown"


def pin_malloc_thresholds() -> None:
    """Fix glibc's mmap and trim thresholds at their defaults, unless the admin set them.

    By default glibc raises its mmap threshold to the size of each mmapped block freed and
    keeps twice that untrimmed at the top of its heap, so a long-running daemon's RSS moves
    in ~1 MiB steps that outlive what caused them (bench/churn.py saw +0.9 MiB steps over
    10,000 jobs). Fixed values turn that adjustment off: RSS follows what the daemon holds.
    """
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not a libc with mallopt
    mallopt(_M_MMAP_THRESHOLD, _MALLOC_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _MALLOC_THRESHOLD)


class Daemon:
    """Runs passes until stopped."""

    def __init__(
        self,
        reconciler: Reconciler,
        watch: Sequence[Path],
        resync: float = RESYNC_SECONDS,
        lock: NodeLock | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.lock = lock
        # A spec file given by name is watched through its directory.
        self.watch = sorted({str(p if p.is_dir() or not p.exists() else p.parent) for p in watch})
        self.resync = resync
        # A timer pass every `resync` at the latest reads everything again, quiet jobs too.
        reconciler.quiet.relist_seconds = resync
        # A job's end is reported by the pass that sees it; its /proc walk follows at once.
        reconciler.membership.defer_scans = True
        self.stop = threading.Event()
        # It sleeps on the pidfds the reconciler holds of running jobs' wrappers.
        self.waker = Waker(reconciler.exits)
        self.polling: threading.Thread | None = None
        self.guard = PassGuard(reconciler.events, reconciler.clock)
        reconciler.quarantined = self.guard.quarantined
        self.spec_errors = ErrorLog()
        self.started_at = reconciler.clock()
        self._heartbeat = 0.0
        # What runs each pass; reconciler.daemon.metrics wraps it to count passes.
        self.one_pass: Callable[[], PassResult] = reconciler.run_pass
        self.notifier = Notifier.from_environ()
        self.version = installed_version()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the daemon; jobs keep running", signal.Signals(signum).name)
        self.stop.set()
        self.notifier.stopping()
        self.waker.wake()

    def _poll_specs(self) -> None:
        """Where inotify is unavailable: watchfiles, polling, turns changes into wake-ups."""
        try:  # imported only here: 1.3 MiB of the daemon's memory that inotify makes unneeded
            import watchfiles  # noqa: PLC0415
        except ImportError as exc:
            log.warning("cannot poll the spec directories (%s); relying on resync", exc)
            return
        while not self.stop.is_set():
            paths = [p for p in self.watch if Path(p).is_dir()]
            if not paths:
                self.stop.wait(self.resync)
                continue
            try:
                for _changes in watchfiles.watch(
                    *paths,
                    force_polling=True,
                    stop_event=self.stop,
                    raise_interrupt=False,
                    rust_timeout=1000,
                    yield_on_timeout=False,
                ):
                    self.waker.wake()
            except (FileNotFoundError, RuntimeError, OSError) as exc:
                log.warning("watching %s failed (%s); relying on resync", paths, exc)
                self.stop.wait(1.0)

    def _spec_events(self) -> DirWatch | None:
        """The spec directories' inotify, in the loop's poll set; else the polling thread."""
        try:
            dirs = DirWatch()
        except OSError as exc:
            self._start_polling(f"inotify unavailable ({exc})")
            return None
        self.waker.add_reader(dirs.fd, dirs.drain)
        self.reconciler.spec_changes = dirs.take_changed
        return dirs

    def _start_polling(self, why: str) -> None:
        if self.polling is None:
            log.warning("%s: polling %s for changes", why, ", ".join(self.watch))
            self.polling = threading.Thread(target=self._poll_specs, name="wnr-watch", daemon=True)
            self.polling.start()

    def _watch(self, result: PassResult) -> None:
        """Wait on what this pass left in motion: wrappers' exits, cgroups emptying."""
        for pid in result.spawned:
            self.waker.watch_exit(pid)
        for pid in recorded_wrappers(result):
            if not self.waker.watching(pid) and is_wrapper(pid):
                self.waker.watch_exit(pid)
        self.waker.watch_emptying(emptying(result, self.reconciler.fs.directory))
        files = self.reconciler.sampler.files
        # The specs' wrappers, and those of deleted jobs and agents still being stopped.
        observed = result.observed
        gone = len(set(observed.jobs) - set(result.desired.jobs)) + len(observed.agents)
        files.capacity = kept_capacity(self.waker.exits.budget, result.desired.wrappers + gone)

    def _publish_self(self, result: PassResult) -> None:
        """Keep `daemon.json` current: what `wnr get` needs to find this daemon's objects."""
        now = self.reconciler.clock()
        record = {
            "pid": os.getpid(),
            "specs": [str(p.absolute()) for p in self.reconciler.loader.paths],
            "root": str(self.reconciler.fs.root),
            "stateDir": str(self.reconciler.state.root.absolute()),
            "version": self.version,
            "startedAt": self.started_at,
            "specErrors": [str(e) for e in result.desired.errors[:20]],
        }
        board = self.reconciler.board
        due = time.monotonic() >= self._heartbeat
        try:
            if board.write_daemon(record, now if due else None):
                self._heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        except OSError as exc:
            log.debug("cannot write the daemon record: %s", exc)

    def run(self) -> int:
        """The loop; returns the process exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        pin_malloc_thresholds()
        dirs = self._spec_events()
        backoff = BACKOFF_MIN
        while not self.stop.is_set():
            # Before the pass, so that a change during it wakes the next one.
            if dirs is not None and dirs.ensure(self.watch):
                self._start_polling("inotify refused a watch")
            result = self.guard.run(self.one_pass)
            if result is None:
                # The pass raised: logged and recorded by the guard; look again after a pause.
                self.notifier.passed("a pass failed; retrying")
                self._sleep(self.guard.backoff)
                continue
            self.spec_errors.log(result.desired.errors)
            self._publish_self(result)
            # After daemon.json: once systemd says started, `wnr get` finds this daemon.
            self.notifier.passed(pass_summary(result))
            self.guard.track(result.desired.jobs)
            delay = self._next_pass(result)
            if any(f.kind is FailureKind.TRANSIENT for f in result.failures):
                # Terminal failures wait for the next event or resync: retrying them on a
                # timer would only repeat them.
                delay = min(delay, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                backoff = BACKOFF_MIN
            if self.lock is not None:
                self.lock.ensure()  # the state dir may have been deleted and created again
            log.debug("pass: %d actions, next in %.2fs", len(result.plan.actions), delay)
            if not result.samples_only:  # else the last full pass watches what is in motion
                self._watch(result)
            if not self.stop.is_set():
                # A pass after a sleep no event ended may take its due samples alone.
                self.reconciler.timer_wake = not self._sleep(delay)
        if dirs is not None:
            dirs.close()
        self.reconciler.sampler.files.close()
        self.waker.close()
        self.notifier.close()
        return 0

    def _next_pass(self, result: PassResult) -> float:
        """Seconds until the next pass unless an event comes first (transient failures
        aside): the resync, the plan's requeue, the next samples, a check of what the pass
        did, the state dir's recheck, at once for an owed /proc walk."""
        delay = self.resync
        if result.plan.requeue_after is not None:
            delay = min(delay, result.plan.requeue_after)
        if result.resample_after is not None:
            delay = min(delay, result.resample_after)
        if result.plan.actions:
            delay = min(delay, VERIFY_SECONDS)
        if result.state_fault is not None:
            delay = min(delay, STATE_RECHECK_SECONDS)
        if self.reconciler.membership.owed:
            delay = 0.0  # the walk over /proc a job's end calls for
        return delay

    def _sleep(self, delay: float) -> bool:
        """Wait up to `delay` for an event, pinging systemd's watchdog at least every half
        interval meanwhile (only between passes: a hung pass misses its pings); whether an
        event (or a stop) ended the wait before its time."""
        cap = self.notifier.poll_cap
        deadline = time.monotonic() + delay
        while True:
            self.notifier.alive()
            left = deadline - time.monotonic()
            if cap is None or left <= cap:
                return self.waker.wait(max(0.0, left))
            if self.waker.wait(cap) or self.stop.is_set():
                return True


def kept_capacity(budget: int, wrappers: int) -> int:
    """How many descriptors the sampler may keep open (reconciler.host.keptfiles): what the
    waking budget holds beyond a pidfd and a `cgroup.events` for every wrapper the specs can
    start, so that keeping files never costs a watch."""
    return max(0, budget - 2 * wrappers - KEPT_MARGIN)


def recorded_wrappers(result: PassResult) -> Iterator[int]:
    """The wrappers that records name as starting or running, in cgroups still populated
    (a record left `running` by a wrapper killed from outside names a PID that may be reused)."""
    observed = result.observed
    for name, records in observed.records.items():
        last, where = records.last, observed.jobs.get(name)
        if last is None or not last.wrapper_pid or last.phase not in LIVE_PHASES:
            continue
        if where is not None and where.cgroup.populated:
            yield last.wrapper_pid
    for key, agent in observed.agent_records.items():
        run, cgroup = agent.run, observed.agents.get(key)
        if run is None or not run.wrapper_pid or run.phase not in LIVE_PHASES:
            continue
        if cgroup is not None and cgroup.populated:
            yield run.wrapper_pid


def emptying(result: PassResult, directory: Callable[[str], str]) -> Iterator[str]:
    """`cgroup.events` of the populated cgroups being stopped, or holding what a finished job
    left behind: the pass after they empty removes them."""
    observed = result.observed
    for name, (slot, cgroup) in observed.jobs.items():
        records = observed.records.get(name)
        if not cgroup.populated or records is None:
            continue
        last = records.last
        if records.stop is not None or (last is not None and last.phase not in LIVE_PHASES):
            yield f"{directory(job_cgroup(slot, name))}/cgroup.events"
    for (slot, index), cgroup in observed.agents.items():
        agent = observed.agent_records.get((slot, index))
        if cgroup.populated and agent is not None and agent.stop is not None:
            yield f"{directory(agent_cgroup(slot, index))}/cgroup.events"
