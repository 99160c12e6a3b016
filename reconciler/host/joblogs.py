"""A job's payload output as the wrapper left it in the state dir: what `wnr logs` prints.

Host layer (imports model and host only), used by the CLI and the Python client alike
(`read_logs`, `follow_logs`): which attempt to show, or why there is none, and following
one attempt's log as it grows. The files and their rotation are logfiles.py's.

A follower holds the file it reads open, so a rotation (a rename) never loses it: once
`.log` is another file, the held one is complete (the wrapper renames before it opens the
next) and is read to its end before the next newer file is opened, found by inode.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.host.logfiles import (
    attempts_with_logs,
    log_files,
    read_range,
    rotation_note,
    skip_note,
    tail,
    tail_parts,
)
from reconciler.host.statedir import StateDir
from reconciler.model.errors import WnrError
from reconciler.model.fields import DNS_LABEL_PATTERN
from reconciler.model.records import LIVE_PHASES

_NAME = re.compile(DNS_LABEL_PATTERN)

__all__ = [
    "LogsError",
    "NotStartedError",
    "attempts_with_logs",
    "choose_attempt",
    "follow_attempt",
    "follow_logs",
    "log_files",
    "read_logs",
    "rotation_note",
    "tail",
]


class LogsError(WnrError):
    """No log to show: the message names the job, the attempts that exist and the state dir."""


class NotStartedError(LogsError):
    """The job has no attempt in the state dir (unknown there, or not started yet)."""


def choose_attempt(state: StateDir, job: str, attempt: int | None, follow: bool = False) -> int:
    """The attempt to show: `attempt`, else the newest with a log (with `follow`, a newer
    attempt still starting or running, whose log is waited for). Raises LogsError naming
    the job, its attempts and the state dir when there is nothing to show."""
    if len(job) > 63 or not _NAME.fullmatch(job):
        raise LogsError(f"invalid job name {job!r}: must be a DNS-1123 label")
    records = state.read(job).attempts
    logged = attempts_with_logs(state, job)
    known = sorted({r.attempt for r in records} | set(logged))
    where = f"state dir {state.root}"
    if not known:
        raise NotStartedError(f"job {job} has no attempts in {where}")
    listing = f"attempts: {', '.join(map(str, known))}; {where}"
    live = {r.attempt for r in records if r.phase in LIVE_PHASES}
    if attempt is None:
        waitable = [n for n in known if n in live] if follow else []
        candidates = [n for n in logged + waitable if n >= max(logged, default=0)]
        if not candidates:
            raise LogsError(f"job {job} has no output yet ({listing})")
        return max(candidates)
    if attempt not in known:
        raise LogsError(f"job {job} has no attempt {attempt} ({listing})")
    if attempt not in logged and not (follow and attempt in live):
        raise LogsError(f"job {job}: attempt {attempt} has no log ({listing})")
    return attempt


def read_logs(
    state_dir: Path | str, job: str, attempt: int | None = None, tail: int | None = None
) -> bytes:
    """A job's output as it is now: the newest attempt with a log unless `attempt` is
    given, the last `tail` lines if set. Raises LogsError when there is none."""
    return b"".join(follow_logs(state_dir, job, attempt, tail, follow=False))


def follow_logs(
    state_dir: Path | str,
    job: str,
    attempt: int | None = None,
    tail: int | None = None,
    *,
    follow: bool = True,
    sleep: Callable[[float], object] = time.sleep,
    interval: float = 0.25,
) -> Iterator[bytes]:
    """A job's output in chunks: what is there (or its last `tail` lines), then, with
    `follow`, what the payload writes, until the attempt ends and all of it is read. The
    attempt is chosen (and LogsError raised) before the first chunk is asked for."""
    state = StateDir(state_dir)
    chosen = choose_attempt(state, job, attempt, follow)
    return follow_attempt(
        state, job, chosen, tail=tail, follow=follow, sleep=sleep, interval=interval
    )


def follow_attempt(
    state: StateDir,
    job: str,
    attempt: int,
    *,
    tail: int | None,
    follow: bool,
    sleep: Callable[[float], object],
    interval: float,
) -> Iterator[bytes]:
    """One attempt's output: first what its files hold, then (with `follow`) new bytes as
    they are appended, across rotations, never twice and none skipped; ends once the
    attempt's record is no longer starting or running and everything is read."""
    target = _Attempt(state, job, attempt)
    note = rotation_note(target.base)

    def pause() -> None:
        sleep(interval)

    chain = _open_chain(target, follow, pause)
    held: list[tuple[int, int, int]] = []
    try:
        parts = [
            (fd, skip_note(fd, note) if i else 0, size) for i, (fd, _, size) in enumerate(chain)
        ]
        if tail is None:
            for fd, start, end in parts:
                yield from read_range(fd, start, end)
        else:
            yield tail_parts(parts, tail)
        if follow and chain:
            held.append(chain.pop())  # the follower owns the newest file from here on
    finally:
        for fd, _, _ in chain:
            os.close(fd)
    if held:
        yield from _follow_held(target, held[0], pause)


