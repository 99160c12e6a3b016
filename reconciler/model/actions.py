"""The actions a plan is made of: what `wnr plan` prints and what apply executes.

Each action is a frozen dataclass naming its op, the object it is for and
the cgroup path (relative to the root), so the dry run and the real run are
the same list. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from reconciler.model.accounts import Account
from reconciler.model.api import LOG_MAX_FILES_DEFAULT, LOG_MAX_SIZE_DEFAULT


@dataclass(frozen=True)
class Action:
    """Base of all actions."""

    op: ClassVar[str] = "action"
    obj: str  # "Slot/a", "Job/b", "Root"
    path: str  # cgroup path relative to the root ("" is the root)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`wnr plan -o json`), op first."""
        data: dict[str, Any] = {"op": self.op}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, Account):
                value = value.to_dict()
            data[item.name] = value
        return data

    def describe(self) -> str:
        """One line for the text plan."""
        return f"{self.op:<19} {self.obj:<24} {self.path or '<root>'}"


@dataclass(frozen=True)
class CreateCgroup(Action):
    """mkdir a cgroup."""

    op: ClassVar[str] = "create-cgroup"


@dataclass(frozen=True)
class EnableControllers(Action):
    """Write `+ctl` for each controller to cgroup.subtree_control."""

    op: ClassVar[str] = "enable-controllers"
    controllers: tuple[str, ...] = ()

    def describe(self) -> str:
        """The controllers to enable."""
        return f"{super().describe()}  +{' +'.join(self.controllers)}"


@dataclass(frozen=True)
class WriteLimit(Action):
    """Write one interface file; `old` is None when the cgroup does not exist yet."""

    op: ClassVar[str] = "write-limit"
    file: str = ""
    old: str | None = None
    new: str = ""

    def describe(self) -> str:
        """The file with its old and new value."""
        old = "-" if self.old is None else repr(self.old)
        return f"{super().describe()}  {self.file}: {old} -> {self.new!r}"


@dataclass(frozen=True)
class StartJob(Action):
    """Record a new attempt and spawn its wrapper into the job cgroup."""

    op: ClassVar[str] = "start-job"
    job: str = ""
    slot: str = ""
    attempt: int = 1
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Where the payload runs: the spec's workingDir, else the job's own work dir (planned).
    working_dir: str = ""
    image: str | None = None
    gpus: tuple[str, ...] = ()
    # The Node's policies.logs: the wrapper rotates the payload's output at this size.
    log_max_size: int = LOG_MAX_SIZE_DEFAULT
    log_max_files: int = LOG_MAX_FILES_DEFAULT
    # Set when the attempt cannot start (image or runtime missing): apply records it as
    # failed (ErrorA) without spawning anything.
    error: str = ""
    # Who the wrapper runs the payload as (reconciler.plan.runas); None: as wnr itself.
    credentials: Account | None = None

    def describe(self) -> str:
        """The attempt, whom it runs as, and the exact command."""
        if self.error:
            return f"{super().describe()}  attempt {self.attempt} fails: {self.error}"
        return f"{super().describe()}  attempt {self.attempt}{_as(self.credentials)}: " + " ".join(
            self.argv
        )


@dataclass(frozen=True)
class StartAgent(Action):
    """Record a new run of an agent replica and spawn its wrapper into the agent cgroup."""

    op: ClassVar[str] = "start-agent"
    slot: str = ""
    index: int = 0
    restarts: int = 0
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    log_max_size: int = LOG_MAX_SIZE_DEFAULT  # policies.logs, as for StartJob
    log_max_files: int = LOG_MAX_FILES_DEFAULT
    # Who the wrapper runs it as, as for StartJob.
    credentials: Account | None = None

    def describe(self) -> str:
        """The replica, its restart count, whom it runs as and the command."""
        who = _as(self.credentials)
        return f"{super().describe()}  restart {self.restarts}{who}: {' '.join(self.argv)}"


@dataclass(frozen=True)
class ForgetAgent(Action):
    """Delete a removed agent replica's records."""

    op: ClassVar[str] = "forget-agent"
    slot: str = ""
    index: int = 0


