"""The records of the state dir as plain data: attempts, stops, slots and agents; pure.

`state` reads and writes them (with the wrapper, which writes the same JSON);
`observe` hands them to the planner and `jobphase` derives a job's phase from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AttemptPhase(StrEnum):
    """An attempt's (or agent run's) phase: the record's "phase" key, as the daemon
    (reconciler.host.statedir) and the wrapper (reconciler/host/wrapper/record.c) write it."""

    STARTING = "starting"  # recorded by the daemon before it spawns the wrapper
    RUNNING = "running"  # the wrapper has started the payload
    EXITED = "exited"  # the payload ended; how is in the record
    FAILED_START = "failed-start"  # nothing ran: the payload could not be started

    @classmethod
    def of(cls, value: object) -> AttemptPhase:
        """The phase a record names; one it does not name is still starting (and so times
        out like a start that never reported)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.STARTING


# Phases in which the attempt's wrapper should be alive. A tuple, not a set: membership by
# equality holds for a phase read as a plain string too (an Enum hashes by its name).
LIVE_PHASES = (AttemptPhase.STARTING, AttemptPhase.RUNNING)


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a job, as the daemon and its wrapper recorded it."""

    attempt: int
    phase: AttemptPhase
    spawned_at: float
    pid: int | None = None
    wrapper_pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    oom_kills: int | None = None
    # Whose memory limit an OOM kill came from: "job", "slot" or "above" (the wrapper reads
    # memory.events.local of the job, then of its slot); "" without OOM kills.
    oom_level: str = ""
    # Whether the signal that ended the payload dumped core (the wrapper's WCOREDUMP).
    core_dumped: bool = False
    # A SIGTERM or SIGINT the wrapper itself received while the payload ran (a stop).
    terminated_by: int | None = None
    core_files: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    # Whom the payload ran as (the daemon records it before the spawn); "" and None: as wnr.
    user: str = ""
    uid: int | None = None
    error_class: str = ""  # for failed-start: ErrorA (image or runtime missing) or ErrorVN
    message: str = ""
    # For failed-start: the same attempt would fail the same way (E2BIG), so no retry.
    terminal: bool = False
    # When the daemon wrote this record back from memory after the state dir lost it
    # (`restoredAt`); the wrapper's next record replaces it.
    restored_at: float | None = None
    # For a starting attempt, whether its wrapper process still exists (set by observe).
    wrapper_alive: bool | None = None

    @classmethod
    def from_json(cls, attempt: int, data: dict[str, Any]) -> AttemptRecord:
        """Build from the camelCase JSON both writers use; unknown keys are ignored."""
        return cls(
            attempt=attempt,
            phase=AttemptPhase.of(data.get("phase", AttemptPhase.STARTING)),
            spawned_at=float(data.get("spawnedAt", 0.0)),
            pid=data.get("pid"),
            wrapper_pid=data.get("wrapperPid"),
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
            exit_code=data.get("exitCode"),
            signal=data.get("signal"),
            cpu_seconds=data.get("cpuSeconds"),
            peak_memory_bytes=data.get("peakMemoryBytes"),
            oom_kills=data.get("oomKills"),
            oom_level=str(data.get("oomLevel") or ""),
            core_dumped=data.get("coreDumped") is True,
            terminated_by=data.get("terminatedBy"),
            core_files=tuple(data.get("coreFiles") or ()),
            gpus=tuple(data.get("gpus") or ()),
            user=str(data.get("user") or ""),
            uid=data.get("uid"),
            error_class=str(data.get("errorClass", "")),
            message=str(data.get("message", "")),
            terminal=data.get("terminal") is True,
            restored_at=data.get("restoredAt"),
        )

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON form (unset members left out), to write a lost record back."""
        data: dict[str, Any] = {
            "phase": str(self.phase),
            "spawnedAt": self.spawned_at,
            "pid": self.pid,
            "wrapperPid": self.wrapper_pid,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "exitCode": self.exit_code,
            "signal": self.signal,
            "cpuSeconds": self.cpu_seconds,
            "peakMemoryBytes": self.peak_memory_bytes,
            "oomKills": self.oom_kills,
            "oomLevel": self.oom_level,
            "coreDumped": self.core_dumped or None,
            "terminatedBy": self.terminated_by,
            "coreFiles": list(self.core_files),
            "gpus": list(self.gpus),
            "user": self.user,
            "uid": self.uid,
            "errorClass": self.error_class,
            "message": self.message,
            "terminal": self.terminal or None,
            "restoredAt": self.restored_at,
        }
        return {k: v for k, v in data.items() if v not in (None, "", [])}


@dataclass(frozen=True)
class StopRecord:
    """A stop in progress: SIGTERM was sent at `requested_at`; SIGKILL after the grace.

    `reason` is one word (a STOP_REASONS member becomes the job's reason; others, such as
    Deleted, do not); `message` says what was measured ("working set 80Mi over memory 64Mi").
    """

    requested_at: float
    grace_seconds: float
    reason: str
    message: str = ""

    @property
    def text(self) -> str:
        """Reason and message as one line."""
        return f"{self.reason}: {self.message}" if self.message else self.reason

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON form of `stop.json`."""
        data: dict[str, Any] = {
            "requestedAt": self.requested_at,
            "graceSeconds": self.grace_seconds,
            "reason": self.reason,
        }
        if self.message:
            data["message"] = self.message
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StopRecord:
        """Parse `stop.json`; one written before reason and message were apart has them as
        "Reason: message" in `reason`."""
        reason, message = str(data.get("reason", "")), data.get("message")
        if message is None:
            reason, _, message = reason.partition(": ")
        return cls(float(data["requestedAt"]), float(data["graceSeconds"]), reason, str(message))


@dataclass(frozen=True)
class JobRecords:
    """Everything the state dir holds about one job."""

    attempts: tuple[AttemptRecord, ...] = ()
    stop: StopRecord | None = None
    # The newest attempt, if any: made once, for every stage of every pass asks for it.
    last: AttemptRecord | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "last", self.attempts[-1] if self.attempts else None)


@dataclass(frozen=True)
class SlotRecord:
    """What must outlive a Slot's spec: its grace periods, and when its drain began."""

    drain_grace_seconds: float
    termination_grace_seconds: float
    draining_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON form."""
        return {
            "drainGracePeriodSeconds": self.drain_grace_seconds,
            "terminationGracePeriodSeconds": self.termination_grace_seconds,
            "drainingSince": self.draining_since,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SlotRecord:
        """Parse the JSON form."""
        since = data.get("drainingSince")
        return cls(
            float(data["drainGracePeriodSeconds"]),
            float(data["terminationGracePeriodSeconds"]),
            float(since) if since is not None else None,
        )


@dataclass(frozen=True)
class AgentRecords:
    """What the state dir holds about one agent replica: its last run and restart count."""

    run: AttemptRecord | None = None
    restarts: int = 0
    stop: StopRecord | None = None
