"""The files of one attempt's log, as the wrapper rotates them, and reading them.

Host layer (imports model and host only); joblogs.py chooses and follows on top of this.
The wrapper (reconciler/host/wrapper/output.c) copies the payload's stdout and stderr into
`<state>/jobs/<job>/attempt-<n>.log`. Once that reaches the Node's policies.logs.maxSize it
rotates like the kubelet: `.log.<i-1>` is renamed to `.log.<i>` from the oldest down (a rename
over the last of maxFiles drops it), `.log` to `.log.1`, and a new `.log` is opened whose
first line is the wrapper's note `wnr-wrapper: log rotated; earlier output is in
attempt-<n>.log.1`. So the highest number is the oldest output and `.log` the newest, and the
files read oldest first are the output in order. The note at the head of a file whose
predecessor is read as well is left out: it says only where the bytes just before it are.
(With maxFiles 1 the wrapper empties `.log` in place and says so; that note stays.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from reconciler.host.statedir import StateDir

_BLOCK = 65536
_LOG = re.compile(r"^attempt-([0-9]+)\.log(?:\.[1-9][0-9]*)?$")


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
            (fd, skip_note(fd, note) if i else 0, os.fstat(fd).st_size) for i, fd in enumerate(fds)
        ]
        return tail_parts(parts, lines)
    finally:
        for fd in fds:
            os.close(fd)


def tail_parts(parts: Sequence[tuple[int, int, int]], lines: int) -> bytes:
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


def skip_note(fd: int, note: bytes, wait: bool = False) -> int:
    """Where the output of a file started on rotation begins: after the wrapper's note when
    it is there. With `wait`, -1 when the file holds only the start of the note so far."""
    head = os.pread(fd, len(note), 0)
    if head == note:
        return len(note)
    return -1 if wait and note.startswith(head) else 0


def read_range(fd: int, start: int, end: int | None) -> Iterator[bytes]:
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
