"""Which running jobs a pass need not read again, and what the last pass read of them.

Part of observe, ahead of the snapshot (reconciler.observe.snapshot). kubelet's PLEG
relists cheaply and syncs only what changed; here the cheap relist is one poll(2) over
the wrappers' pidfds (reconciler.host.exits). A running job whose wrapper is alive is
still populated (the wrapper sits in the job's cgroup until the payload's end is
recorded), its records change only when the wrapper records that end or when wnr
itself writes (a stop, a limit: an action of the pass, which names the job), and its
limits only when wnr writes them. Such a job is quiet: the next pass reuses the cgroup
state and records read before instead of reading its `cgroup.events`, its limit files
and its records directory. A change made behind wnr's back (a limit file written by
hand, a records directory deleted) is seen at the next full relist, every
RELIST_SECONDS, as a resync would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

from reconciler.model.observed import Observed, Placement
from reconciler.model.records import AttemptPhase, JobRecords

# How often every cgroup and record is read again, quiet or not: `wnr run --resync`'s
# default. kubelet's syncFrequency is a minute too; on a node whose kernel enforces every
# limit, this full pass is all an idle daemon does (0.45 s of CPU among 256 jobs under the
# VM tier's TCG, where every 30 s was 1.3x supervisord's idle CPU).
RELIST_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class QuietJob:
    """What the last pass read of a quiet job, and the wrapper whose exit ends the quiet."""

    placement: Placement
    records: JobRecords
    wrapper_pid: int


class QuietJobs:
    """The quiet jobs between passes, and when everything was last read."""

    def __init__(self, relist_seconds: float = RELIST_SECONDS) -> None:
        self.relist_seconds = relist_seconds
        self._kept: dict[str, QuietJob] = {}
        self._relisted_at = -math.inf

    def relist_due(self, now: float) -> bool:
        """Whether a pass at `now` reads everything again (the spec loader relists with it)."""
        return not self._relisted_at <= now < self._relisted_at + self.relist_seconds

    def for_pass(
        self, exited: Collection[int], now: float, full: bool = False
    ) -> dict[str, QuietJob]:
        """The jobs this pass reuses the reading of: none on a full relist (asked for, or
        due), else those kept whose wrapper did not exit since (forgotten for good: a dry
        pass, which keeps nothing, may be the one that learns of an exit)."""
        if full or self.relist_due(now):
            self._relisted_at = now
            self._kept = {}
        elif exited:
            self._kept = {n: q for n, q in self._kept.items() if q.wrapper_pid not in exited}
        return dict(self._kept)

    def keep(
        self,
        read: Observed,
        planned: Observed,
        touched: Collection[str],
        watch: Callable[[int], bool],
    ) -> None:
        """After a real pass: keep the running jobs that stay quiet. `read` is what observe
        read, `planned` what the plan saw (records the state keeper put back differ),
        `touched` the objects the pass acted on; `watch` watches a running job's wrapper's
        exit and says whether it is watched (a record left `running` by a wrapper killed
        from outside may name a reused PID: it checks the process is a wrapper first)."""
        before, self._kept = self._kept, {}
        if planned.state_fault is not None:
            return
        acted_on = {obj.removeprefix("Job/") for obj in touched if obj.startswith("Job/")}
        for name, placement in read.jobs.items():
            records = read.records.get(name)
            if records is None or planned.records.get(name) is not records or name in acted_on:
                continue
            kept = before.get(name)
            if kept is not None and kept.placement is placement and kept.records is records:
                # Read as it was kept: only its wrapper's watch is looked at again (an exit a
                # raising pass took and lost must not leave the job quiet until the relist).
                if watch(kept.wrapper_pid):
                    self._kept[name] = kept
                continue
            last = records.last
            if (
                last is None
                or last.phase != AttemptPhase.RUNNING
                or records.stop is not None
                or not placement.cgroup.populated
                or last.wrapper_pid is None
                or not watch(last.wrapper_pid)
            ):
                continue
            self._kept[name] = QuietJob(placement, records, last.wrapper_pid)

    def __len__(self) -> int:
        return len(self._kept)
