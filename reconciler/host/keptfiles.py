"""Descriptors of the small kernel files a sampler reads every few seconds, kept open between
reads; part of the host layer, used by the usage sampler (reconciler.observe.usage).

A running job's `cgroup.procs`, `cgroup.threads` and its processes' `/proc/<pid>/statm`
are read every `intervalSeconds` on a node whose kernel does not enforce the job's
limits. Opening and closing one costs about three times what reading it costs
(kernfs and procfs look the path up, allocate and free the file): a kept
descriptor read again with pread(2) at offset 0 gets the kernel's text of now,
since both file systems produce it afresh at offset 0. A kept descriptor also
keeps naming what it was opened on: a cgroup removed reads ENODEV, a process that
ended reads ESRCH, even when the name is taken again (a cgroup made anew, a PID
reused); such a descriptor is closed and the path opened again.

Descriptors are kept only up to `capacity`, which the daemon sets each pass to what
its waker (pidfds, `cgroup.events`) cannot need (reconciler.daemon.loop); past it a
file is opened, read and closed as before. A process that ran out of descriptors
anyway keeps at most half of what it held then, from then on. Each descriptor belongs to an owner
(a job), and `release` closes an owner's when it stops being sampled.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Container

# Whole files are read in chunks of this size (a few hundred PIDs per cgroup.procs chunk).
_CHUNK = 16384
# A descriptor that reads one of these names something gone: close it, open the path anew.
_STALE = (errno.ENODEV, errno.ESRCH)
_PAGE = os.sysconf("SC_PAGE_SIZE")
# The longest record of a PID list: a PID (at most PID_MAX_LIMIT, 4194304) and a newline,
# with room to spare.
_LONGEST_RECORD = 16


def list_ended(length: int, asked: int) -> bool:
    """Whether a read(2) of `asked` bytes from a PID list (cgroup.procs, cgroup.threads) that
    returned `length` bytes reached the list's end. The kernel's seq_file fills one buffer
    (a page at least) per read and stops short of it only at the last record or when the
    next record would not fit: a read shorter than that by more than a record ended it."""
    return length < min(_PAGE, asked) - _LONGEST_RECORD


class KeptFiles:
    """Open descriptors by owner and path, at most `capacity` of them (one dict per owner:
    a few hundred bytes a descriptor, thousands of them on a big node)."""

    def __init__(self, capacity: int = 0) -> None:
        # Set for good once the process ran out of descriptors (`_open`): the daemon sets
        # `capacity` every pass from what it can count, and what it cannot is still open.
        self.ceiling: int | None = None
        self._capacity = capacity
        self._owned: dict[str, dict[str, int]] = {}
        self._count = 0

    @property
    def capacity(self) -> int:
        """How many descriptors may be kept: as set, but never past the `ceiling`."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._capacity = value if self.ceiling is None else min(value, self.ceiling)

    def __len__(self) -> int:
        return self._count

    def read(self, path: str, owner: str, iterated: bool = False) -> bytes | None:
        """The whole file now; None when it does not exist (a cgroup or process gone).
        `iterated`: a file whose reads may stop short of its end (a seq_file printing a
        record per task, like cgroup.procs), read until `list_ended`. Raises OSError for
        any other failure, with the path in it."""
        fds = self._owned.get(owner)
        fd = fds.get(path) if fds is not None else None
        if fd is not None:
            try:
                return _read_whole(fd, iterated)
            except OSError as exc:
                self._close(owner, path)
                if exc.errno not in _STALE:
                    raise OSError(exc.errno, exc.strerror, path) from exc
        try:
            fd = self._open(path)
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            return None
        try:
            data = _read_whole(fd, iterated)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _STALE:
                return None
            raise OSError(exc.errno, exc.strerror, path) from exc
        if self._count < self.capacity:
            self._owned.setdefault(owner, {})[path] = fd
            self._count += 1
        else:
            os.close(fd)
        return data

    def release(self, owner: str, keep: Container[str] = ()) -> None:
        """Close the owner's descriptors but those of the paths in `keep`."""
        fds = self._owned.get(owner)
        if fds:
            for path in [p for p in fds if p not in keep]:
                self._close(owner, path)

    def shrink(self) -> None:
        """Close descriptors past `capacity` (it was lowered), the latest owner's first."""
        while self._count > self.capacity:
            owner = next(reversed(self._owned))
            self._close(owner, next(reversed(self._owned[owner])))

    def close(self) -> None:
        """Close every descriptor."""
        for owner in list(self._owned):
            self.release(owner)

    def owners(self) -> set[str]:
        """The owners holding descriptors."""
        return set(self._owned)

    def _open(self, path: str) -> int:
        """open(2), giving back half the kept descriptors when the process has run out: its
        other descriptors (not counted in `capacity`) may have grown meanwhile, and a sample
        must not fail for descriptors that are only kept to save opening them."""
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE) or not self._count:
                raise
            own_limit = exc.errno == errno.EMFILE
        half = self._count // 2
        if own_limit:
            # The process's own limit stays where it was reached; ENFILE (the system's
            # table) passes.
            self.ceiling = half
        self.capacity = half
        self.shrink()
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def _close(self, owner: str, path: str) -> None:
        fds = self._owned[owner]
        fd = fds.pop(path)
        self._count -= 1
        if not fds:
            del self._owned[owner]
        os.close(fd)  # last: the bookkeeping holds even if close(2) fails


def _read_whole(fd: int, iterated: bool) -> bytes:
    """The file from offset 0 to its end, by pread(2): the descriptor's position is never
    moved, so the next read starts from 0 again. A file printed whole at once (statm, a
    flat-keyed file) ends with the first read shorter than asked, a PID list with the first
    read `list_ended` says ended it."""
    chunk = os.pread(fd, _CHUNK, 0)
    if len(chunk) < _CHUNK and (not iterated or list_ended(len(chunk), _CHUNK)):
        return chunk
    chunks = [chunk]
    offset = len(chunk)
    while chunks[-1] and not (iterated and list_ended(len(chunks[-1]), _CHUNK)):
        chunks.append(os.pread(fd, _CHUNK, offset))
        offset += len(chunks[-1])
    return b"".join(chunks)


class OwnerFiles:
    """One owner's reads through kept descriptors for one sample: `done` closes the owner's
    descriptors this sample did not read (a process that left, a file no longer needed)."""

    def __init__(self, kept: KeptFiles, owner: str) -> None:
        self.kept = kept
        self.owner = owner
        self._read: set[str] = set()

    def read(self, path: str, iterated: bool = False) -> bytes | None:
        """`KeptFiles.read` for this owner."""
        self._read.add(path)
        return self.kept.read(path, self.owner, iterated)

    def done(self) -> None:
        """Close what this sample did not read again."""
        self.kept.release(self.owner, keep=self._read)
