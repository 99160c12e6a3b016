"""A pass as Prometheus metric families: what `wnr run --metrics-address` serves per job and slot.

Render layer: `pass_families` reads one PassResult (reconciler.status.passresult) and
fills the rows of reconciler.render.exposition, the one definition of every job and
slot series; it reads no file. `PassCollector` holds the latest pass as one reference
that the daemon's loop swaps after each pass and the HTTP server's thread reads at
scrape time, so a deleted job's series go with the first pass that no longer sees it
(no stale series; as many as the node holds). Usage comes from the sample the pass
took (Usage.live, taken by the enforcement sampler while metrics are on); limits from
the spec (model.limits, as the planner writes them); phases from the plan's job views
and the slot statuses. A quantity the kernel does not offer here (no memory
controller: no memory.current; no PSI) has no series, never a 0. The daemon's own
counters are in reconciler.daemon.metrics. Names and their cAdvisor counterparts:
README, "Metrics".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from reconciler.model.limits import Limits
from reconciler.model.usage import LiveUsage
from reconciler.plan.jobphase import Phase
from reconciler.render.exposition import COUNTER, GAUGE, Family, LabelValues, to_metric
from reconciler.status.passresult import PassResult
from reconciler.status.slots import SLOT_PHASES, SlotStatus, SlotStatusMemo, slot_statuses

# `job_name`, not `job`: Prometheus sets `job` on every series it scrapes (the scrape job),
# and a scraped `job` label would be renamed `exported_job` (kube-state-metrics' choice too).
JOB_LABELS = ("slot", "job_name", "uid")
SLOT_LABELS = ("slot", "uid")
JOB_PHASES = tuple(str(p) for p in Phase)
PSI_RESOURCES = ("cpu", "memory", "io")

# Per-job usage families: (name, type, help, its value in a sample, None where absent).
_USAGE: tuple[tuple[str, str, str, Callable[[LiveUsage], float | None]], ...] = (
    (
        "wnr_job_cpu_usage_seconds_total",
        COUNTER,
        "CPU time the job's cgroup used (cpu.stat usage_usec).",
        lambda u: u.cpu_seconds,
    ),
    (
        "wnr_job_memory_working_set_bytes",
        GAUGE,
        "The job's working set: anon + shmem + kernel stacks + swap, no page cache.",
        lambda u: u.memory_bytes,
    ),
    (
        "wnr_job_memory_current_bytes",
        GAUGE,
        "memory.current of the job's cgroup (page cache included).",
        lambda u: u.current_bytes,
    ),
    (
        "wnr_job_memory_peak_bytes",
        GAUGE,
        "memory.peak of the job's cgroup.",
        lambda u: u.peak_bytes,
    ),
    (
        "wnr_job_memory_swap_bytes",
        GAUGE,
        "memory.swap.current of the job's cgroup.",
        lambda u: u.swap_bytes,
    ),
    ("wnr_job_pids", GAUGE, "Tasks (threads) in the job's cgroup.", lambda u: u.pids),
    (
        "wnr_job_cpu_throttled_seconds_total",
        COUNTER,
        "Time the job's tasks were throttled by cpu.max (cpu.stat throttled_usec).",
        lambda u: u.throttled_seconds,
    ),
)

_LIMITS: tuple[tuple[str, str, Callable[[Limits], float | None]], ...] = (
    ("cpu_limit_cores", "CPUs (cpu.max).", lambda lim: _cores(lim.millicpus)),
    ("memory_limit_bytes", "Memory limit (memory.max).", lambda lim: lim.memory),
    ("memory_swap_limit_bytes", "Swap limit (memory.swap.max).", lambda lim: lim.swap),
    ("pids_limit", "Tasks limit (pids.max).", lambda lim: lim.pids),
)


def pass_families(result: PassResult, now: float, memo: FamilyMemo | None = None) -> list[Family]:
    """Every job and slot family of one pass; with a `memo`, the families whose rows derive
    from what they derived from in the pass it last saw are those very families again."""
    memo = memo if memo is not None else FamilyMemo()
    jobs = memo.jobs(result)
    return [
        *jobs.families,
        *_usage_families(result, jobs.labels),
        *memo.slots(result, now),
    ]


class JobFamilies(NamedTuple):
    """The families of every job that do not come from its usage sample, and each job's
    label values."""

    key: tuple[object, ...]
    labels: dict[str, LabelValues]
    families: tuple[Family, ...]


class FamilyMemo:
    """The job and slot families that recur while their inputs do (`Family.recurs`): what
    a scrape keeps of the passes before it, so that an idle node's phases, attempts and
    limits are neither gathered nor written again (reconciler.render.exposition)."""

    def __init__(self) -> None:
        self._jobs: JobFamilies | None = None
        self._slots: tuple[tuple[object, ...], tuple[Family, ...]] | None = None
        self._statuses = SlotStatusMemo()

    def jobs(self, result: PassResult) -> JobFamilies:
        """The jobs' families of this pass: the last ones while their inputs are the same."""
        names = sorted(result.plan.jobs)
        observed = result.observed
        key = (
            result.desired,
            tuple(names),
            tuple(map(result.plan.jobs.get, names)),
            tuple(map(observed.jobs.get, names)),
            tuple(map(observed.records.get, names)),
            tuple(map(result.stored.get, [("Job", name) for name in names])),
        )
        last = self._jobs
        if last is None or last.key != key:
            labels = _job_labels(result, names)
            last = self._jobs = JobFamilies(key, labels, tuple(job_families(result, labels)))
        return last

    def slots(self, result: PassResult, now: float) -> tuple[Family, ...]:
        """The slots' families of this pass: the last ones while their inputs are the same."""
        statuses = slot_statuses(
            result.desired, result.observed, result.plan, now, memo=self._statuses
        )
        names = list(statuses)
        key = (
            result.desired,
            tuple(statuses.values()),
            tuple(map(result.stored.get, [("Slot", name) for name in names])),
            tuple(sorted(result.observed.agent_records.items())),
        )
        last = self._slots
        if last is None or last[0] != key:
            last = self._slots = (key, tuple(slot_families(result, statuses)))
        return last[1]


