"""Atomic JSON files (write, rename; fsync where durable): how the daemon records state.

A reader sees the old file or the new one, never half of either, even when the
writer is killed mid-write: rename is atomic, and a process crash loses nothing
the kernel has. Syncing to disk matters only for a power cut, after which every
job on the node is gone anyway; so only records of how an attempt ended are
synced (the wrapper syncs its own, reconciler/host/wrapper/files.c), not the daemon's
bookkeeping, whose fsyncs were most of the cost of starting a job.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any


def write_json(
    path: str, data: dict[str, Any], durable: bool = False, replace: bool = True
) -> None:
    """Replace `path` with `data` as JSON; `durable` also syncs the file and its directory;
    with `replace` False an existing `path` is kept (the new file is linked in, not renamed).

    On any failure (ENOSPC, EROFS, EDQUOT, EIO, a vanished directory) `path` is left as it
    was and the temporary file is removed: a half-written record must never be renamed in,
    since a torn record reads as absent and an absent attempt would be started again.
    """
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    payload = memoryview(json.dumps(data, sort_keys=True).encode())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            # A full file system may take part of a write and refuse the rest.
            while payload:
                payload = payload[os.write(fd, payload) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.rename(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when the file is absent or not an object."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:
        # Only a file written by something else can be torn; treat it as absent.
        return None
    return data if isinstance(data, dict) else None
