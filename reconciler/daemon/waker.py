"""What the daemon's loop sleeps on between passes: a wake-up pipe, wrappers' pidfds, and the
`cgroup.events` of cgroups that are emptying.

Part of the daemon, below the loop: an event only ends the sleep, the pass
that follows reads everything that may have changed (a running job whose wrapper's pidfd
stayed quiet is not read again until the resync: reconciler.observe.quiet). The pidfds
belong to the reconciler's exit watch (reconciler.host.exits); this poll set mirrors them.
Four kinds of event end it: a change in the spec directory (reconciler.daemon.inotify),
a write to the pipe (a signal, or the polling watcher where inotify is unavailable), a
wrapper's exit (its pidfd turns readable; the wrapper has recorded how its payload ended
just before), and the kernel's notification that a stopping job's cgroup changed (POLLPRI
on `cgroup.events`, as `populated` drops to 0 when the last process is gone).
Only the loop's thread polls; other threads only write to the pipe.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import time
from collections.abc import Callable, Iterable

from reconciler.host.exits import ExitWatch, Watched

log = logging.getLogger("wnr.daemon")

# PIDs found gone on registration: each wakes the loop once, not on every pass.
_GONE_MEMORY = 4096


class Waker:
    """A poll set the loop waits on; `wake` may be called from any thread or a signal handler."""

    def __init__(self, exits: ExitWatch | None = None) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._read, select.POLLIN)
        # The wrappers' pidfds, shared with the reconciler (which learns from them which
        # running jobs changed); this poll set mirrors them.
        self.exits = exits if exits is not None else ExitWatch()
        self._events: dict[str, int] = {}  # cgroup.events path -> fd
        self._gone: set[int] = set()
        self._readers: dict[int, Callable[[], bool]] = {}  # fd -> what drains it
        self._pending = False
        self._warned: set[int | None] = set()

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
        return self.exits.watching(pid)

    def watch_exit(self, pid: int) -> None:
        """Wake when this process exits; kept until it does."""
        watched = self.exits.watch(pid, others=len(self._events))
        if watched is Watched.GONE and pid not in self._gone:
            # Gone (and reaped) since the pass read its record: look once more.
            if len(self._gone) > _GONE_MEMORY:
                self._gone.clear()
            self._gone.add(pid)
            self._pending = True
        elif watched is Watched.REFUSED and self.exits.refusal is not None:
            self._cannot_watch(self.exits.refusal)
        self._mirror()

    def _mirror(self) -> None:
        """Poll the pidfds the exit watch holds now."""
        for opened, fd in self.exits.changes():
            if opened:
                self._poll.register(fd, select.POLLIN)
            else:
                with contextlib.suppress(KeyError, ValueError):
                    self._poll.unregister(fd)

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
        self._mirror()  # the pass may have watched or taken exits itself
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
        if self.exits.owns(fd):
            self.exits.collect()  # the pass takes the exits; the descriptors close now
            self._mirror()
            return True
        # A changed cgroup.events: the next pass decides whether to watch it again.
        for path, known in list(self._events.items()):
            if known == fd:
                del self._events[path]
                self._close(fd)
                return True
        # Neither: a pidfd the same poll reported, closed by the collect of an earlier one.
        return True

    def close(self) -> None:
        """Release every descriptor."""
        for fd in self._events.values():
            self._close(fd)
        self._events.clear()
        self.exits.close()
        self._mirror()
        os.close(self._read)
        os.close(self._write)

    def _close(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._poll.unregister(fd)
        os.close(fd)

    def _room(self) -> bool:
        """Whether one more descriptor fits the budget; past it, timers and resync notice."""
        budget = self.exits.budget
        if len(self.exits) + len(self._events) < budget:
            return True
        self._cannot_watch(OSError(errno.EMFILE, f"{budget} descriptors in use for waking"))
        return False

    def _cannot_watch(self, exc: OSError) -> None:
        # Out of descriptors, say: events are then noticed by timers and the resync.
        if exc.errno not in self._warned:
            log.warning("cannot watch for exits (%s): relying on timers and resync", exc)
            self._warned.add(exc.errno)