@dataclass(frozen=True)
class Signal(Action):
    """Send a signal to every process in a job cgroup but its wrapper (which stays to record
    the end), recording when the stop began."""

    op: ClassVar[str] = "signal"
    job: str = ""
    signal: str = "SIGTERM"
    grace_seconds: float = 30.0
    reason: str = ""
    spare: int | None = None
    agent: int | None = None  # set for an agent replica of `slot`
    slot: str = ""
    # What was measured, beside the one-word reason ("working set 80Mi over memory 64Mi").
    message: str = ""

    @property
    def why(self) -> str:
        """Reason and message as one line."""
        return f"{self.reason}: {self.message}" if self.message else self.reason

    def describe(self) -> str:
        """The signal and why."""
        grace = f"kill after {self.grace_seconds:g}s"
        return f"{super().describe()}  {self.signal} ({self.why}; {grace})"


@dataclass(frozen=True)
class KillCgroup(Action):
    """SIGKILL everything in a cgroup subtree (cgroup.kill), once a stop's grace has passed
    (its Signal recorded why) or for what a finished job left behind."""

    op: ClassVar[str] = "kill-cgroup"
    reason: str = ""

    def describe(self) -> str:
        """Why."""
        return f"{super().describe()}  ({self.reason})"


@dataclass(frozen=True)
class RemoveCgroup(Action):
    """rmdir an empty cgroup."""

    op: ClassVar[str] = "remove-cgroup"


@dataclass(frozen=True)
class RecordSlot(Action):
    """Write a slot's record: its grace periods (they outlive its spec) and drain start."""

    op: ClassVar[str] = "record-slot"
    slot: str = ""
    drain_grace_seconds: float = 0.0
    termination_grace_seconds: float = 0.0
    draining_since: float | None = None

    def describe(self) -> str:
        """The recorded values."""
        since = "" if self.draining_since is None else f", draining since {self.draining_since:.0f}"
        graces = (
            f"drain {self.drain_grace_seconds:g}s, termination {self.termination_grace_seconds:g}s"
        )
        return f"{super().describe()}  {graces}{since}"


@dataclass(frozen=True)
class ForgetSlot(Action):
    """Delete a removed slot's record from the state dir."""

    op: ClassVar[str] = "forget-slot"
    slot: str = ""


@dataclass(frozen=True)
class RecordEnd(Action):
    """Write the end of an attempt whose wrapper died with its job (an OOM group kill), in
    the wrapper's place: `record` is the attempt's JSON record as it ends."""

    op: ClassVar[str] = "record-end"
    job: str = ""
    attempt: int = 1
    record: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The attempt and why."""
        return f"{super().describe()}  attempt {self.attempt}: its wrapper died with it (OOM)"


@dataclass(frozen=True)
class ForgetJob(Action):
    """Delete a removed job's records from the state dir."""

    op: ClassVar[str] = "forget-job"
    job: str = ""


@dataclass(frozen=True)
class KillStrays(Action):
    """SIGKILL a job's escapees (its processes outside its cgroup) once the job ends; each is
    named by PID and start time, and apply signals only the process that still matches both."""

    op: ClassVar[str] = "kill-escapees"
    job: str = ""
    pids: tuple[tuple[int, int], ...] = ()  # (PID, start time in clock ticks after boot)
    reason: str = ""

    def describe(self) -> str:
        """The PIDs and why."""
        pids = ", ".join(str(pid) for pid, _ in self.pids)
        return f"{super().describe()}  SIGKILL {pids} ({self.reason})"


class FailureKind(StrEnum):
    """How a failed action is retried (the daemon acts on it; controller-runtime's classes)."""

    # May pass by itself (EBUSY, EAGAIN, an I/O hiccup): the loop retries with back-off.
    TRANSIENT = "transient"
    # Repeats until something changes (EACCES, a value the kernel reads back otherwise, a
    # bug): reported once, tried again only on the next event or resync, never on a timer.
    TERMINAL = "terminal"
    # Not tried: an earlier action on its cgroup failed in this pass.
    SKIPPED = "skipped"
    # The state dir cannot record: one Node condition, rechecked every second.
    STATE_DIR = "state-dir"


@dataclass(frozen=True)
class Failure:
    """An action that did not complete: its position in the plan, why, and how it retries."""

    index: int
    action: Action
    error: str
    kind: FailureKind

    def __str__(self) -> str:
        return f"{self.action.op} {self.action.obj}: {self.error}"


def _as(credentials: Account | None) -> str:
    """` as nobody` in a start's line; nothing when the wrapper keeps wnr's own identity."""
    return f" as {credentials.name}" if credentials is not None else ""
