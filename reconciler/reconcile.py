"""One reconcile pass: load specs, observe, plan, and (unless dry) apply. Shared by every command.

`wnr plan`, `wnr apply` and the daemon all call `Reconciler.run_pass`, so the
plan that is printed is the plan that is executed. A real pass also logs
events (derived by reconciler.status.events, written by reconciler.host.eventlog): one
per action applied or failed, and one per phase change of a job or slot since
the phase last reported; and keeps the
state dir whole around observe and apply (reconciler.apply.statekeeper). Events the
state dir cannot take yet are kept and written once it can. Between observe and
plan the object store registers this pass's specs (reconciler.apply.registry:
uids, generations, objects held while their predecessor is deleted); after a
real pass each object's status is published into the state dir, file by file
where it changed. A dry pass writes nothing; a pass with nothing to report
does no I/O for it. A pass the daemon's timer woke after a settled one, with no
event since, takes the due usage samples first, and runs no further when each
reads as before (reconciler.samplesonly).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from reconciler.apply.applier import Applier
from reconciler.apply.registry import Registry
from reconciler.apply.statekeeper import StateKeeper
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.eventlog import EventLog
from reconciler.host.exits import ExitWatch, Watched
from reconciler.host.objectstore import ObjectStore, StatusBoard
from reconciler.host.process import is_wrapper, reap
from reconciler.host.statedir import StateDir
from reconciler.model.actions import Action
from reconciler.model.desired import Desired
from reconciler.model.event import Event, stray_events
from reconciler.model.observed import Observed
from reconciler.observe.accounts import Accounts, users_named
from reconciler.observe.membership import Membership
from reconciler.observe.quiet import QuietJobs
from reconciler.observe.snapshot import observe
from reconciler.observe.usage import Needs, Sampler
from reconciler.plan import plan
from reconciler.plan.identity import without_held
from reconciler.plan.memo import PlanMemo
from reconciler.samplesonly import SamplesOnly
from reconciler.specs.loader import SpecLoader
from reconciler.status.events import (
    action_events,
    current_phases,
    phase_events,
    unenforced_events,
)
from reconciler.status.passresult import PassResult
from reconciler.status.published import Publication
from reconciler.status.slots import SlotStatus, SlotStatusMemo, slot_statuses

log = logging.getLogger("wnr.events")

# Events kept while the event log cannot take them.
MAX_UNSENT = 1000
# The longest a published status waits for a pass that publishes (see Reconciler._publish).
REPUBLISH_SECONDS = 10.0


class Reconciler:
    """Holds the long-lived pieces (spec cache, cgroup root, state dir, clock)."""

    def __init__(
        self,
        loader: SpecLoader,
        fs: CgroupFS,
        state: StateDir,
        clock: Callable[[], float] = time.time,
        events: EventLog | None = None,
        *,
        store: ObjectStore | None = None,
    ) -> None:
        self.store = store if store is not None else ObjectStore(state.root)
        if loader.fallback is None:
            loader.fallback = self.store.last_good
        self.registry = Registry(self.store)
        self.board = StatusBoard(state.root)
        self.publication = Publication()
        self._unpublished: str | None = None
        # The desired state last published, and when a pass publishes again regardless.
        self._published: tuple[Desired | None, float] = (None, 0.0)
        self._acted = False
        self.loader = loader
        self.fs = fs
        self.state = state
        self.clock = clock
        self.applier = Applier(fs, state, clock)
        self.sampler = Sampler()
        self.needs = Needs()
        self.membership = Membership()
        # Running jobs' plans, kept for passes where their inputs are unchanged; and slots'
        # statuses likewise.
        self.memo = PlanMemo()
        self.slot_memo = SlotStatusMemo()
        # The wrappers' pidfds (the daemon's waker sleeps on them too), and the running jobs
        # whose cgroup and records the next pass need not read again.
        self.exits = ExitWatch()
        self.quiet = QuietJobs()
        # Set by the daemon to its spec directories' inotify (DirWatch.take_changed): whether
        # a spec may have changed since the last pass. None: every pass looks.
        self.spec_changes: Callable[[], bool] | None = None
        self.accounts = Accounts()
        # Set while the daemon serves metrics: how often running jobs' live usage is sampled.
        self.metrics_interval: float | None = None
        self.events = events if events is not None else EventLog(state.root)
        # The phase last reported per object ("Job/a" -> "Failed/OOMKilled/1"); loaded from
        # the state dir on the first real pass, so changes while no wnr ran are reported once;
        # with the processes out of place already reported ("Stray/Job/a/escaped/...").
        self._reported: dict[str, str] | None = None
        # Failures reported in the previous pass: the same error again is not logged again.
        self._failing: dict[tuple[str, str, str], str] = {}
        # Jobs the daemon's pass guard quarantined (name -> error): planned as Failed, untouched.
        self.quarantined: Mapping[str, str] = {}
        self.keeper = StateKeeper(state)
        # Events and phases the event log could not take yet (a full or read-only state dir).
        self._unsent: list[Event] = []
        self._phases_dirty = False
        # Set by the daemon before each pass: its sleep ended at its timer, with no event.
        self.timer_wake = False
        # The last full pass while it is settled, and the passes that take samples alone.
        self.alone = SamplesOnly(fs, self.sampler, self.membership, self.keeper, self.exits)

    def run_pass(self, dry_run: bool = False) -> PassResult:
        """Read everything (but the quiet jobs: reconciler.observe.quiet), plan, and apply the
        plan unless this is a dry run; or, woken by the daemon's timer alone after a settled
        pass, only the due samples when they change nothing (reconciler.samplesonly)."""
        # Taken first, so that a pass raising anywhere leaves neither behind.
        steady = self.alone.forget()
        timer, self.timer_wake = self.timer_wake, False
        recreated = not dry_run and self._recreate_state()
        # Told by the daemon's inotify watch that no spec changed, the loader does not look,
        # but at the relist (every resync), when quiet jobs are read again too.
        changed = self.spec_changes() if self.spec_changes is not None else True
        exited = self.exits.take_exited()
        relist = recreated or self.quiet.relist_due(self.clock())
        tried_at = None
        if steady is not None and timer and not (dry_run or changed or exited or relist):
            tried_at = self.clock()
            alone = self.alone.take(steady, tried_at, self.metrics_interval, self.quarantined)
            if alone is not None:
                self.alone.steady = steady
                return alone
        desired = self.loader.load(unchanged=not (changed or relist))
        site = desired.node.spec.site_overrides if desired.node is not None else None
        # After samples taken alone, the same time: the samples are this pass's, and
        # membership compares those taken now.
        now = self.clock() if tried_at is None else tried_at
        quiet = self.quiet.for_pass(exited, now, full=relist)
        observed = read = observe(self.fs, self.state, site, quiet)
        if not dry_run:
            observed = self.keeper.before_plan(observed, now)
        registration = self.registry.register(desired, observed, now, dry_run)
        desired = without_held(desired, registration.held)
        wanted = self.needs.of(desired, observed, self.state, self.metrics_interval)
        observed = replace(observed, usage=self.sampler.sample(self.fs, wanted, now))
        observed = self.membership.check(self.fs, desired, observed, now, self.sampler.procs_read)
        accounts = self.accounts.look_up(users_named(desired), now)
        observed = replace(observed, accounts=accounts)
        planned = plan(desired, observed, now, self.quarantined, self.memo)
        resample = min((n.interval for n in wanted.values()), default=None)
        stored = registration.objects
        if dry_run:
            return PassResult(desired, observed, planned, resample_after=resample, stored=stored)
        failures = self.applier.apply(planned.actions) if planned.actions else []
        spawned = tuple(self.applier.spawned) if planned.actions else ()
        fault = self.applier.fault if planned.actions else None
        self.keeper.after_apply(planned.actions, fault, now)
        observed = replace(observed, state_fault=self.keeper.fault)
        self._keep_quiet(read, observed, planned.actions)
        result = PassResult(desired, observed, planned, tuple(failures), resample, spawned, stored)
        # Once for the event log and the published statuses (which adds failures, if any).
        slots = slot_statuses(
            result.desired, result.observed, result.plan, now, memo=self.slot_memo
        )
        reported = self._report(result, now, slots)
        self._publish(result, now, reported, slots)
        # Every observed job quiet, and no event waiting to be written.
        calm = len(self.quiet) == len(read.jobs) and not self._unsent
        self.alone.settle(result, wanted, now, calm, self.metrics_interval, self.quarantined)
        return result

    def _recreate_state(self) -> bool:
        """Reap exited children, and create the state dir again if it vanished; whether it did.
        What the deleted state dir held is then written again from memory: the phases
        reported, each object's identity and its published status."""
        reap()
        if not self.keeper.recreate(self.clock()):
            return False
        self._phases_dirty = True
        self.registry.restore()
        self.board.forget()
        self._published = (None, 0.0)
        return True

    def _keep_quiet(self, read: Observed, planned: Observed, actions: Sequence[Action]) -> None:
        """Watch the running jobs' wrappers and keep, for the next pass, the jobs whose
        reading it may reuse (reconciler.observe.quiet)."""
        touched = {action.obj for action in actions}
        self.quiet.keep(read, planned, touched, self._watch_wrapper)

    def _watch_wrapper(self, pid: int) -> bool:
        """Watch a running job's wrapper's exit; whether it is watched."""
        if self.exits.watching(pid):
            return True
        return is_wrapper(pid) and self.exits.watch(pid) is Watched.WATCHING

    def _publish(
        self, result: PassResult, now: float, reported: bool, slots: Mapping[str, SlotStatus]
    ) -> None:
        """Publish every object's status; never fails the pass (logged once per error).

        Only a pass that can have changed a status publishes: one that reported an event or
        phase change, acted or failed, follows one that acted (and so sees what that did),
        met other specs, or is the first in REPUBLISH_SECONDS (which catches a message that
        changed alone); an idle node's passes skip it."""
        acted = bool(result.plan.actions or result.failures)
        due = reported or acted or self._acted
        self._acted = acted
        if not due and result.desired is self._published[0] and now < self._published[1]:
            return
        failures = {f.action.obj: f.error for f in result.failures}
        try:
            objects = self.publication.objects(result, result.stored, now, failures, slots)
            self.board.publish(objects)
            self._published = (result.desired, now + REPUBLISH_SECONDS)
            self._unpublished = None
        except OSError as exc:
            self._published = (None, 0.0)  # the next pass tries again
            if str(exc) != self._unpublished:
                log.warning("cannot publish status in %s: %s", self.board.directory, exc)
            self._unpublished = str(exc)

    def _report(self, result: PassResult, now: float, slots: Mapping[str, SlotStatus]) -> bool:
        """Log this pass's phase changes and actions; never fails the pass. What the event
        log cannot take now is kept (in order, the newest MAX_UNSENT) for the next pass.
        Returns whether anything was reported."""
        if self._reported is None:
            try:
                self._reported = self.events.load_phases()
            except OSError:
                self._reported = {}
        phases, messages, unenforced = current_phases(result, now, slots)
        events = self.keeper.take_events()
        events += phase_events(self._reported, phases, result.plan.jobs, messages, now)
        for marks, found in (
            stray_events(result.plan.notes, self._reported, now),
            unenforced_events(unenforced, self._reported, now),
        ):
            events += found
            phases.update(marks)
        if result.plan.actions:
            events += action_events(result, self.clock(), self._failing)
        else:
            self._failing.clear()
        for event in events:
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            fields = {"object": event.obj, "type": event.type, "reason": event.reason}
            log.log(
                level,
                "%s %s %s: %s",
                event.obj,
                event.type,
                event.reason,
                event.message,
                extra=fields,
            )
        self._unsent = (self._unsent + events)[-MAX_UNSENT:]
        changed = bool(events) or phases != self._reported
        if phases != self._reported:
            self._reported, self._phases_dirty = phases, True
        try:
            self.events.append(self._unsent)
            self._unsent = []
            if self._phases_dirty:
                self.events.save_phases(phases)
                self._phases_dirty = False
        except OSError as exc:
            log.warning("cannot write the event log in %s: %s", self.events.directory, exc)
        return changed
