"""One reconcile pass: load specs, observe, plan, and (unless dry) apply. Shared by every command.

`wnr plan`, `wnr apply` and the daemon all call `Reconciler.run_pass`, so the
plan that is printed is the plan that is executed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.apply import Applier, Failure
from reconciler.cgroupfs import CgroupFS
from reconciler.observe import observe
from reconciler.observed import Observed
from reconciler.plan import Plan, plan
from reconciler.process import reap
from reconciler.specs import Desired, SpecLoader
from reconciler.state import StateDir
from reconciler.usage import Sampler, needs


@dataclass(frozen=True)
class PassResult:
    """What one pass saw, planned and failed to do."""

    desired: Desired
    observed: Observed
    plan: Plan
    failures: tuple[Failure, ...] = ()
    # When running jobs are due for their next sample (user-space limits, idleness).
    resample_after: float | None = None

    @property
    def converged(self) -> bool:
        """Nothing to do and nothing in flight (no job starting, no stop in its grace)."""
        return not self.plan.actions and self.plan.requeue_after is None and not self.failures


class Reconciler:
    """Holds the long-lived pieces (spec cache, cgroup root, state dir, clock)."""

    def __init__(
        self,
        loader: SpecLoader,
        fs: CgroupFS,
        state: StateDir,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.loader = loader
        self.fs = fs
        self.state = state
        self.clock = clock
        self.applier = Applier(fs, state, clock)
        self.sampler = Sampler()

    def run_pass(self, dry_run: bool = False) -> PassResult:
        """Read everything, plan, and apply the plan unless this is a dry run."""
        if not dry_run:
            reap()
        desired = self.loader.load()
        observed = observe(self.fs, self.state)
        now = self.clock()
        wanted = needs(desired, observed, self.state)
        observed = replace(observed, usage=self.sampler.sample(self.fs, wanted, now))
        planned = plan(desired, observed, now)
        resample = min((n.interval for n in wanted.values()), default=None)
        if dry_run or not planned.actions:
            return PassResult(desired, observed, planned, resample_after=resample)
        failures = self.applier.apply(planned.actions)
        return PassResult(desired, observed, planned, tuple(failures), resample)
