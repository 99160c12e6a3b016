"""State-dir faults: a full, read-only, vanished or failing state dir, told apart from other errors.

Beside `state` in the host layer. Every record wnr keeps lives in one directory,
so ENOSPC, EDQUOT, EROFS or EIO there is a fault of the node, not of the
action that hit it: `recording` turns such an OSError into `StateDirError`,
which apply reports once and which stops every further start (an attempt that
cannot be recorded is never spawned). `check` tells, without writing, whether
the state dir can record (for dry passes, `wnr get` and `wnr doctor`); `probe`
writes to find out whether a fault seen in a write has cleared.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
import time
from collections.abc import Iterator
from pathlib import Path

from reconciler.host.atomicfile import read_json, write_json
from reconciler.model.errors import WnrError
from reconciler.model.observed import FAULT_REASONS, StateFault

PROBE_NAME = ".wnr-probe"
# Below this much free space the state dir counts as full: a job's own records (the
# wrapper's temporary and final files, its .pid) must still fit once it has started.
MIN_FREE_BYTES = 16 * 1024


class StateDirError(WnrError):
    """A write to the state dir failed for a reason that every other write shares."""

    def __init__(self, fault: StateFault) -> None:
        super().__init__(f"the state dir cannot record: {fault}")
        self.fault = fault


def fault_of(exc: OSError, fallback: Path | str) -> StateFault | None:
    """The state-dir fault an OSError is, or None when it is some other error."""
    if exc.errno not in FAULT_REASONS:
        return None
    return StateFault(exc.errno, str(exc.filename or fallback), "")


@contextlib.contextmanager
def recording(where: Path | str) -> Iterator[None]:
    """Raise a state-dir fault met inside as StateDirError; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        fault = fault_of(exc, where)
        if fault is None:
            raise
        raise StateDirError(fault) from exc


def check(root: Path | str) -> StateFault | None:
    """Whether the state dir can record, from statvfs alone (no write: dry passes use it)."""
    path = str(root)
    try:
        info = os.statvfs(path)
    except OSError as exc:
        return StateFault(exc.errno or errnos.EIO, path, "the state dir cannot be read")
    if info.f_flag & os.ST_RDONLY:
        return StateFault(errnos.EROFS, path, "mounted read-only")
    # root may use the blocks reserved for it (ext4's 5 %); others only the available ones.
    blocks = info.f_bfree if os.geteuid() == 0 else info.f_bavail
    free = blocks * info.f_frsize
    if free < MIN_FREE_BYTES:
        return StateFault(errnos.ENOSPC, path, f"{free} bytes free")
    if info.f_files > 0 and info.f_favail == 0:
        return StateFault(errnos.ENOSPC, path, "no free inodes")
    if not os.access(path, os.W_OK | os.X_OK):
        return StateFault(errnos.EACCES, path, f"not writable by uid {os.geteuid()}")
    return None


def probe(root: Path | str) -> StateFault | None:
    """Write, read back and remove a small file: whether a real write succeeds now."""
    path = os.path.join(str(root), PROBE_NAME)
    data = {"probedAt": time.time()}
    try:
        write_json(path, data)
        back = read_json(path)
        os.unlink(path)
    except OSError as exc:
        return fault_of(exc, path) or StateFault(exc.errno or errnos.EIO, path, str(exc))
    if back != data:
        return StateFault(errnos.EIO, path, "a record written could not be read back")
    return None
