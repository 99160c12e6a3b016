"""What the daemon's loop sleeps on between passes: a wake-up pipe, wrappers' pidfds, and the
`cgroup.events` of cgroups that are emptying.

Part of the daemon, below the loop: an event only ends the sleep, the pass
that follows reads everything. Four kinds of event end it: a change in the
spec directory (reconciler.daemon.inotify), a write to the pipe (a signal, or the
polling watcher where inotify is unavailable), a wrapper's exit (its pidfd turns
readable; the wrapper has recorded how its payload ended just before), and
the kernel's notification that a stopping job's cgroup changed (POLLPRI on
`cgroup.events`, as `populated` drops to 0 when the last process is gone).
Only the loop's thread polls; other threads only write to the pipe.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import select
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("wnr.daemon")

# PIDs found gone on registration: each wakes the loop once, not on every pass.
_GONE_MEMORY = 4096
# Descriptors left for everything else the daemon opens (cgroup files, records, specs).
_RESERVED_FDS = 256


def _fd_budget() -> int:
    """How many descriptors the waker may hold: the soft limit less the reserve. `wnr run`
    raised it to the hard limit first (reconciler.host.process.raise_descriptor_limit); the
    wrappers give their payloads the soft limit it started with back."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(0, soft - _RESERVED_FDS)


class Waker:
    """A poll set the loop waits on; `wake` may be called from any thread or a signal handler."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._read, select.POLLIN)
        self._pidfds: dict[int, int] = {}  # fd -> pid
        self._pids: set[int] = set()
        self._events: dict[str, int] = {}  # cgroup.events path -> fd
        self._gone: set[int] = set()
        self._readers: dict[int, Callable[[], bool]] = {}  # fd -> what drains it
        self._pending = False
        self._warned: set[int | None] = set()
        self._budget = _fd_budget()

    def wake(self) -> None:
        """End the current or next wait at once."""
        with contextlib.suppress(BlockingIOError):  # the pipe is full: a wake-up is pending
            os.write(self._write, b"w")

    def add_reader(self, fd: int, drain: Callable[[], bool]) -> None:
        """Wake when `fd` is readable (the spec directory's inotify) and `drain`, which
        empties it, says what it read matters."""
        self._readers[fd] = drain
        self._poll.register(fd, select.POLLIN)

    def watching(self, pid: int) -> bool:
        """Whether this process's exit is watched already."""
        return pid in self._pids

    def watch_exit(self, pid: int) -> None:
        """Wake when this process exits; kept until it does."""
        if pid in self._pids:
            return
        if not self._room():
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Gone (and reaped) since the pass read its record: look once more.
            if pid not in self._gone:
                if len(self._gone) > _GONE_MEMORY:
                    self._gone.clear()
                self._gone.add(pid)
                self._pending = True
            return
        except OSError as exc:
            self._cannot_watch(exc)
            return
        self._pids.add(pid)
        self._pidfds[fd] = pid
        self._poll.register(fd, select.POLLIN)

    def watch_emptying(self, events_files: Iterable[str]) -> None:
        """Wake when one of these `cgroup.events` files changes; replaces the previous set."""
        wanted = set(events_files)
        for path in set(self._events) - wanted:
            self._close(self._events.pop(path))
        for path in wanted - set(self._events):
            if not self._room():
                return
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                self._pending = True  # removed since the pass: look again
                continue
            except OSError as exc:
                self._cannot_watch(exc)
                continue
            try:
                # Reading arms the notification; a cgroup already empty needs no waiting.
                if b"populated 0" in os.pread(fd, 4096, 0):
                    self._pending = True
            except OSError:
                os.close(fd)
                self._pending = True  # removed between open and read (ENODEV)
                continue
            self._events[path] = fd
            self._poll.register(fd, select.POLLPRI)

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds or until an event; True when woken before the timeout.

        A reader whose drain finds nothing that matters (a spec file only just created, not
        yet written) does not end the sleep.
        """
        if self._pending:
            self._pending = False
            timeout = 0.0
            woken = True
        else:
            woken = False
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready = self._poll.poll(int(left * 1000 + 0.999))
            # Every ready descriptor is handled (drained, closed), not only the first news.
            handled = [self._handle(fd) for fd, _mask in ready]
            woken = woken or any(handled)
            if woken or not ready or time.monotonic() >= deadline:
                return woken

    def _handle(self, fd: int) -> bool:
        """Take one ready descriptor's event; whether it is news for the loop."""
        if fd == self._read:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 4096):
                    pass
            return True
        if fd in self._readers:
            return self._readers[fd]()
        if fd in self._pidfds:
            self._pids.discard(self._pidfds.pop(fd))
            self._close(fd)
            return True
        # A changed cgroup.events: the next pass decides whether to watch it again.
        for path, known in list(self._events.items()):
            if known == fd:
                del self._events[path]
        self._close(fd)
        return True

    def close(self) -> None:
        """Release every descriptor."""
        for fd in [*self._pidfds, *self._events.values()]:
            self._close(fd)
        self._pidfds.clear()
        self._pids.clear()
        self._events.clear()
        os.close(self._read)
        os.close(self._write)

    def _close(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._poll.unregister(fd)
        os.close(fd)

    def _room(self) -> bool:
        """Whether one more descriptor fits the budget; past it, timers and resync notice."""
        if len(self._pidfds) + len(self._events) < self._budget:
            return True
        self._cannot_watch(OSError(errno.EMFILE, f"{self._budget} descriptors in use for waking"))
        return False

    def _cannot_watch(self, exc: OSError) -> None:
        # Out of descriptors, say: events are then noticed by timers and the resync.
        if exc.errno not in self._warned:
            log.warning("cannot watch for exits (%s): relying on timers and resync", exc)
            self._warned.add(exc.errno)
