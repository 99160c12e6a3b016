"""Reading one spec path: regular files only, from trusted owners, bounded in size, never blocking.

The first step of spec loading (this module reads a file's bytes, `yamlbounds`
decodes and bounds them, `specfile` parses and validates, `specs` assembles a
directory). Anyone who can create a file in the spec directory decides what
this reads, so:

- only a regular file is opened (a symlink to one is followed); a FIFO, a
  device, a socket, a directory or a dangling symlink is that path's error,
  and opening a FIFO could block the daemon forever, `/dev/zero` never ends;
- the file is opened with O_NONBLOCK and checked again with fstat (it may be
  replaced between the two looks);
- ownership and mode are checked on what was opened (a Job spec runs a
  command: see `untrusted`);
- at most `max_bytes` are read; a larger file is refused by its size alone.

A path that vanished between listing and reading is `Outcome.GONE`: the admin
removed it, which is no error.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass

from reconciler.model.quantity import format_bytes

# (device, inode, size, mtime): a file whose key is unchanged is not read again.
FileKey = tuple[int, int, int, int]


class Outcome(enum.Enum):
    """What reading a path gave besides its bytes."""

    GONE = "gone"  # removed between listing and reading
    UNCHANGED = "unchanged"  # same key as the copy already parsed


@dataclass(frozen=True)
class Content:
    """A spec file's bytes and the key they were read under."""

    data: bytes
    key: FileKey


@dataclass(frozen=True)
class Unreadable:
    """Why a spec path cannot be read: the path's error, at the top of the file."""

    message: str


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def untrusted(st: os.stat_result, trusted_uid: int) -> str | None:
    """Why a spec file or directory may not be trusted (someone else can write it), or None."""
    if st.st_uid not in (0, trusted_uid):
        return f"owned by uid {st.st_uid}, not by wnr's user (uid {trusted_uid}) or root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.filemode(st.st_mode)})"
    return None


def not_regular(st: os.stat_result) -> str | None:
    """What a non-regular file is, for the error; None for a regular file."""
    if stat.S_ISREG(st.st_mode):
        return None
    return _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")


def key_of(st: os.stat_result) -> FileKey:
    """The key a file's parse is cached under."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_spec(
    path: str,
    *,
    trusted_uid: int | None,
    max_bytes: int,
    known: FileKey | None = None,
) -> Content | Unreadable | Outcome:
    """Read one spec file within the rules above; `known` is the key of a parsed copy."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _missing(path)
    except OSError as exc:
        return Unreadable(f"cannot read file: {exc.strerror}")
    refusal = _refusal(st, trusted_uid, max_bytes)
    if refusal is not None:
        return refusal
    if known is not None and key_of(st) == known:
        return Outcome.UNCHANGED
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return _missing(path)
    except OSError as exc:
        return Unreadable(f"cannot read file: {exc.strerror}")
    try:
        st = os.fstat(fd)
        refusal = _refusal(st, trusted_uid, max_bytes)
        if refusal is not None:
            return refusal
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        return Unreadable(f"cannot read file: {exc.strerror}")
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return _too_large(len(data), max_bytes, "and still growing")
    return Content(data, key_of(st))


def _missing(path: str) -> Unreadable | Outcome:
    """A path that does not resolve: a dangling symlink is an error, a removed file is not."""
    try:
        target = os.readlink(path)
    except OSError:
        return Outcome.GONE
    return Unreadable(f"a symlink to {target}, which does not exist")


def _refusal(st: os.stat_result, trusted_uid: int | None, max_bytes: int) -> Unreadable | None:
    kind = not_regular(st)
    if kind is not None:
        return Unreadable(f"not a regular file but {kind}: only regular files are read")
    if trusted_uid is not None:
        reason = untrusted(st, trusted_uid)
        if reason is not None:
            return Unreadable(f"refusing spec file: {reason}")
    if st.st_size > max_bytes:
        return _too_large(st.st_size, max_bytes, "")
    return None


def _too_large(size: int, limit: int, note: str) -> Unreadable:
    shown = f"{size} bytes{f' {note}' if note else ''}"
    return Unreadable(
        f"file is {shown}, over the limit of {format_bytes(limit)} per spec file "
        "(Node spec.specLimits.maxFileSize)"
    )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
