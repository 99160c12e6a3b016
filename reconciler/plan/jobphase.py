"""A job's phase and reason, derived from its attempt records and its cgroup; pure.

The planner asks this what a job is doing before deciding what to do with it,
and `wnr get jobs` shows the same view. Transitions (one attempt):

    (no record)  --StartJob-->  starting   apply recorded it before spawning
    starting     --wrapper-->   running    the wrapper entered the cgroup and spawned
    running      --wrapper-->   exited     the payload ended; exit code recorded
    starting     --wrapper-->   failed-start  could not enter the cgroup or exec
    starting     --timeout-->   (failed)   the wrapper never reported: it died early
    running      --vanished-->  (failed)   the cgroup emptied without a final record
    (restored)   --vanished-->  (failed)   RecordsLost: the state dir lost the records while
                                            the attempt ran; the daemon wrote back what it had
                                            seen, and the wrapper ended without a record

Only attempts that never reached Running are retried.
"""

from __future__ import annotations

import signal as signals
from dataclasses import dataclass, replace
from enum import StrEnum

from reconciler.model.api import CoreFiles, Job, NodeSpec
from reconciler.model.observed import CgroupState
from reconciler.model.records import LIVE_PHASES, AttemptPhase, AttemptRecord, JobRecords

# How long a spawned wrapper may take to report before the attempt counts as failed.
START_TIMEOUT_SECONDS = 30.0
# How soon to look again at a job whose wrapper is in its cgroup but has not recorded `running`.
STARTING_RECHECK_SECONDS = 0.5
# Delay before retrying a failed start: 1 s, doubling per failed attempt, at most 60 s.
START_BACKOFF_SECONDS, START_BACKOFF_MAX_SECONDS = 1.0, 60.0

# Why wnr stopped a job that was still wanted; the stop record's reason becomes the job's.
STOP_REASONS = frozenset(
    {
        "DeadlineExceeded",
        "Drained",
        "IdleTimeout",
        "OOMKilled",
        "PidsLimitExceeded",
        "DiskLimitExceeded",
    }
)


RECORDS_LOST = (
    "records lost: the state dir lost this job's records while it ran (deleted or emptied); "
    "wnr restored what it had seen, but the end of the attempt was not recorded"
)


class Phase(StrEnum):
    """Job phases (DESIGN §2)."""

    Pending = "Pending"
    Starting = "Starting"
    Running = "Running"
    Succeeded = "Succeeded"
    Failed = "Failed"


@dataclass(frozen=True)
class JobView:
    """What the planner and `wnr get` know about a job right now."""

    phase: Phase
    reason: str = ""
    message: str = ""
    attempts: int = 0
    exit_code: int | None = None
    # When the view changes by itself (a start timeout), or, for a failed start, the
    # earliest time of the next attempt.
    deadline: float | None = None

    @property
    def finished(self) -> bool:
        """Succeeded or Failed: nothing more will run."""
        return self.phase in (Phase.Succeeded, Phase.Failed)


def view_under_policy(
    node: NodeSpec, job: Job | None, records: JobRecords, cgroup: CgroupState | None, now: float
) -> JobView:
    """A job's view with its start attempts and core-file rule: the job's own, else the
    Node's (`job` is None once its spec is gone). The planner and status both use this."""
    attempts = node.policies.max_start_attempts
    cores = node.policies.core_files
    if job is not None:
        attempts = job.spec.max_start_attempts or attempts
        cores = job.spec.core_files or cores
    return job_view(records, cgroup, attempts, now, cores == CoreFiles.check)


def job_view(
    records: JobRecords,
    cgroup: CgroupState | None,
    max_attempts: int,
    now: float,
    check_cores: bool = True,
) -> JobView:
    """Derive the phase of a job from what was recorded and what runs."""
    last = records.last
    populated = cgroup is not None and cgroup.populated
    if last is None:
        if populated:
            return JobView(Phase.Running, "Adopted", "running processes found without records")
        return JobView(Phase.Pending)
    count = last.attempt
    stop = records.stop
    reason = stop.reason if stop is not None else ""
    stopped = reason in STOP_REASONS
    if last.phase == AttemptPhase.EXITED or (
        last.phase == AttemptPhase.RUNNING and not populated and stopped
    ):
        if stop is not None and stopped:
            code = 128 + last.signal if last.signal is not None else last.exit_code
            message = f"stopped by wnr: {stop.text}"
            return JobView(Phase.Failed, reason, message, count, code)
        if check_cores and last.core_files:
            code = 128 + last.signal if last.signal is not None else last.exit_code
            message = f"core files in the working directory: {', '.join(last.core_files)}"
            return JobView(Phase.Failed, "CoreDumped", message, count, code)
        return _exited(last, count)
    if (
        last.restored_at is not None
        and last.phase in LIVE_PHASES
        and not populated
        and last.wrapper_alive is not True
    ):
        # Never retried: the attempt may have run to its end, unrecorded.
        return JobView(Phase.Failed, "RecordsLost", RECORDS_LOST, count)
    if last.phase == AttemptPhase.RUNNING:
        if populated:
            return JobView(Phase.Running, attempts=count)
        ended = ended_with_its_wrapper(last, cgroup, now)
        if ended is not None:
            return _exited(ended, count)
        return JobView(
            Phase.Failed,
            "Error",
            "the wrapper ended without recording the payload's end (killed from outside?)",
            count,
        )
    timeout = last.spawned_at + START_TIMEOUT_SECONDS
    if last.phase == AttemptPhase.STARTING and populated:
        # The wrapper is in the cgroup and about to record `running`, which wakes nothing (the
        # state dir is not watched): look again shortly, to start the job's own deadlines.
        # No start timeout here, however long it takes: a wrapper retrying its `running`
        # record on a full or read-only state dir holds its payload at a gate meanwhile, so
        # failing and retrying the attempt would run the payload twice.
        return JobView(Phase.Starting, attempts=count, deadline=now + STARTING_RECHECK_SECONDS)
    if last.phase == AttemptPhase.STARTING and now < timeout and last.wrapper_alive is not False:
        return JobView(Phase.Starting, attempts=count, deadline=timeout)
    return _start_failed(last, max_attempts)