def _job_labels(result: PassResult, names: Sequence[str]) -> dict[str, LabelValues]:
    """Each job's (slot, job_name, uid)."""
    desired, observed, stored = result.desired, result.observed, result.stored
    keys: dict[str, LabelValues] = {}
    for name in names:
        job, placed = desired.jobs.get(name), observed.jobs.get(name)
        slot = job.spec.slot if job is not None else (placed.slot if placed is not None else "")
        entry = stored.get(("Job", name))
        keys[name] = (slot, name, entry.uid if entry is not None else "")
    return keys


def job_families(result: PassResult, keys: Mapping[str, LabelValues]) -> Iterator[Family]:
    """Every job's phase, attempts, OOM kills and limits (`keys`: each job's label values):
    families that recur while the pass's jobs are the same."""
    desired, observed = result.desired, result.observed
    phase = Family(
        "wnr_job_phase",
        GAUGE,
        "1 for the job's current phase, 0 for the others.",
        (*JOB_LABELS, "phase"),
        recurs=True,
    )
    attempts = Family(
        "wnr_job_attempts_total", COUNTER, "Start attempts of the job.", JOB_LABELS, recurs=True
    )
    ooms = Family(
        "wnr_job_oom_kills_total",
        COUNTER,
        "OOM kills of the job: processes the kernel killed, or 1 where wnr killed it for memory.",
        JOB_LABELS,
        recurs=True,
    )
    for name, labels in keys.items():
        view = result.plan.jobs[name]
        for each in JOB_PHASES:
            phase.add((*labels, each), 1 if view.phase == each else 0)
        attempts.add(labels, view.attempts)
        records = observed.records.get(name)
        kernel = sum(a.oom_kills or 0 for a in records.attempts) if records is not None else 0
        ooms.add(labels, kernel or (1 if view.reason == "OOMKilled" else 0))
    yield from (phase, attempts, ooms)
    limits: list[tuple[LabelValues, Limits]] = []
    for name, labels in keys.items():
        job_limits = desired.job_limits(name)
        if job_limits is not None:
            limits.append((labels, job_limits))
    yield from _limit_families("wnr_job", JOB_LABELS, limits)


