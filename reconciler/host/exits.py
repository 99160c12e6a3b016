"""Which watched processes have exited: a pidfd per job wrapper, all asked in one poll(2).

Host layer, shared by two readers. The reconciler (reconciler.reconcile) watches every
running job's wrapper and, at the start of a pass, asks which exited since the last one:
a running job whose wrapper is still alive is still in its cgroup, so the pass need not
read that cgroup or its records again (reconciler.observe.quiet). The daemon's sleep
(reconciler.daemon.waker) polls the same descriptors, so an exit also ends the sleep; one
descriptor per wrapper serves both.

A pidfd names one process, never a reused PID, and turns readable when it exits. The
descriptors count against RLIMIT_NOFILE: `descriptor_budget` is how many wnr takes for
waking at most, leaving RESERVED_FDS for everything else a pass opens.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
from collections.abc import Iterator
from enum import Enum

# Descriptors left for everything else the daemon opens (cgroup files, records, specs).
RESERVED_FDS = 256


def descriptor_budget(soft: int | None = None) -> int:
    """How many descriptors wnr holds for waking (pidfds, `cgroup.events`): the soft
    RLIMIT_NOFILE (this process's, unless given) less RESERVED_FDS. `wnr run` raises its soft
    limit to the hard one first (reconciler.host.process.raise_descriptor_limit)."""
    if soft is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(0, soft - RESERVED_FDS)


class Watched(Enum):
    """What `ExitWatch.watch` did with a PID."""

    WATCHING = "watching"  # a pidfd is held (or was already)
    GONE = "gone"  # no such process any more: it exited before it could be watched
    REFUSED = "refused"  # no descriptor for it (the budget, or the kernel's EMFILE/ENOSYS)


class ExitWatch:
    """The pidfds of watched processes and the exits seen but not yet taken."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = descriptor_budget() if budget is None else budget
        self._fds: dict[int, int] = {}  # pid -> pidfd
        self._pids: dict[int, int] = {}  # pidfd -> pid
        self._poll = select.poll()
        self._exited: set[int] = set()
        # Descriptors opened (True, fd) and closed (False, fd), in order, for the waker to mirror.
        self._log: list[tuple[bool, int]] = []
        self.refusal: OSError | None = None  # the latest reason a watch was refused

    def __len__(self) -> int:
        return len(self._fds)

    def watching(self, pid: int) -> bool:
        """Whether this process's exit is watched (and not yet seen)."""
        return pid in self._fds

    def watch(self, pid: int, others: int = 0) -> Watched:
        """Hold a pidfd for this process, within the budget less `others` (descriptors the
        caller holds for waking besides these)."""
        if pid in self._fds:
            return Watched.WATCHING
        if len(self._fds) + others >= self.budget:
            self.refusal = OSError(errno.EMFILE, f"{self.budget} descriptors in use for waking")
            return Watched.REFUSED
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return Watched.GONE
        except OSError as exc:
            self.refusal = exc
            return Watched.REFUSED
        self._fds[pid], self._pids[fd] = fd, pid
        self._poll.register(fd, select.POLLIN)
        self._log.append((True, fd))
        return Watched.WATCHING

    def owns(self, fd: int) -> bool:
        """Whether this descriptor is one of the pidfds."""
        return fd in self._pids

    def collect(self) -> bool:
        """Close the pidfds of processes that have exited, remembering their PIDs for
        `take_exited`; whether any had (one poll(2), no waiting)."""
        ready = self._poll.poll(0)
        for fd, _mask in ready:
            pid = self._pids.pop(fd)
            del self._fds[pid]
            self._poll.unregister(fd)
            os.close(fd)
            self._log.append((False, fd))
            self._exited.add(pid)
        return bool(ready)

    def take_exited(self) -> frozenset[int]:
        """The watched processes that exited since the last call; they are no longer watched."""
        self.collect()
        exited, self._exited = frozenset(self._exited), set()
        return exited

    def changes(self) -> Iterator[tuple[bool, int]]:
        """The descriptors opened (True, fd) and closed (False, fd) since the last call, in
        order (a closed descriptor's number may be opened again)."""
        log, self._log = self._log, []
        return iter(log)

    def close(self) -> None:
        """Release every descriptor."""
        for fd in self._pids:
            with contextlib.suppress(OSError):
                os.close(fd)
            self._log.append((False, fd))
        self._fds.clear()
        self._pids.clear()
        self._poll = select.poll()
