"""The state dir across a real pass: recreated when it vanishes, lost records kept, faults reported.

Runs around observe and apply (reconciler.reconcile calls it; dry passes do
not). What the daemon read in its previous pass is the one thing a state dir
deleted or emptied under it cannot take away, so:

- a vanished state dir (or its `jobs/`) is created again at the start of a
  pass, with a Warning event;
- a job that had attempts in the previous pass and has fewer, or none, now
  (without a ForgetJob in between) is *lost-records*, never new: the planner
  sees the records last read, marked `restoredAt`, and they are written back
  without replacing a file the wrapper has written since. A running job
  finishes and records its end as usual; one whose end went with the old
  directory becomes Failed/RecordsLost, and is never started again;
- a write that failed with a state-dir fault (reconciler.host.statefault) holds
  every start until a probe write succeeds; the fault's start and end are
  events of the Node (kept in memory until the event log can take them).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from dataclasses import replace

from reconciler.host.statedir import JobRecords, StateDir
from reconciler.host.statefault import StateDirError, fault_of, probe
from reconciler.model.actions import Action, ForgetJob
from reconciler.model.event import NORMAL, WARNING, Event
from reconciler.model.observed import Observed, StateFault
from reconciler.model.records import AttemptRecord
from reconciler.observe.snapshot import check_starting

log = logging.getLogger("wnr.state")

NODE = "Node"


class StateKeeper:
    """What one daemon remembers about its state dir between passes."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        # The records of every job with attempts, as the last pass saw them.
        self.known: dict[str, JobRecords] = {}
        self.fault: StateFault | None = None
        self._fault_since: float | None = None
        self.pending: list[Event] = []
        # Lost jobs whose records could not be written back yet.
        self.unsaved: set[str] = set()

    def recreate(self, now: float) -> bool:
        """Create the state dir (and `jobs/`) again if it vanished under the daemon; returns
        whether it did."""
        if self.state.jobs.is_dir():
            return False
        try:
            self.state.jobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fault = fault_of(exc, self.state.root)
            self._set_fault(fault or StateFault(exc.errno or errno.EIO, str(self.state.root)), now)
            return False
        message = f"{self.state.root} vanished; created again"
        if self.known:
            message += f" (records of {len(self.known)} job(s) kept from memory)"
        log.warning("%s", message)
        self.pending.append(Event(now, NODE, WARNING, "StateDirRecreated", message))
        return True

    def before_plan(self, observed: Observed, now: float) -> Observed:
        """The observed records with lost ones put back, and the state dir's fault."""
        records, lost = self._merge(observed.records, now)
        for name, kept in lost.items():
            self._restore(name, kept, now)
        fault = observed.state_fault
        if fault is None and self.fault is not None:
            # A write failed: only a write tells whether it works again.
            fault = probe(self.state.root)
        self._set_fault(fault, now)
        return replace(observed, records=records, state_fault=self.fault)

    def after_apply(
        self, actions: tuple[Action, ...], fault: StateFault | None, now: float
    ) -> None:
        """Learn the attempts apply began, forget the jobs whose records were deleted on
        purpose, and note a fault apply met.

        An attempt begun in this pass was never observed: were the state dir deleted before
        the next pass reads it, the job would look new and start again."""
        for job, (attempt, data) in self.state.take_begun().items():
            kept = self.known.get(job, JobRecords())
            earlier = tuple(a for a in kept.attempts if a.attempt < attempt)
            self.known[job] = replace(
                kept, attempts=(*earlier, AttemptRecord.from_json(attempt, data))
            )
        for action in actions:
            if isinstance(action, ForgetJob):
                self.known.pop(action.job, None)
                self.unsaved.discard(action.job)
        if fault is not None:
            self._set_fault(fault, now)

    def _merge(
        self, records: Mapping[str, JobRecords], now: float
    ) -> tuple[dict[str, JobRecords], dict[str, JobRecords]]:
        """Put back the records of jobs that lost attempts since the last pass."""
        merged = dict(records)
        lost: dict[str, JobRecords] = {}
        for name, kept in self.known.items():
            seen = records.get(name)
            if seen is kept:
                continue  # the very records of the last pass (a quiet job's)
            newest = seen.last.attempt if seen is not None and seen.last is not None else 0
            assert kept.last is not None
            if newest >= kept.last.attempt:
                continue
            last = replace(kept.last, restored_at=kept.last.restored_at or now)
            restored = replace(kept, attempts=(*kept.attempts[:-1], last))
            merged[name] = check_starting(self.state, name, restored)
            lost[name] = kept
        self.known = {n: r for n, r in merged.items() if r.attempts}
        return merged, lost

    def _restore(self, name: str, kept: JobRecords, now: float) -> None:
        """Write a lost job's records back (again each pass until it works); the planner has
        them from memory either way. Reported once per loss."""
        first = name not in self.unsaved
        try:
            self.state.restore(name, kept, now)
            self.unsaved.discard(name)
            how = "restored from the daemon's memory"
        except StateDirError as exc:
            self.unsaved.add(name)
            self._set_fault(exc.fault, now)
            how = f"kept in the daemon's memory until they can be written ({exc.fault})"
        if first:
            count = kept.last.attempt if kept.last is not None else 0
            message = f"the records of {count} attempt(s) vanished from the state dir; {how}"
            log.warning("Job/%s: %s", name, message)
            self.pending.append(Event(now, f"Job/{name}", WARNING, "RecordsLost", message))

    def _set_fault(self, fault: StateFault | None, now: float) -> None:
        """Track the fault; an event when it begins, changes kind, or clears."""
        before = self.fault
        self.fault = fault
        if fault is not None and (before is None or before.reason != fault.reason):
            self._fault_since = now if before is None else self._fault_since
            message = f"{fault}; no job or agent starts until it clears"
            log.error("the state dir cannot record: %s", message)
            self.pending.append(Event(now, NODE, WARNING, "StateDirUnwritable", message))
        elif fault is None and before is not None:
            since = self._fault_since if self._fault_since is not None else now
            message = f"{self.state.root} records again (after {now - since:.0f}s: {before})"
            log.warning("the state dir %s", message)
            self.pending.append(Event(now, NODE, NORMAL, "StateDirWritable", message))
            self._fault_since = None

    def take_events(self) -> list[Event]:
        """The events since the last call."""
        events, self.pending = self.pending, []
        return events
