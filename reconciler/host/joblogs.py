"""A job's payload output as the wrapper left it in the state dir: what `wnr logs` prints.

Host layer (imports model and host only), read by the CLI and the Python client alike.
The wrapper (reconciler/host/wrapper/output.c) copies the payload's stdout and stderr into
`<state>/jobs/<job>/attempt-<n>.log`. Once that reaches the Node's policies.logs.maxSize it
rotates like the kubelet: `.log.<i-1>` is renamed to `.log.<i>` from the oldest down (a rename
over the last of maxFiles drops it), `.log` to `.log.1`, and a new `.log` is opened whose
first line is the wrapper's note `wnr-wrapper: log rotated; earlier output is in
attempt-<n>.log.1`. So the highest number is the oldest output and `.log` the newest, and the
files read oldest first are the output in order. The note at the head of a file whose
predecessor is read as well is left out: it says only where the bytes just before it are.
(With maxFiles 1 the wrapper empties `.log` in place and says so; that note stays.)

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

from reconciler.host.statedir import StateDir
from reconciler.model.errors import WnrError
from reconciler.model.fields import DNS_LABEL_PATTERN
from reconciler.model.records import LIVE_PHASES

_BLOCK = 65536
_LOG = re.compile(r"^attempt-([0-9]+)\.log(?:\.[1-9][0-9]*)?$")
_NAME = re.compile(DNS_LABEL_PATTERN)


class LogsError(WnrError):
    """No log to show: the message names the job, the attempts that exist and the state dir."""


class NotStartedError(LogsError):
    """The job has no attempt in the state dir (unknown there, or not started yet)."""


def log_files(state: StateDir, job: str, attempt: int) -> list[Path]:
    """The files of one attempt's log that exist, oldest first (`.log.<maxFiles-1>` ...
    `.log.1`, `.log`)."""
    base = state.log_path(job, attempt)
    rotated = re.compile(re.escape(base.name) + r"\.([1-9][0-9]*)")
    try:
        names = os.listdir(base.parent)
    except FileNotFoundError:
        return []
    numbers = sorted((int(m[1]) for n in names if (m := rotated.fullmatch(n))), reverse=True)
    files = [base.parent / f"{base.name}.{number}" for number in numbers]
    return [*files, base] if base.name in names else files


def attempts_with_logs(state: StateDir, job: str) -> list[int]:
    """The attempts of a job that have a log file, in order."""
    try:
        names = os.listdir(state.job_dir(job))
    except FileNotFoundError:
        return []
    return sorted({int(m[1]) for name in names if (m := _LOG.match(name))})


def rotation_note(base: Path) -> bytes:
    """The line the wrapper writes at the head of each `.log` it starts on rotation."""
    return f"wnr-wrapper: log rotated; earlier output is in {base.name}.1\n".encode()


def tail(files: Sequence[Path], lines: int) -> bytes:
    """The last `lines` lines of the output in `files` (oldest first), read from the end in
    blocks so a large log is never loaded whole; a last line without a newline counts."""
    if not files:
        return b""
    note = rotation_note(_base_of(files[-1]))
    fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in files]
    try:
        parts = [
            (fd, _skip_note(fd, note) if i else 0, os.fstat(fd).st_size) for i, fd in enumerate(fds)
        ]
        return _tail_parts(parts, lines)
    finally:
        for fd in fds:
            os.close(fd)


def _tail_parts(parts: Sequence[tuple[int, int, int]], lines: int) -> bytes:
    """The last `lines` lines of the byte ranges (fd, start, end), oldest first."""
    if lines <= 0:
        return b""
    taken: list[bytes] = []
    found = 0
    at_end = True  # the output's very last newline ends the last line; it does not start one
    for fd, start, end in reversed(parts):
        position = end
        while position > start:
            size = min(_BLOCK, position - start)
            position -= size
            block = os.pread(fd, size, position)
            limit = len(block)
            if at_end and block:
                at_end = False
                limit -= block.endswith(b"\n")
            while (newline := block.rfind(b"\n", 0, limit)) >= 0:
                found += 1
                if found == lines:
                    taken.append(block[newline + 1 :])
                    return b"".join(reversed(taken))
                limit = newline
            taken.append(block)
    return b"".join(reversed(taken))


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
            (fd, _skip_note(fd, note) if i else 0, size) for i, (fd, _, size) in enumerate(chain)
        ]
        if tail is None:
            for fd, start, end in parts:
                yield from _read_range(fd, start, end)
        else:
            yield _tail_parts(parts, tail)
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
                offset = _skip_note(fd, note, wait=not finished)
                note_pending = offset < 0
                if note_pending:
                    offset = 0
                    pause()
                    continue
            for chunk in _read_range(fd, offset, None):
                offset += len(chunk)
                yield chunk
            newer = _newer(target, inode)
            if newer is not None:
                # The held file was renamed away, so it is complete: read what came last.
                yield from _read_range(fd, offset, None)
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


def _skip_note(fd: int, note: bytes, wait: bool = False) -> int:
    """Where the output of a file started on rotation begins: after the wrapper's note when
    it is there. With `wait`, -1 when the file holds only the start of the note so far."""
    head = os.pread(fd, len(note), 0)
    if head == note:
        return len(note)
    return -1 if wait and note.startswith(head) else 0


def _read_range(fd: int, start: int, end: int | None) -> Iterator[bytes]:
    """The bytes of fd from `start` to `end` (to its current end when None), in blocks."""
    position = start
    while end is None or position < end:
        size = _BLOCK if end is None else min(_BLOCK, end - position)
        block = os.pread(fd, size, position)
        if not block:
            return
        position += len(block)
        yield block


def _base_of(path: Path) -> Path:
    """The `.log` file a (possibly rotated) log file belongs to."""
    return path.with_name(re.sub(r"(\.log)\.[0-9]+$", r"\1", path.name))