def _follow_held(
    target: _Attempt, held: tuple[int, int, int], pause: Callable[[], None]
) -> Iterator[bytes]:
    """Follow from the held file (fd, inode, offset) on, closing each file when done."""
    note = rotation_note(target.base)
    fd, inode, offset = held
    note_pending = False  # a file started on rotation whose note is not all there yet
    try:
        while True:
            finished = not target.live()
            if note_pending:
                offset = skip_note(fd, note, wait=not finished)
                note_pending = offset < 0
                if note_pending:
                    offset = 0
                    pause()
                    continue
            for chunk in read_range(fd, offset, None):
                offset += len(chunk)
                yield chunk
            newer = _newer(target, inode)
            if newer is not None:
                # The held file was renamed away, so it is complete: read what came last.
                yield from read_range(fd, offset, None)
                os.close(fd)
                fd, inode, note_pending = newer
                offset = 0
                continue
            if finished:
                return
            if os.fstat(fd).st_size < offset:  # maxFiles 1: emptied in place
                offset = 0
            pause()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Attempt:
    """One attempt whose log is read: where its files are and whether it may still write."""

    state: StateDir
    job: str
    number: int

    @property
    def base(self) -> Path:
        """The newest file, `attempt-<n>.log`."""
        return self.state.log_path(self.job, self.number)

    def files(self) -> list[Path]:
        """The files of the log that exist now, oldest first."""
        return log_files(self.state, self.job, self.number)

    def live(self) -> bool:
        """Whether the attempt's record says its wrapper may still write."""
        records = {r.attempt: r for r in self.state.read(self.job).attempts}
        record = records.get(self.number)
        return record is not None and record.phase in LIVE_PHASES


def _open_chain(
    target: _Attempt, follow: bool, pause: Callable[[], None]
) -> list[tuple[int, int, int]]:
    """Every file of the log opened, oldest first, as (fd, inode, size), from one listing
    that no rotation raced (listed again until the inodes by name are those opened). With
    `follow`, an attempt that has no log yet is waited for while it lives."""
    while True:
        paths = target.files()
        if not paths:
            if follow and target.live():
                pause()
                continue
            return []
        opened: list[tuple[int, int, int]] = []
        try:
            for path in paths:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                st = os.fstat(fd)
                opened.append((fd, st.st_ino, st.st_size))
        except FileNotFoundError:
            pass
        if len(opened) == len(paths) and _inodes(paths) == [ino for _, ino, _ in opened]:
            return opened
        for fd, _, _ in opened:
            os.close(fd)


def _newer(target: _Attempt, inode: int) -> tuple[int, int, bool] | None:
    """When the held file (by inode) is no longer `.log`: the next newer file opened, as
    (fd, inode, whether it directly follows the held one); None while it is still `.log`
    or the next one is not there yet."""
    while True:
        paths = target.files()
        inodes = _inodes(paths)
        if paths and paths[-1] == target.base and inodes[-1] == inode:
            return None
        if inode in inodes:
            index = inodes.index(inode) + 1
            if index >= len(paths):
                return None
            follows = True
        elif paths:
            index, follows = 0, False  # the held file was dropped: all that is left is newer
        else:
            return None
        try:
            fd = os.open(paths[index], os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        if os.fstat(fd).st_ino == inodes[index]:
            return fd, inodes[index], follows
        os.close(fd)


def _inodes(paths: Sequence[Path]) -> list[int]:
    """The inode of each path (0 for one that is gone)."""
    found = []
    for path in paths:
        try:
            found.append(path.stat().st_ino)
        except FileNotFoundError:
            found.append(0)
    return found
