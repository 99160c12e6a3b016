"""Atomic files (write, rename; fsync where durable): how the daemon records state and how
`wnr apply -f` and `wnr delete` write spec files.

A reader sees the old file or the new one, never half of either, even when the
writer is killed mid-write: rename is atomic, and a process crash loses nothing
the kernel has. Syncing to disk matters only for a power cut, after which every
job on the node is gone anyway; so only records of how an attempt ended are
synced (the wrapper syncs its own, reconciler/host/wrapper/files.c), not the daemon's
bookkeeping, whose fsyncs were most of the cost of starting a job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
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
    write_bytes(path, json.dumps(data, sort_keys=True).encode(), durable, replace)


def write_bytes(path: str, data: bytes, durable: bool = False, replace: bool = True) -> None:
    """Replace `path` with `data` as `write_json` does (a temporary file renamed over it)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    payload = memoryview(data)
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


def stage_file(path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> str:
    """Write `data` to a dot-named temporary file beside `path` (one a directory listing of
    spec files skips), with `mode` (whatever the umask) and `owner`, synced; returns its path.

    Nothing is left behind on failure. `commit_file` renames it over `path`.
    """
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    payload = memoryview(data)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            while payload:
                payload = payload[os.write(fd, payload) :]
            os.fchmod(fd, mode)  # the umask narrowed what O_CREAT gave
            if owner is not None:
                os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        discard_file(tmp)
        raise
    return tmp


def commit_file(tmp: str, path: str) -> None:
    """Rename a staged file over `path` and sync the directory: readers see the old file or
    the new one, and the rename survives a power cut."""
    try:
        os.rename(tmp, path)
    except BaseException:
        discard_file(tmp)
        raise
    sync_directory(os.path.dirname(path) or ".")


def discard_file(tmp: str) -> None:
    """Remove a staged file that will not be committed (gone already is fine)."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def remove_file(path: str) -> None:
    """Unlink `path` and sync its directory."""
    os.unlink(path)
    sync_directory(os.path.dirname(path) or ".")


def sync_directory(directory: str) -> None:
    """fsync a directory, so that renames and unlinks in it are on disk."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """Hold an exclusive flock on a directory: writers of the same directory take turns
    (two `wnr apply -f` checking the spec set at once could each miss the other's file)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(dir_fd)
