"""The daemon (`wnr run`): level-triggered passes, woken by file events, timers and resyncs.

An event only wakes the loop; every pass re-reads everything. watchfiles
watches the spec directory and the state dir's job records (a wrapper
recording an exit is the job-exit event). SIGTERM stops the daemon between
passes and leaves every job running.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import watchfiles

from reconciler.reconcile import Reconciler

log = logging.getLogger("wnr.daemon")

RESYNC_SECONDS = 30.0
# After acting, look again soon: created cgroups and spawned wrappers emit no event of their own.
VERIFY_SECONDS = 0.5
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0


class Daemon:
    """Runs passes until stopped."""

    def __init__(
        self, reconciler: Reconciler, watch: Sequence[Path], resync: float = RESYNC_SECONDS
    ) -> None:
        self.reconciler = reconciler
        self.watch = list(watch)
        self.resync = resync
        self.stop = threading.Event()
        self.wake = threading.Event()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the daemon; jobs keep running", signal.Signals(signum).name)
        self.stop.set()
        self.wake.set()

    def _watcher(self) -> None:
        """Turn file events into wake-ups; fall back to resync when a path cannot be watched."""
        while not self.stop.is_set():
            paths = [p for p in self.watch if p.is_dir()]
            if not paths:
                self.stop.wait(self.resync)
                continue
            try:
                for _changes in watchfiles.watch(
                    *paths,
                    debounce=20,
                    step=10,
                    stop_event=self.stop,
                    raise_interrupt=False,
                    rust_timeout=1000,
                    yield_on_timeout=False,
                ):
                    self.wake.set()
            except (FileNotFoundError, RuntimeError, OSError) as exc:
                log.warning("watching %s failed (%s); relying on resync", paths, exc)
                self.stop.wait(1.0)

    def run(self) -> int:
        """The loop; returns the process exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        watcher = threading.Thread(target=self._watcher, name="wnr-watch", daemon=True)
        watcher.start()
        backoff = BACKOFF_MIN
        while not self.stop.is_set():
            self.wake.clear()
            result = self.reconciler.run_pass()
            for error in result.desired.errors:
                log.error("%s", error)
            delay = self.resync
            if result.plan.requeue_after is not None:
                delay = min(delay, result.plan.requeue_after)
            if result.resample_after is not None:
                delay = min(delay, result.resample_after)
            if result.plan.actions:
                delay = min(delay, VERIFY_SECONDS)
            if result.failures:
                delay = min(delay, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                backoff = BACKOFF_MIN
            log.debug("pass: %d actions, next in %.2fs", len(result.plan.actions), delay)
            self.wake.wait(delay)
        self.stop.set()
        watcher.join(timeout=2.0)
        return 0
