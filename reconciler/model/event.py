"""Events as plain data: one thing that happened to one object; pure, below the pipeline.

Derived by the pass (reconciler.status.events, reconciler.apply.statekeeper, the daemon's
guard) and written to the state dir's log by reconciler.host.eventlog; `wnr describe`
shows them. Shaped like a Kubernetes Event: the object, Normal or Warning, a
reason in CamelCase and a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

NORMAL, WARNING = "Normal", "Warning"
# The Warning reason of each plan note about a process out of place (reconciler.observe.membership).
STRAY_REASONS = {"escaped": "Escaped", "intruder": "Intruder", "stray": "StrayProcess"}


@dataclass(frozen=True)
class Event:
    """One thing that happened to one object."""

    time: float
    obj: str  # "Job/foo", "Slot/a", "Root"; `object` in the log
    type: str  # Normal | Warning
    reason: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one log line."""
        return {
            "time": self.time,
            "object": self.obj,
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Any) -> Event | None:
        """Parse one log line's object; None when it is not a whole event."""
        if not isinstance(data, dict):
            return None
        time, obj, kind, reason = (data.get(k) for k in ("time", "object", "type", "reason"))
        message = data.get("message", "")
        if not isinstance(time, int | float) or isinstance(time, bool):
            return None
        if not all(isinstance(v, str) for v in (obj, kind, reason, message)):
            return None
        return cls(float(time), str(obj), str(kind), str(reason), str(message))


class NoteLike(Protocol):
    """A plan note (reconciler.plan.Note), as far as events need one."""

    @property
    def obj(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def message(self) -> str: ...


def stray_events(
    notes: Iterable[NoteLike], reported: Mapping[str, str], now: float
) -> tuple[dict[str, str], list[Event]]:
    """A Warning per process out of place, once while it stays where it is: the marks to keep
    with the reported phases (so that a later `wnr apply` does not report it again either),
    and the events of those not in `reported` yet."""
    marks: dict[str, str] = {}
    events: list[Event] = []
    for note in notes:
        reason = STRAY_REASONS.get(note.kind)
        if reason is None:
            continue
        key = f"Stray/{note.obj}/{note.kind}/{note.message}"
        marks[key] = reason
        if key not in reported:
            events.append(Event(now, note.obj, WARNING, reason, note.message))
    return marks, events
