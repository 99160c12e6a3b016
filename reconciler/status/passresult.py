"""What one pass saw, planned and failed to do: plain data that every command reads.

`Reconciler.run_pass` (reconciler.reconcile) returns it; status, events
(reconciler.status.events), the rendering of `wnr plan` and the daemon read it.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.actions import Failure
from reconciler.model.desired import Desired
from reconciler.model.observed import Observed, StateFault
from reconciler.model.records import AttemptPhase
from reconciler.model.stored import ObjectKey, StoredObject
from reconciler.plan import Plan


@dataclass(frozen=True)
class PassResult:
    """What one pass saw, planned and failed to do."""

    desired: Desired
    observed: Observed
    plan: Plan
    failures: tuple[Failure, ...] = ()
    # When running jobs are due for their next sample (user-space limits, idleness).
    resample_after: float | None = None
    # The PIDs of the wrappers this pass spawned.
    spawned: tuple[int, ...] = ()
    # The object store after this pass's specs (reconciler.plan.identity): uids, generations.
    stored: Mapping[ObjectKey, StoredObject] = field(default_factory=dict)
    # Only due usage samples were taken, which read as the last full pass's did: the rest is
    # that pass's (reconciler.samplesonly).
    samples_only: bool = False

    @property
    def state_fault(self) -> StateFault | None:
        """Why the state dir cannot record, if it cannot (no job starts then)."""
        return self.observed.state_fault

    @property
    def settled(self) -> bool:
        """Nothing done, failed or out of place, and every agent running: what a later pass
        would do can change only with an event (a spec, a wrapper's exit), a requeue, a turn
        (`Plan.holds_until`), the resync, or what a usage sample reads."""
        observed = self.observed
        return (
            not self.plan.actions
            and not self.failures
            and observed.state_fault is None
            and not observed.strays
            and not observed.intruders
            and set(observed.agents) == set(observed.agent_records)
            and all(cgroup.populated for cgroup in observed.agents.values())
            and all(
                agent.stop is None
                and agent.run is not None
                and agent.run.phase == AttemptPhase.RUNNING
                for agent in observed.agent_records.values()
            )
        )

    @property
    def converged(self) -> bool:
        """Nothing to do and nothing in flight (no job starting, no stop in its grace)."""
        return not self.plan.actions and self.plan.requeue_after is None and not self.failures
