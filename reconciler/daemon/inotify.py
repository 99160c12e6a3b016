"""Spec directory events straight from the kernel (inotify through libc): part of the daemon's wait.

A descriptor the daemon's poll(2) sleeps on beside the others (reconciler.daemon.waker),
so a spec file written wakes the loop within microseconds and an idle daemon
wakes for nothing. watchfiles, even on inotify, looks at its event queue every
`step` ms from a thread (measured: 10 ms costs ~0.3-0.5 % of a core idle, 25 ms
~0.15-0.3 % and 25-50 ms of latency); the daemon uses it only to poll the
directory where inotify is not available (its instances or watches used up).

What counts: a link created (symbolic or hard: it arrives whole), a file closed
after writing (not its creation, nor each write(2): a pass between them would
read half a spec), renamed in or out, deleted, or its mode or owner changed
(spec files are trusted by owner and mode). Subdirectories are not specs. A
watched directory deleted or replaced is watched again by `ensure`, which the
loop calls before every pass. `take_changed` tells the pass whether anything
that matters happened since the last pass: while nothing did, the spec loader
does not look at the directory (it relists at the resync).
"""

from __future__ import annotations

import ctypes
import logging
import os
import stat
import struct
from collections.abc import Iterable

log = logging.getLogger("wnr.daemon")

IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_ISDIR = 0x40000000
MASK = (
    IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
# struct inotify_event: wd, mask, cookie, len, then `len` bytes of name.
_EVENT = struct.Struct("iIII")


def _failed(call: str, path: str = "") -> OSError:
    code = ctypes.get_errno()
    where = f" {path}" if path else ""
    return OSError(code, f"{call}{where}: {os.strerror(code)}")


class DirWatch:
    """One inotify instance watching directories; `fd` turns readable on a change."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise _failed("inotify_init1")
        self.fd: int = fd
        # path -> (watch descriptor, st_dev, st_ino of the directory watched)
        self._watched: dict[str, tuple[int, int, int]] = {}
        self._warned: set[str] = set()
        # Whether anything that matters may have changed since take_changed last said: at
        # first (nothing was looked at yet), on an event that matters, and whenever a
        # directory is absent, refused or watched anew (what it holds came unwatched).
        self._changed = True

    def ensure(self, paths: Iterable[str]) -> list[str]:
        """Watch each directory, again if it was replaced since; absent ones are skipped.
        Returns those the kernel refused to watch (its max_user_watches used up, say)."""
        refused: list[str] = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                self._watched.pop(path, None)
                self._changed = True
                continue
            known = self._watched.get(path)
            if known is not None and known[1:] == (st.st_dev, st.st_ino):
                continue
            self._changed = True
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), MASK)
            if wd < 0:
                error = _failed("inotify_add_watch", path)
                if path not in self._warned:
                    log.warning("cannot watch %s with inotify: %s", path, error)
                    self._warned.add(path)
                refused.append(path)
                continue
            self._warned.discard(path)
            self._watched[path] = (wd, st.st_dev, st.st_ino)
        return refused

    def take_changed(self) -> bool:
        """Whether a spec file or directory may have changed since the last call (events
        still queued are read first). False only while every directory is watched and no
        event that matters came: then the spec loader need not look (SpecLoader.load)."""
        self.drain()
        changed, self._changed = self._changed, False
        return changed

    def drain(self) -> bool:
        """Read every pending event; forget the watches of directories deleted or moved.
        Returns whether any of them matters: not a subdirectory made, nor a regular file
        created (it is being written: its IN_CLOSE_WRITE follows)."""
        matters = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                self._changed = self._changed or matters
                return matters
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                    self._forget(wd, removed=bool(mask & IN_IGNORED))
                matters = matters or self._matters(wd, mask, name)

    def _matters(self, wd: int, mask: int, name: bytes) -> bool:
        if mask & IN_ISDIR and not mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            return False
        if not mask & IN_CREATE:
            return True
        directory = next((p for p, (known, _, _) in self._watched.items() if known == wd), None)
        if directory is None:
            return True
        try:
            st = os.lstat(os.path.join(os.fsencode(directory), name))
        except OSError:
            return True  # gone again: a pass sees that
        # A link (symbolic or hard) arrives whole and no IN_CLOSE_WRITE follows it; a new
        # regular file is being written, however much of it is there already.
        return not stat.S_ISREG(st.st_mode) or st.st_nlink > 1

    def _forget(self, wd: int, removed: bool) -> None:
        for path, (known, _, _) in list(self._watched.items()):
            if known == wd:
                del self._watched[path]
        if not removed:
            # A moved directory stays watched under its new name: stop that.
            self._libc.inotify_rm_watch(self.fd, wd)

    def close(self) -> None:
        """Release the instance and every watch."""
        os.close(self.fd)
        self._watched.clear()
