"""The plan under construction and the finished `Plan`; shared by every planner step."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.accounts import RunAs
from reconciler.model.actions import Action
from reconciler.model.desired import Desired
from reconciler.model.observed import Observed
from reconciler.plan.jobphase import JobView


@dataclass(frozen=True)
class Note:
    """Something the admin should know that is not an action (nothing to do about it here)."""

    obj: str
    # not-enforced-by-kernel | not-enforced-yet | kept | foreign | waiting | escaped |
    # intruder | stray | runs-as-root
    kind: str
    message: str
    # For a limit the kernel cannot enforce: its interface file ("memory.max"), which status
    # reads instead of parsing the message.
    file: str = ""

    def __str__(self) -> str:
        return f"{self.obj}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class Plan:
    """The ordered actions, the notes, each job's view, and when to look again."""

    actions: tuple[Action, ...]
    notes: tuple[Note, ...] = ()
    jobs: Mapping[str, JobView] = field(default_factory=dict)
    requeue_after: float | None = None
    # When each desired slot's drain began or begins (its state or its deadline); None when
    # it is not draining. Status reads it from here.
    drain_starts: Mapping[str, float | None] = field(default_factory=dict)
    # Who each desired slot's processes run as (reconciler.plan.runas); status reads it here.
    run_as: Mapping[str, RunAs] = field(default_factory=dict)
    # The earliest time at which planning from the same inputs could come out otherwise: a
    # requeue, or a moment a fresh sample decides (Builder.turns_at).
    holds_until: float = math.inf
    # The notes made while each desired slot was planned (its own, its agents', its jobs'),
    # in plan order: all that its status reads of notes (a slot of kept jobs hands out the
    # very same notes pass after pass: reconciler.plan.memo.SlotPlan).
    slot_notes: Mapping[str, tuple[Note, ...]] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """A digest of the actions, for `wnr apply --expect`."""
        text = json.dumps([a.to_dict() for a in self.actions], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Builder:
    """What every planner step reads (desired, observed, now) and what it adds to."""

    def __init__(
        self,
        desired: Desired,
        observed: Observed,
        now: float,
        quarantined: Mapping[str, str] | None = None,
    ) -> None:
        self.desired = desired
        # Jobs left alone because planning them kept raising (reconciler.daemon.passguard).
        self.quarantined = quarantined or {}
        self.observed = observed
        self.node = desired.node_spec
        self.enabled: frozenset[str] = frozenset()
        self.now = now
        self.actions: list[Action] = []
        self.notes: list[Note] = []
        self.jobs: dict[str, JobView] = {}
        self.drain_starts: dict[str, float | None] = {}
        self.run_as: dict[str, RunAs] = {}
        self.slot_notes: dict[str, tuple[Note, ...]] = {}
        self.wake: list[float] = []
        # Times at which the plan would come out otherwise though no pass is due then.
        self.turns: list[float] = []

    def add(self, action: Action) -> None:
        """Append an action."""
        self.actions.append(action)

    def note(self, obj: str, kind: str, message: str, file: str = "") -> None:
        """Append a note."""
        self.notes.append(Note(obj, kind, message, file))

    def requeue_at(self, when: float) -> None:
        """Ask for another pass at `when` (the earliest such time wins)."""
        self.wake.append(when)

    def turns_at(self, when: float) -> None:
        """Say that planning at `when` would come out otherwise, without asking for a pass then
        (a check that a fresh sample decides first): plans kept between passes
        (reconciler.plan.memo) expire at it."""
        self.turns.append(when)

    def build(self) -> Plan:
        """The finished plan."""
        after = max(0.0, min(self.wake) - self.now) if self.wake else None
        return Plan(
            tuple(self.actions),
            tuple(self.notes),
            self.jobs,
            after,
            self.drain_starts,
            self.run_as,
            min((*self.wake, *self.turns), default=math.inf),
            self.slot_notes,
        )
