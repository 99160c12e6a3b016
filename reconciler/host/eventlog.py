"""The event log: what wnr did and saw happen, one JSON object a line in `<state>/events.jsonl`.

Append-only, like `kubectl get events`: each line holds `time` (the
reconciler's clock), `object` ("Job/foo", "Slot/a", "Root"), `type` (Normal
or Warning), `reason` (Started, Completed, Failed, OOMKilled, ...) and
`message`. A batch of events is one `write` on a file opened with O_APPEND
under an exclusive `flock`, so concurrent writers (the daemon and a `wnr
apply`) never interleave; a write that fails part-way (a full disk) is cut
back to where it began. A writer killed mid-write leaves a torn last line:
readers skip any line that is not a whole event, and the next append starts
on a fresh line. When the file passes `max_bytes` it becomes
`events.jsonl.1` (`.1` becomes `.2`, ...), keeping `generations` old files.

The log also remembers the phase it last reported for each object
(`<state>/events.phases.json`), so a phase change that happened while no
wnr process was watching is reported once by the next one, and never twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.host.atomicfile import read_json, write_json
from reconciler.model.event import Event

LOG_NAME = "events.jsonl"
PHASES_NAME = "events.phases.json"
MAX_BYTES = 1 << 20
GENERATIONS = 3


class EventLog:
    """The event log of one state dir. Nothing is created until the first append."""

    def __init__(
        self, directory: Path | str, max_bytes: int = MAX_BYTES, generations: int = GENERATIONS
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOG_NAME
        self.phases_path = self.directory / PHASES_NAME
        self.max_bytes = max_bytes
        self.generations = generations

    def generation(self, index: int) -> Path:
        """The current file (0) or an older one (1 is the newest rotated file)."""
        return self.path if index == 0 else self.path.with_name(f"{LOG_NAME}.{index}")

    def append(self, events: Iterable[Event]) -> None:
        """Append events as one write; rotate when the file has passed `max_bytes`.

        Costs nothing when there is nothing to append.
        """
        data = b"".join(
            json.dumps(e.to_json(), separators=(",", ":")).encode() + b"\n" for e in events
        )
        if not data:
            return
        os.makedirs(self.directory, exist_ok=True)
        fd = self._open_locked()
        try:
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a writer died mid-line: start a fresh one
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                # ENOSPC after a partial write: take the torn batch back, so a full disk
                # costs the batch and never leaves half a line for every reader to skip.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            if size + len(data) >= self.max_bytes:
                self._rotate()
        finally:
            os.close(fd)  # releases the lock

    def _open_locked(self) -> int:
        """Open the current file for appending under an exclusive lock. Another writer may
        have rotated it while we waited for the lock: then open the new one."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                current = os.stat(self.path)
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                return fd
            os.close(fd)

    def _rotate(self) -> None:
        """Shift `.n` to `.n+1` (dropping the oldest) and the current file to `.1`."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.generation(self.generations))
        for index in range(self.generations - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.generation(index), self.generation(index + 1))
        if self.generations > 0:
            os.replace(self.path, self.generation(1))
        else:
            os.unlink(self.path)

    def read(self, index: int = 0) -> list[Event]:
        """The whole events of one generation, oldest first; torn or foreign lines are skipped."""
        try:
            raw = self.generation(index).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return []
        events: list[Event] = []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = Event.from_json(json.loads(line))
            except ValueError:
                continue
            if event is not None:
                events.append(event)
        return events

    def recent(self, obj: str | None = None, limit: int = 20) -> list[Event]:
        """The last `limit` events of one object (of all with None), oldest first.

        Reads older generations only when the newer ones hold too few.
        """
        found: list[Event] = []
        for index in range(self.generations + 1):
            events = [e for e in self.read(index) if obj is None or e.obj == obj]
            found = events + found
            if len(found) >= limit:
                break
        return found[-limit:] if limit > 0 else []

    def load_phases(self) -> dict[str, str]:
        """The phase the log last reported for each object (empty when none was recorded)."""
        data = read_json(str(self.phases_path)) or {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def save_phases(self, phases: Mapping[str, str]) -> None:
        """Replace the remembered phases (atomically)."""
        os.makedirs(self.directory, exist_ok=True)
        write_json(str(self.phases_path), dict(phases))