# The end wnr records for a job whose wrapper the OOM killer took with it.
OOM_WITH_WRAPPER = (
    "the OOM killer ended the whole job (memory.oom.group), its wrapper too: a wnr without "
    "CAP_SYS_RESOURCE cannot exempt the wrapper, so wnr recorded the end"
)


def ended_with_its_wrapper(
    last: AttemptRecord, cgroup: CgroupState | None, now: float
) -> AttemptRecord | None:
    """The end of a running attempt whose cgroup emptied after OOM kills but whose wrapper
    recorded nothing: the group kill took the wrapper along (it can be exempted only by a
    privileged wnr). The planner records it (RecordEnd), so the view stays after the cgroup
    is removed; None when the cgroup shows no OOM kill."""
    if cgroup is None or cgroup.populated or cgroup.oom is None or cgroup.oom.kills == 0:
        return None
    return replace(
        last,
        phase=AttemptPhase.EXITED,
        signal=signals.SIGKILL.value,
        oom_kills=cgroup.oom.kills,
        oom_level=cgroup.oom.level,
        finished_at=now,
        message=OOM_WITH_WRAPPER,
    )


def _start_failed(last: AttemptRecord, max_attempts: int) -> JobView:
    """A failed-start, or a start that never reported: retried while attempts remain, unless
    the failure is one that every attempt would repeat."""
    count = last.attempt
    message = last.message or (
        "the wrapper ended before reporting"
        if last.wrapper_alive is False
        else f"the wrapper did not report within {START_TIMEOUT_SECONDS:g}s"
    )
    if count < max_attempts and not last.terminal:
        delay = min(START_BACKOFF_SECONDS * 2 ** (count - 1), START_BACKOFF_MAX_SECONDS)
        retry_at = max(last.spawned_at, last.finished_at or 0.0) + delay
        return JobView(
            Phase.Pending,
            "StartFailed",
            f"attempt {count}: {message}",
            count,
            deadline=retry_at,
        )
    reason = "ErrorA" if last.error_class == "ErrorA" else "ErrorVN"
    if last.terminal:
        message = f"attempt {count} cannot ever start: {message}"
    else:
        message = f"{count} attempts failed to start; last: {message}"
    return JobView(Phase.Failed, reason, message, count)


# Whose memory limit an OOM kill came from (AttemptRecord.oom_level), said in the message.
OOM_LEVELS = {
    "job": ": it reached its own memory limit",
    "slot": ": its slot reached the slot's memory limit (not this job's own)",
    "above": ": memory ran out above its slot (wnr's root or the whole node)",
}


def _exited(last: AttemptRecord, attempts: int) -> JobView:
    exit_code, signal, oom_kills = last.exit_code, last.signal, last.oom_kills or 0
    if exit_code == 0:
        return JobView(Phase.Succeeded, "Completed", attempts=attempts, exit_code=0)
    if oom_kills > 0:
        code = 128 + signal if signal is not None else exit_code
        message = f"the kernel OOM-killed {oom_kills} process(es) of the job"
        message += OOM_LEVELS.get(last.oom_level, "")
        return JobView(Phase.Failed, "OOMKilled", message, attempts, code)
    if signal is not None:
        message = f"killed by {_signal_name(signal)}"
        if last.core_dumped:
            message += " (core dumped)"
        if last.terminated_by is not None:
            message += (
                f"; its wrapper got {_signal_name(last.terminated_by)} too (stopped from outside?)"
            )
        return JobView(Phase.Failed, "Error", message, attempts, 128 + signal)
    return JobView(Phase.Failed, "Error", f"exit code {exit_code}", attempts, exit_code)


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"
