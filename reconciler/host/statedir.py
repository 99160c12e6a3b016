"""The state dir: what cannot be observed in the kernel (attempts, exit codes, stop requests).

Layout, one directory per job, written atomically by apply and the wrapper and
read by observe:

    <state>/jobs/<job>/attempt-<n>.json   one attempt: starting -> running -> exited
    <state>/jobs/<job>/attempt-<n>.log    the payload's stdout and stderr (copied by the wrapper)
    <state>/jobs/<job>/attempt-<n>.log.1  older output, once the log reached policies.logs.maxSize
                                          (.2 older still; maxFiles files in all)
    <state>/jobs/<job>/stop.json          when a stop was asked for, and its grace
    <state>/jobs/<job>/work/              the default working directory
    <state>/slots/<slot>.json             a slot's grace periods and drain start
    <state>/agents/<slot>/<n>/run.json    the current run of agent replica n (like an attempt)
    <state>/agents/<slot>/<n>/run.log     its output, every run's, rotated like a job's
    <state>/agents/<slot>/<n>/stop.json   when its stop was asked for
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.host.atomicfile import read_json, write_json
from reconciler.host.statefault import StateDirError, recording
from reconciler.model import layout
from reconciler.model.accounts import Account
from reconciler.model.records import (
    AgentRecords,
    AttemptPhase,
    AttemptRecord,
    JobRecords,
    SlotRecord,
    StopRecord,
)

__all__ = [
    "AgentRecords",
    "AttemptRecord",
    "JobRecords",
    "SlotRecord",
    "StateDir",
    "StateDirError",
    "StopRecord",
]

_ATTEMPT = re.compile(r"^attempt-([0-9]+)\.json$")

# Every writer of the state dir replaces files by rename, which changes the directory's
# mtime, so a job directory whose (inode, mtime) is unchanged holds the records last read.
# Two changes within one timestamp tick leave the mtime equal, so records are kept only
# for a directory last changed longer ago than this (git's rule for "racy" index entries).
# The file system stamps mtimes with the real clock, hence time.time_ns(), not an injected one.
_SETTLED_NS = 2_000_000_000


class StateDir:
    """Paths in the state dir and the reads and writes on them."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.jobs = self.root / "jobs"
        self.slots = self.root / "slots"
        self.agents = self.root / "agents"
        self._settled: dict[str, tuple[tuple[int, int], JobRecords]] = {}
        # The wrappers this process spawned, by attempt record: `note_wrapper` keeps them here
        # too, so a `.pid` file the state dir could not take loses nothing.
        self._spawned: dict[str, int] = {}
        # The attempts begun since `take_begun` was last called (job -> number, record).
        self._begun: dict[str, tuple[int, dict[str, Any]]] = {}

    def job_dir(self, job: str) -> Path:
        """The directory of one job (the name is a validated DNS label)."""
        return Path(layout.job_dir(self.root, job))

    def attempt_path(self, job: str, attempt: int) -> Path:
        """The record of one attempt."""
        return self.job_dir(job) / f"attempt-{attempt}.json"

    def log_path(self, job: str, attempt: int) -> Path:
        """The payload's latest output of one attempt (older output in `.1`, `.2`, ...)."""
        return self.job_dir(job) / f"attempt-{attempt}.log"

    def work_dir(self, job: str) -> Path:
        """The default working directory of a job."""
        return Path(layout.work_dir(self.root, job))

    def read_all(self, known: Mapping[str, JobRecords] | None = None) -> dict[str, JobRecords]:
        """The records of every job that has a directory; a directory unchanged since it was
        last read (and settled) is not read again, nor are the `known` jobs' (the caller knows
        their records cannot have changed), which keep the records given."""
        known = known or {}
        try:
            with os.scandir(self.jobs) as listing:
                entries = {e.name: e for e in listing if e.is_dir(follow_symlinks=False)}
        except FileNotFoundError:
            self._settled = {}
            return {}
        now = time.time_ns()
        found: dict[str, JobRecords] = {}
        settled: dict[str, tuple[tuple[int, int], JobRecords]] = {}
        for name in sorted(entries):
            given = known.get(name)
            if given is not None:
                found[name] = given
                kept = self._settled.get(name)
                if kept is not None:
                    settled[name] = kept
                continue
            try:
                st = entries[name].stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            stamp = (st.st_ino, st.st_mtime_ns)
            hit = self._settled.get(name)
            records = hit[1] if hit is not None and hit[0] == stamp else self.read(name)
            if now - st.st_mtime_ns > _SETTLED_NS:
                settled[name] = (stamp, records)
            found[name] = records
        self._settled = settled
        return found

    def read(self, job: str) -> JobRecords:
        """The records of one job (empty when it has none)."""
        directory = self.job_dir(job)
        attempts: list[AttemptRecord] = []
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            return JobRecords()
        for name in entries:
            match = _ATTEMPT.match(name)
            if match:
                data = read_json(str(directory / name))
                if data is not None:
                    attempts.append(AttemptRecord.from_json(int(match[1]), data))
        attempts.sort(key=lambda record: record.attempt)
        return JobRecords(tuple(attempts), _read_stop(directory))

    def begin_attempt(
        self,
        job: str,
        attempt: int,
        now: float,
        gpus: tuple[str, ...] = (),
        account: Account | None = None,
    ) -> dict[str, Any]:
        """Record an attempt (the GPUs it holds, the user it runs as) before its wrapper is
        spawned, so a crash cannot start it twice; returns the record, which the wrapper keeps.
        Raises
        StateDirError unless the record was written and reads back: an attempt the state dir
        does not hold would be started again, so nothing may be spawned for it."""
        path = self.attempt_path(job, attempt)
        data: dict[str, Any] = {"phase": str(AttemptPhase.STARTING), "spawnedAt": now}
        if gpus:
            data["gpus"] = list(gpus)
        if account is not None:
            data.update(user=account.name, uid=account.uid)
        with recording(path):
            os.makedirs(self.work_dir(job), exist_ok=True)
            write_json(str(path), data)
            if read_json(str(path)) != data:
                raise OSError(errno.EIO, "the attempt record does not read back", str(path))
        self._begun[job] = (attempt, data)
        return data

    def give(self, directory: Path, account: Account) -> None:
        """Make a work dir the user's (owner and group, mode 0700): the payload runs there as
        that user, and no other slot's user can look in. Raises StateDirError."""
        with recording(directory):
            os.chown(directory, account.uid, account.gid)
            os.chmod(directory, 0o700)

    def take_begun(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """The attempts `begin_attempt` recorded since the last call: what the daemon knows
        it wrote, even if the state dir loses it before anything reads it back."""
        begun, self._begun = self._begun, {}
        return begun

    def note_wrapper(self, record: Path, pid: int) -> None:
        """Keep the spawned wrapper's PID beside its record (`attempt-N.pid`): the wrapper
        owns the record from now on, so the daemon writes a file of its own. The PID is kept
        in memory first, so a failed write (StateDirError) costs only the file."""
        self._spawned[str(record)] = pid
        with recording(record):
            write_json(str(record.with_suffix(".pid")), {"wrapperPid": pid})

    def spawned_pid(self, record: Path) -> int | None:
        """The PID `note_wrapper` kept for an attempt, if any."""
        known = self._spawned.get(str(record))
        if known is not None:
            return known
        data = read_json(str(record.with_suffix(".pid")))
        pid = data.get("wrapperPid") if data is not None else None
        return pid if isinstance(pid, int) else None

    def fail_run(
        self, record: Path, message: str, error_class: str = "ErrorVN", terminal: bool = False
    ) -> None:
        """Mark an attempt or agent run that could not be started (the wrapper never ran);
        a `terminal` failure would repeat on every attempt, so none follows."""
        with recording(record):
            data = read_json(str(record)) or {}
            data.update(
                phase=str(AttemptPhase.FAILED_START), message=message, errorClass=error_class
            )
            if terminal:
                data["terminal"] = True
            write_json(str(record), data, durable=True)

    def restore(self, job: str, records: JobRecords, now: float) -> None:
        """Write back the records of a job that the state dir lost (deleted or emptied) from
        what the daemon last read, marked `restoredAt`. A file that exists again (the
        wrapper's own, newer record) is never replaced."""
        directory = self.job_dir(job)
        with recording(directory):
            os.makedirs(self.work_dir(job), exist_ok=True)
            for attempt in records.attempts:
                data = {**attempt.to_json(), "restoredAt": attempt.restored_at or now}
                write_json(str(self.attempt_path(job, attempt.attempt)), data, replace=False)
            if records.stop is not None:
                write_json(str(directory / "stop.json"), records.stop.to_json(), replace=False)

    def record_end(self, job: str, attempt: int, record: Mapping[str, Any]) -> None:
        """Write an attempt's end in the place of its dead wrapper (the record is whole: the
        daemon's view of it as it ended). Raises StateDirError."""
        path = self.attempt_path(job, attempt)
        with recording(path):
            write_json(str(path), dict(record), durable=True)

    def record_stop(
        self, job: str, now: float, grace_seconds: float, reason: str, message: str = ""
    ) -> None:
        """Record the start of a job's stop (its first signal); the first wins."""
        _record_stop(self.job_dir(job), now, grace_seconds, reason, message)

    def agent_dir(self, slot: str, index: int) -> Path:
        """The directory of one agent replica."""
        return self.agents / slot / str(index)

    def read_agents(self) -> dict[tuple[str, int], AgentRecords]:
        """The records of every agent replica."""
        found: dict[tuple[str, int], AgentRecords] = {}
        try:
            slots = sorted(os.listdir(self.agents))
        except FileNotFoundError:
            return found
        for slot in slots:
            with contextlib.suppress(NotADirectoryError, FileNotFoundError):
                for index in sorted(os.listdir(self.agents / slot)):
                    if index.isdigit():
                        directory = self.agents / slot / index
                        data = read_json(str(directory / "run.json"))
                        run = AttemptRecord.from_json(0, data) if data is not None else None
                        restarts = int(data.get("restarts", 0)) if data is not None else 0
                        found[(slot, int(index))] = AgentRecords(
                            run, restarts, _read_stop(directory)
                        )
        return found

    def begin_agent(
        self, slot: str, index: int, restarts: int, now: float
    ) -> tuple[Path, dict[str, Any]]:
        """Record a new run of an agent before spawning it; returns its directory and the
        record, which the wrapper keeps."""
        directory = self.agent_dir(slot, index)
        data: dict[str, Any] = {
            "phase": str(AttemptPhase.STARTING),
            "spawnedAt": now,
            "restarts": restarts,
        }
        with recording(directory):
            os.makedirs(directory / "work", exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / "stop.json")
            write_json(str(directory / "run.json"), data)
            if read_json(str(directory / "run.json")) != data:
                raise OSError(errno.EIO, "the run record does not read back", str(directory))
        return directory, data

    def record_agent_stop(
        self, slot: str, index: int, now: float, grace: float, reason: str
    ) -> None:
        """Record the start of an agent's stop."""
        _record_stop(self.agent_dir(slot, index), now, grace, reason)

    def forget_agent(self, slot: str, index: int) -> None:
        """Remove a removed agent's records."""
        shutil.rmtree(self.agent_dir(slot, index), ignore_errors=True)

    def read_slots(self) -> dict[str, SlotRecord]:
        """Every slot record."""
        try:
            names = sorted(n for n in os.listdir(self.slots) if n.endswith(".json"))
        except FileNotFoundError:
            return {}
        records: dict[str, SlotRecord] = {}
        for name in names:
            data = read_json(str(self.slots / name))
            if data is not None:
                records[name.removesuffix(".json")] = SlotRecord.from_json(data)
        return records

    def write_slot(self, slot: str, record: SlotRecord) -> None:
        """Replace a slot's record."""
        with recording(self.slots):
            os.makedirs(self.slots, exist_ok=True)
            write_json(str(self.slots / f"{slot}.json"), record.to_json())

    def forget_slot(self, slot: str) -> None:
        """Remove a removed slot's record."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.slots / f"{slot}.json")

    def forget(self, job: str) -> None:
        """Remove everything recorded about a job whose spec is gone."""
        prefix = f"{self.job_dir(job)}/"
        self._spawned = {k: v for k, v in self._spawned.items() if not k.startswith(prefix)}
        shutil.rmtree(self.job_dir(job), ignore_errors=True)


def _read_stop(directory: Path) -> StopRecord | None:
    data = read_json(str(directory / "stop.json"))
    if data is None:
        return None
    return StopRecord.from_json(data)


def _record_stop(
    directory: Path, now: float, grace_seconds: float, reason: str, message: str = ""
) -> None:
    path = directory / "stop.json"
    if path.exists():
        return
    with recording(path):
        os.makedirs(directory, exist_ok=True)
        write_json(str(path), StopRecord(now, grace_seconds, reason, message).to_json())