def _usage_families(result: PassResult, keys: Mapping[str, LabelValues]) -> Iterator[Family]:
    """The usage of each running job as its last metrics sample read it."""
    samples = [
        (keys[name], usage.live)
        for name, usage in sorted(result.observed.usage.items())
        if usage.live is not None and name in keys
    ]
    for metric, kind, help_text, value in _USAGE:
        family = Family(metric, kind, help_text, JOB_LABELS)
        for labels, live in samples:
            if (found := value(live)) is not None:
                family.add(labels, found)
        yield family
    stall = Family(
        "wnr_job_pressure_stall_seconds_total",
        COUNTER,
        "Time some task of the job waited for the resource (PSI `some` total).",
        (*JOB_LABELS, "resource"),
    )
    for labels, live in samples:
        if live.stall_seconds is not None:
            for resource, seconds in zip(PSI_RESOURCES, live.stall_seconds, strict=True):
                stall.add((*labels, resource), seconds)
    yield stall


def _limit_families(
    prefix: str, labels: tuple[str, ...], limits: Sequence[tuple[LabelValues, Limits]]
) -> Iterator[Family]:
    """The limits of the spec, as the planner writes them; unset limits have no series."""
    for suffix, help_text, value in _LIMITS:
        family = Family(f"{prefix}_{suffix}", GAUGE, help_text, labels, recurs=True)
        for values, lim in limits:
            if (found := value(lim)) is not None:
                family.add(values, found)
        yield family


def _cores(millicpus: int | None) -> float | None:
    return None if millicpus is None else millicpus / 1000


def slot_families(result: PassResult, statuses: Mapping[str, SlotStatus]) -> Iterator[Family]:
    """Every slot's phase, limits, and agent restarts (`statuses`: the pass's slot
    statuses): families that recur while those are the same."""
    keys: dict[str, LabelValues] = {}
    for name in statuses:
        entry = result.stored.get(("Slot", name))
        keys[name] = (name, entry.uid if entry is not None else "")
    phase = Family(
        "wnr_slot_phase",
        GAUGE,
        "1 for the slot's current phase, 0 for the others.",
        (*SLOT_LABELS, "phase"),
        recurs=True,
    )
    for name, status in statuses.items():
        for each in SLOT_PHASES:
            phase.add((*keys[name], each), 1 if status.phase == each else 0)
    yield phase
    limits = [
        (keys[name], Limits.of_slot(slot))
        for name, slot in result.desired.slots.items()
        if name in keys
    ]
    yield from _limit_families("wnr_slot", SLOT_LABELS, limits)
    restarts = Family(
        "wnr_agent_restarts_total",
        COUNTER,
        "Restarts of the slot's agent replica.",
        (*SLOT_LABELS, "replica"),
        recurs=True,
    )
    for (slot, replica), records in sorted(result.observed.agent_records.items()):
        if slot in keys:
            restarts.add((*keys[slot], str(replica)), records.restarts)
    yield restarts


class PassCollector(Collector):
    """The latest pass's families at scrape time; the loop replaces `latest` after each pass
    (one reference assignment: the scraping thread sees the old pass or the new, whole)."""

    def __init__(self) -> None:
        self.latest: tuple[PassResult, float] | None = None
        self.memo = FamilyMemo()

    def families(self) -> list[Family]:
        """The rows of the pass last handed over (none before the first)."""
        latest = self.latest
        return [] if latest is None else pass_families(*latest, self.memo)

    def collect(self) -> Iterator[Metric]:
        """The same, as prometheus_client families (for a registry)."""
        for family in self.families():
            yield to_metric(family)
