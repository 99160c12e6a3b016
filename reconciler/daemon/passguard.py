"""What keeps the daemon's loop going: a pass that raises, and errors that repeat every pass.

Used by the daemon around each pass (reconciler.daemon.loop). A bug anywhere in a
pass (loader, planner, apply) must not end the node's reconciler: systemd
would restart it into the same state and the node would crash-loop, no
longer reconciled. So an exception is logged with its traceback once, recorded
as a Warning event on the object it was raised for (`ObjectError`), and the
loop backs off (0.5 s doubling to 30 s) and tries again. When the same
failure of one Job repeats `QUARANTINE_AFTER` times, that Job is quarantined:
the planner reports it Failed (`ReconcileError`, with the error) and leaves
it alone, until its spec changes, so that one object cannot hold up the node.

`ErrorLog` logs each spec error once while it stays, not on every pass: a
file of 100,000 bad documents once filled hundreds of megabytes of log.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from reconciler.host.eventlog import EventLog
from reconciler.model.desired import SpecError
from reconciler.model.errors import ObjectError
from reconciler.model.event import WARNING, Event

log = logging.getLogger("wnr.daemon")

BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
QUARANTINE_AFTER = 3
NODE = "Node"

T = TypeVar("T")


@dataclass(frozen=True)
class PassFailure:
    """One exception a pass raised: the object it was for and a digest of what and where."""

    obj: str
    error: str
    where: str

    @classmethod
    def of(cls, exc: BaseException) -> PassFailure:
        """Classify an exception; the cause of an ObjectError is what went wrong."""
        obj = exc.obj if isinstance(exc, ObjectError) else NODE
        cause = exc.__cause__ if isinstance(exc, ObjectError) and exc.__cause__ else exc
        frames = traceback.extract_tb(cause.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        return cls(obj, f"{type(cause).__name__}: {str(cause)[:300]}", where)


class PassGuard:
    """Runs passes, containing their exceptions; counts repeats and picks what to quarantine."""

    def __init__(self, events: EventLog, clock: Callable[[], float]) -> None:
        self.events = events
        self.clock = clock
        self.backoff = BACKOFF_MIN
        self.last: PassFailure | None = None
        self.repeats = 0
        # Job name -> the error it is quarantined for; the reconciler's planner reads it.
        self.quarantined: dict[str, str] = {}
        # The spec each quarantined job had when it was first seen quarantined.
        self._specs: dict[str, object] = {}

    def run(self, one_pass: Callable[[], T]) -> T | None:
        """The pass's result, or None when it raised (then `backoff` says how long to wait)."""
        try:
            result = one_pass()
        except Exception as exc:  # containing every bug is the point
            self._failed(exc)
            return None
        if self.last is not None:
            log.info("passes succeed again after %d failure(s)", self.repeats)
            self._event(self.last.obj, "PassRecovered", "the reconcile pass succeeds again")
        self.last, self.repeats, self.backoff = None, 0, BACKOFF_MIN
        return result

    def _failed(self, exc: Exception) -> None:
        failure = PassFailure.of(exc)
        if failure == self.last:
            self.repeats += 1
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            log.warning(
                "the pass failed again (%d times) on %s: %s",
                self.repeats,
                failure.obj,
                failure.error,
            )
        else:
            self.last, self.repeats, self.backoff = failure, 1, BACKOFF_MIN
            log.error(
                "the pass failed on %s", failure.obj, exc_info=exc, extra={"object": failure.obj}
            )
            self._event(failure.obj, "PassFailed", f"{failure.error} (at {failure.where})")
        kind, _, name = failure.obj.partition("/")
        if kind == "Job" and self.repeats >= QUARANTINE_AFTER and name not in self.quarantined:
            self.quarantined[name] = failure.error
            fields = {"object": failure.obj, "reason": "Quarantined"}
            log.error(
                "quarantining %s after %d failed passes", failure.obj, self.repeats, extra=fields
            )
            message = f"left alone after {self.repeats} failed passes: {failure.error}"
            self._event(failure.obj, "Quarantined", message)
            # The next pass plans without it; try again at once.
            self.backoff = BACKOFF_MIN

    def track(self, specs: Mapping[str, object]) -> None:
        """Lift the quarantine of jobs whose spec changed or went away since it began."""
        for name in list(self.quarantined):
            spec = specs.get(name)
            first = self._specs.setdefault(name, spec)
            if spec is None or spec != first:
                del self.quarantined[name]
                del self._specs[name]
                log.info("Job/%s: its spec changed; planning it again", name)

    def _event(self, obj: str, reason: str, message: str) -> None:
        try:
            self.events.append([Event(self.clock(), obj, WARNING, reason, message)])
        except OSError as exc:
            log.warning("cannot write the event log: %s", exc)


class ErrorLog:
    """Logs each spec error once, while it lasts; the summary of a file counts as one."""

    def __init__(self) -> None:
        self.shown: frozenset[str] = frozenset()

    def log(self, errors: Iterable[SpecError]) -> None:
        """Log the errors not logged since they last appeared."""
        current = {str(e): e for e in errors}
        for text, error in current.items():
            if text not in self.shown:
                log.error("%s", text, extra=spec_error_fields(error))
        still = frozenset(current)
        for gone in sorted(self.shown - still):
            log.info("resolved: %s", gone)
        self.shown = still


def spec_error_fields(error: SpecError) -> dict[str, object]:
    """What a spec error's log line carries as fields (reconciler.render.logrecords)."""
    fields: dict[str, object] = {"file": error.path, "line": error.line, "column": error.column}
    if error.kind or error.name:
        fields["object"] = f"{error.kind or '?'}/{error.name or '?'}"
    if error.field:
        fields["field"] = error.field
    return fields
