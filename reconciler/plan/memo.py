"""Planner memory between passes: a running job whose inputs are what they were last pass gets
last pass's plan of it back instead of being planned again.

kubelet's PLEG relists every container cheaply and syncs only the pods that changed; here the
relist is observe (which reuses what it read of quiet jobs: reconciler.observe.quiet) and the
sync is the planner. A running job's plan is a function of its inputs (`JobInputs`: its Job
and Slot objects, its records, what it reads of its usage sample, its cgroup as observed, its
slot's drain, the Node, the root's controllers) and of the time. Every comparison with the
time in a running job's plan asks for a pass at the moment it would turn out otherwise
(`Builder.requeue_at`), or, where a fresh sample decides first, marks that moment
(`Builder.turns_at`), so a kept plan holds until the earliest of those moments. Only running
jobs whose plan asks for no action are kept: a pending job depends on its slot's room and on
who runs it, a starting one changes by itself, a finished one leaves, and an action changes
the job's inputs. Spec objects and records are compared by identity: the spec loader and the
state dir cache hand out the same objects while nothing changed, and a new object only costs
one planning.

A slot whose every job was kept, and whose planning asked for no action, is kept whole
(`SlotPlan`): the next pass that finds the very same jobs, placements, records and samples
in it hands the slot's views, notes and wake-ups back without a look at each job's inputs,
which is where a pass among thousands of quiet jobs spent its planning (the job exit among
2,000 jobs replans one slot of them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from reconciler.model.api import Job, NodeSpec, Slot
from reconciler.model.observed import CgroupState, Usage
from reconciler.model.records import JobRecords
from reconciler.plan.builder import Note
from reconciler.plan.jobphase import JobView
from reconciler.plan.samples import reads_alike


class JobInputs(NamedTuple):
    """Everything a running job's plan reads, but the time (a tuple: built for every job on
    every pass)."""

    job: Job
    slot: Slot
    records: JobRecords | None
    sample: Usage | None  # compared by what the plan reads of it (samples.usage_read)
    cgroup: CgroupState | None
    observed_slot: str | None
    drain_start: float | None
    node: NodeSpec
    enabled: frozenset[str]

    def same(self, other: JobInputs) -> bool:
        """Whether a plan made from `other` is this one's (the time aside)."""
        return (
            self.job is other.job
            and self.slot is other.slot
            and self.records is other.records
            and reads_alike(self.sample, other.sample, self.job, self.node)
            and self.node is other.node
            and self.drain_start == other.drain_start
            and self.observed_slot == other.observed_slot
            and self.enabled == other.enabled
            and (self.cgroup is other.cgroup or self.cgroup == other.cgroup)
        )


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A running job's part of a pass's plan that asked for no action, and until when it
    holds."""

    inputs: JobInputs
    view: JobView
    notes: tuple[Note, ...]
    wake: tuple[float, ...]
    turns: tuple[float, ...] = ()
    # The earliest time at which planning again could come out otherwise.
    until: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "until", min((*self.wake, *self.turns), default=math.inf))


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """A slot's jobs' part of a pass's plan where every job was kept (no action), with the
    inputs it came from (`SlotPlan.key_of`) and until when it holds."""

    key: tuple[object, ...]
    plans: dict[str, JobPlan]
    notes: tuple[Note, ...]
    wake: tuple[float, ...]
    turns: tuple[float, ...]
    until: float

    @staticmethod
    def key_of(  # noqa: PLR0917 - what every job of one slot reads
        slot: Slot,
        jobs: tuple[Job, ...],
        observed: tuple[Mapping[str, object], Mapping[str, object], Mapping[str, object]],
        drain_start: float | None,
        node: NodeSpec,
        enabled: frozenset[str],
    ) -> tuple[object, ...]:
        """Every job's inputs at once (JobInputs, each job's placement standing for its cgroup
        and observed slot), looked up with `map` so that a slot of quiet jobs is compared in C:
        `observed` is (placements, records, samples) by job name."""
        names = [job.metadata.name for job in jobs]
        placements, records, samples = observed
        return (
            slot,
            jobs,
            tuple(map(placements.get, names)),
            tuple(map(records.get, names)),
            tuple(map(samples.get, names)),
            drain_start,
            node,
            enabled,
        )


class PlanMemo:
    """Last pass's plans of running jobs, by job name, and of slots whose every job was kept,
    by slot name; forgets what a pass did not plan."""

    def __init__(self) -> None:
        self._last: dict[str, JobPlan] = {}
        self._this: dict[str, JobPlan] = {}
        self._last_slots: dict[str, SlotPlan] = {}
        self._this_slots: dict[str, SlotPlan] = {}
        self.hits = 0  # plans handed back in the last pass (for profiles and tests)

    def begin(self) -> None:
        """A pass begins: what the previous one kept is what can be recalled."""
        self._last, self._this = self._this, {}
        self._last_slots, self._this_slots = self._this_slots, {}
        self.hits = 0

    def recall_slot(self, slot: str, key: tuple[object, ...], now: float) -> SlotPlan | None:
        """Last pass's plan of the slot's jobs if each job's inputs are the same (tuple
        equality: identity first) and it still holds; its jobs' plans are kept again."""
        kept = self._last_slots.get(slot)
        if kept is None or now >= kept.until or kept.key != key:
            return None
        self._this_slots[slot] = kept
        self._this.update(kept.plans)
        self.hits += len(kept.plans)
        return kept

    def keep_slot(self, slot: str, planned: SlotPlan) -> None:
        """Remember a slot whose every job's plan was kept."""
        self._this_slots[slot] = planned

    def kept(self, name: str) -> JobPlan | None:
        """The plan kept of a job this pass, if any."""
        return self._this.get(name)

    def recall(self, name: str, inputs: JobInputs, now: float) -> JobPlan | None:
        """Last pass's plan of this job if its inputs are the same and it still holds."""
        kept = self._last.get(name)
        if kept is None or now >= kept.until or not inputs.same(kept.inputs):
            return None
        self._this[name] = kept
        self.hits += 1
        return kept

    def keep(self, name: str, planned: JobPlan) -> None:
        """Remember a running job's plan for the next pass."""
        self._this[name] = planned

    def __len__(self) -> int:
        return len(self._this)
