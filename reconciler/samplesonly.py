"""Passes that take due usage samples alone: what the daemon's timer passes do on a settled node.

Part of the reconcile step, which asks here first (reconciler.reconcile). After a settled
full pass (nothing done, failed or out of place, every job quiet, every agent's wrapper
watched), a pass the daemon's timer woke with no event since (no spec change, no wrapper's
exit), no requeue or turn reached (`Plan.holds_until`) and no resync due takes the due usage
samples; when each reads as the last full pass's did (reconciler.plan.samples: the limits it
is over, the last active time, the stall figures to the percent; and the PIDs membership
compares), that is all that could have changed, the rest of the pass would come out the
same, and it is not run. Otherwise the full pass follows at the same time, with the samples
and the PIDs read. The root and the slots are looked at too: a process there is a stray
every pass reports. What only observe reads, a limit written by hand on a slot or an agent,
is seen at the next full pass (at the latest the resync), as for a quiet job
(reconciler.observe.quiet).

kubelet's eviction manager likewise samples on its own cadence and syncs nothing unless a
threshold is crossed; a node whose kernel enforces every limit sleeps to the resync between
events in the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from reconciler.apply.statekeeper import StateKeeper
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.exits import ExitWatch
from reconciler.model.layout import slot_cgroup
from reconciler.model.observed import Need
from reconciler.observe.membership import Membership
from reconciler.observe.nodefacts import cached
from reconciler.observe.usage import Sampler
from reconciler.plan.samples import samples_hold
from reconciler.status.passresult import PassResult


@dataclass(frozen=True)
class Steady:
    """A settled full pass: what it sampled by, when it ran, and the settings it ran with."""

    result: PassResult
    wanted: Mapping[str, Need]
    at: float
    metrics_interval: float | None
    quarantined: Mapping[str, str]


class SamplesOnly:
    """The last settled full pass, and the passes after it that take samples alone."""

    def __init__(
        self,
        fs: CgroupFS,
        sampler: Sampler,
        membership: Membership,
        keeper: StateKeeper,
        exits: ExitWatch,
    ) -> None:
        self.fs = fs
        self.sampler = sampler
        self.membership = membership
        self.keeper = keeper
        self.exits = exits
        self.steady: Steady | None = None

    def forget(self) -> Steady | None:
        """The settled pass, no longer kept (a pass begins: it keeps it again, or settles)."""
        steady, self.steady = self.steady, None
        return steady

    def settle(  # noqa: PLR0917 - one full pass and the settings it ran with
        self,
        result: PassResult,
        wanted: Mapping[str, Need],
        now: float,
        calm: bool,
        metrics_interval: float | None,
        quarantined: Mapping[str, str],
    ) -> None:
        """After a full pass: kept when it settled and is `calm` (every job it observed quiet,
        no event waiting to be written), every agent's wrapper is watched (its exit wakes the
        loop) and no slot waits for its user to exist (accounts are looked up again by time)."""
        agents = result.observed.agent_records.values()
        settled = (
            calm
            and result.settled
            and all(
                a.run is not None
                and a.run.wrapper_pid is not None
                and self.exits.watching(a.run.wrapper_pid)
                for a in agents
            )
            and not any(chosen.refusal for chosen in result.plan.run_as.values())
        )
        self.steady = (
            Steady(result, wanted, now, metrics_interval, dict(quarantined)) if settled else None
        )

    def take(
        self,
        steady: Steady,
        now: float,
        metrics_interval: float | None,
        quarantined: Mapping[str, str],
    ) -> PassResult | None:
        """The due samples taken at `now`: the last full pass's result with them when each
        reads as before, else None (a full pass is due)."""
        last = steady.result
        site = last.desired.node.spec.site_overrides if last.desired.node is not None else None
        if (
            now >= last.plan.holds_until
            or metrics_interval != steady.metrics_interval
            or quarantined != steady.quarantined
            or self.membership.owed
            or self.keeper.fault is not None
            or self.keeper.pending
            or cached(site) is not last.observed.facts
            or any(self.fs.procs(rel) for rel in ("", *map(slot_cgroup, last.observed.slots)))
        ):
            return None
        usage = self.sampler.sample(self.fs, steady.wanted, now)
        procs = self.sampler.procs_read
        for job, sample in usage.items():
            if sample.sampled_at != now:
                continue
            if job not in procs:
                # A sample that read no PIDs (no memory limit wnr enforces): membership's.
                procs[job] = self.fs.procs(steady.wanted[job].rel)
            if not self.membership.same_pids(job, procs):
                return None
        if not samples_hold(last.desired, last.observed.usage, usage, now):
            return None
        requeue = last.plan.requeue_after
        if requeue is not None:
            requeue = max(0.0, steady.at + requeue - now)
        return replace(
            last,
            observed=replace(last.observed, usage=usage),
            plan=replace(last.plan, requeue_after=requeue),
            samples_only=True,
        )
