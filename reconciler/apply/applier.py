"""Apply: execute a plan's actions through the cgroup layer, the process layer and the state dir.

The only place with side effects. A failing action is reported with its
object and the kernel's errno and the actions that depend on it (same
cgroup or below) are skipped; the next pass, which re-reads everything,
tries again. A state dir that cannot record (full, read-only, vanished:
reconciler.host.statefault) is the node's fault, kept in `fault`: no attempt is
spawned that is not recorded first, and once one could not be, no further
job or agent is started in the pass. Time comes from the injected clock.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.process import (
    LogFiles,
    job_environment,
    kill_processes,
    signal_pids,
    spawn_wrapper,
    wrapper_missing,
)
from reconciler.host.statedir import SlotRecord, StateDir
from reconciler.host.statefault import StateDirError, check
from reconciler.model.actions import (
    Action,
    CreateCgroup,
    EnableControllers,
    Failure,
    FailureKind,
    ForgetAgent,
    ForgetJob,
    ForgetSlot,
    KillCgroup,
    KillStrays,
    RecordEnd,
    RecordSlot,
    RemoveCgroup,
    Signal,
    StartAgent,
    StartJob,
    WriteLimit,
)
from reconciler.model.errors import CgroupError, WnrError
from reconciler.model.observed import StateFault

log = logging.getLogger("wnr.apply")


class Applier:
    """Executes actions against one cgroup root and one state dir."""

    def __init__(self, fs: CgroupFS, state: StateDir, clock: Callable[[], float]) -> None:
        self.fs = fs
        self.state = state
        self.clock = clock
        # The wrappers the last `apply` spawned, so the daemon can wait on their exits.
        self.spawned: list[int] = []
        # The state-dir fault the last `apply` met, if any.
        self.fault: StateFault | None = None

    def apply(self, actions: Sequence[Action]) -> list[Failure]:
        """Run the actions in order; returns the failures (empty when all succeeded)."""
        self.spawned = []
        self.fault = None
        failures: list[Failure] = []
        failed_paths: list[str] = []
        for index, action in enumerate(actions):
            if any(_within(action.path, bad) for bad in failed_paths):
                message = "not tried: an earlier action on its cgroup failed"
                failures.append(Failure(index, action, message, FailureKind.SKIPPED))
                continue
            if isinstance(action, StartJob | StartAgent) and self.fault is None:
                # The planner saw room; each start takes some. Stopping at the margin leaves
                # the wrappers already running room to record how their payloads end.
                self.fault = check(self.state.root)
            if self.fault is not None and isinstance(action, StartJob | StartAgent):
                message = "not tried: the state dir cannot record"
                failures.append(Failure(index, action, message, FailureKind.STATE_DIR))
                continue
            try:
                self._one(action)
            except Exception as exc:  # a bug too must cost one action, not the pass
                failures.append(Failure(index, action, _message(exc), self._kind(action, exc)))
                failed_paths.append(action.path)
        for failure in failures:
            fields = self.log_fields(failure.action) | {"reason": failure.kind.value}
            log.warning("%s", failure, extra=fields | {"error": failure.error})
        return failures

    def _kind(self, action: Action, exc: Exception) -> FailureKind:
        """How the failure of one action retries; a state-dir fault is also kept for the node."""
        if isinstance(exc, StateDirError):
            self.fault = exc.fault
            return FailureKind.STATE_DIR
        if isinstance(exc, CgroupError):
            return FailureKind.TRANSIENT if exc.transient else FailureKind.TERMINAL
        if isinstance(exc, WnrError):
            return FailureKind.TERMINAL
        if isinstance(exc, OSError):
            return FailureKind.TRANSIENT
        log.error("%s %s: unexpected error", action.op, action.obj, exc_info=exc)
        return FailureKind.TERMINAL

    def _one(self, action: Action) -> None:
        fs = self.fs
        match action:
            case CreateCgroup():
                fs.mkdir(action.path)
            case EnableControllers():
                fs.write(
                    action.path,
                    "cgroup.subtree_control",
                    " ".join(f"+{c}" for c in action.controllers),
                )
            case WriteLimit():
                back = fs.write_checked(action.path, action.file, action.new)
                if back != action.new:
                    raise WnrError(
                        f"{fs.path(action.path) / action.file}: wrote {action.new!r}, "
                        f"the kernel reads back {back!r}"
                    )
            case StartJob():
                self._start(action)
            case StartAgent():
                self._start_agent(action)
            case Signal():
                self._signal(action)
            case KillCgroup() | KillStrays():
                self._kill_action(action)
            case RemoveCgroup():
                self._remove(action.path)
            case RecordSlot() | RecordEnd() | ForgetSlot() | ForgetJob() | ForgetAgent():
                self._record(action)
            case _:  # pragma: no cover - every action type is listed above
                raise WnrError(f"unknown action {action!r}")
        log.info("%s", action.describe(), extra=self.log_fields(action))

    def log_fields(self, action: Action) -> dict[str, str]:
        """What a log line about `action` carries as fields (reconciler.render.logrecords)."""
        # Not remembered: the line follows the action, and a removed cgroup's path kept for
        # its log line grew the daemon by ~240 bytes a job through churn.
        cgroup = self.fs.directory(action.path, remember=False)
        return {"action": action.op, "object": action.obj, "cgroup": cgroup}

    def _remove(self, rel: str) -> None:
        """rmdir; a job's or agent's payload may have nested cgroups of its own inside."""
        (self.fs.rmdir_tree if rel.count("/") == 1 else self.fs.rmdir)(rel)

    def _signal(self, action: Signal) -> None:
        """Record when the stop began (for the grace deadline), then signal all but the spared.

        A graceful stop waits for its record (the grace deadline lives there); a SIGKILL (a
        limit wnr enforces itself) is sent even when the state dir cannot take the record,
        since the node's memory matters more than the reason the job will show."""
        now = self.clock()
        pids = [p for p in self.fs.procs_tree(action.path) if p != action.spare]
        try:
            if action.agent is not None:
                self.state.record_agent_stop(
                    action.slot, action.agent, now, action.grace_seconds, action.reason
                )
            else:
                grace, reason = action.grace_seconds, action.reason
                self.state.record_stop(action.job, now, grace, reason, action.message)
        except StateDirError:
            if action.signal == "SIGKILL":
                signal_pids(pids, signal.SIGKILL)
            raise
        signal_pids(pids, signal.Signals[action.signal])

    def _record(self, action: Action) -> None:
        """Actions on the state dir alone."""
        if isinstance(action, RecordSlot):
            record = SlotRecord(
                action.drain_grace_seconds, action.termination_grace_seconds, action.draining_since
            )
            self.state.write_slot(action.slot, record)
        elif isinstance(action, ForgetSlot):
            self.state.forget_slot(action.slot)
        elif isinstance(action, ForgetJob):
            self.state.forget(action.job)
        elif isinstance(action, RecordEnd):
            self.state.record_end(action.job, action.attempt, action.record)
        elif isinstance(action, ForgetAgent):
            self.state.forget_agent(action.slot, action.index)

    def _start(self, action: StartJob) -> None:
        state = self.state
        record = state.attempt_path(action.job, action.attempt)
        # Raises (and nothing is spawned) unless the attempt is recorded and reads back.
        base = state.begin_attempt(
            action.job, action.attempt, self.clock(), action.gpus, action.credentials
        )
        missing = action.error or _missing_image_or_runtime(action)
        if missing:
            # ErrorA: the attempt fails before anything runs; retried per maxStartAttempts.
            state.fail_run(record, missing, error_class="ErrorA")
            log.warning("%s: %s", action.obj, missing)
            return
        ours = {"WNR_JOB": action.job, "WNR_SLOT": action.slot, "WNR_ATTEMPT": str(action.attempt)}
        output = LogFiles(
            state.log_path(action.job, action.attempt), action.log_max_size, action.log_max_files
        )
        if action.credentials is not None and action.working_dir == str(state.work_dir(action.job)):
            # wnr's own work dir becomes the user's; a spec's workingDir is the site's.
            try:
                state.give(Path(action.working_dir), action.credentials)
            except OSError as exc:
                self._fail_run(record, f"cannot give the work dir to {action.credentials}: {exc}")
                raise
        pid = self._spawn(action, record, action.working_dir, output, ours, base)
        self._note_wrapper(record, pid)

    def _start_agent(self, action: StartAgent) -> None:
        directory, base = self.state.begin_agent(
            action.slot, action.index, action.restarts, self.clock()
        )
        if action.credentials is not None:
            self.state.give(directory / "work", action.credentials)
        ours = {"WNR_SLOT": action.slot, "WNR_AGENT": str(action.index)}
        output = LogFiles(directory / "run.log", action.log_max_size, action.log_max_files)
        self._spawn(action, directory / "run.json", str(directory / "work"), output, ours, base)

    def _spawn(  # noqa: PLR0917 - one wrapper's inputs
        self,
        action: StartJob | StartAgent,
        record: Path,
        workdir: str,
        output: LogFiles,
        ours: dict[str, str],
        base: dict[str, object],
    ) -> int:
        """Spawn the wrapper of a job attempt or an agent run into its cgroup."""
        try:
            pid = spawn_wrapper(
                record=record,
                cgroup_procs=self.fs.path(action.path) / "cgroup.procs",
                workdir=workdir,
                log=output,
                argv=action.argv,
                env=job_environment(action.env, ours),
                base=base,
                credentials=action.credentials,
            )
        except OSError as exc:
            # Recorded at once, so the next pass retries (or gives up) without waiting for
            # the start timeout; an argv the kernel refuses (E2BIG) is refused every time.
            message = wrapper_missing() or f"cannot spawn the wrapper: {exc}"
            self._fail_run(record, message, terminal=exc.errno == errno.E2BIG)
            raise
        self.spawned.append(pid)
        return pid

    def _fail_run(self, record: Path, message: str, terminal: bool = False) -> None:
        """Mark a run whose wrapper could not be spawned; a state dir that cannot take the
        mark leaves it `starting`, which the start timeout fails in its turn."""
        try:
            self.state.fail_run(record, message, terminal=terminal)
        except StateDirError as exc:
            self.fault = exc.fault
            log.warning("%s: %s", record, exc)

    def _note_wrapper(self, record: Path, pid: int) -> None:
        """The wrapper runs and owns its record: a PID file the state dir cannot take must
        not make the attempt look failed (the PID is kept in memory too)."""
        try:
            self.state.note_wrapper(record, pid)
        except StateDirError as exc:
            self.fault = exc.fault
            log.warning("wrapper %d started, but its PID file was not written: %s", pid, exc)

    def _kill_action(self, action: KillCgroup | KillStrays) -> None:
        """cgroup.kill, or a job's escapees one by one."""
        if isinstance(action, KillStrays):
            kill_processes(action.pids)  # outside the job's cgroup: each by pidfd
            return
        self._kill(action.path)

    def _kill(self, rel: str) -> None:
        """cgroup.kill where the kernel has it (5.14+); else freeze, SIGKILL each PID, thaw."""
        try:
            self.fs.kill(rel)
            return
        except CgroupError as exc:
            if exc.errno not in (errno.ENOENT, errno.EOPNOTSUPP):  # no cgroup.kill (< 5.14)
                raise
        self.fs.freeze(rel, True)
        pids: tuple[int, ...] = ()
        try:
            pids = self.fs.procs_tree(rel)
            signal_pids(pids, signal.SIGKILL)
        finally:
            self.fs.freeze(rel, False)
        # Removed once cgroup.events says populated 0 (the planner's next passes).
        log.info(
            "%s: no cgroup.kill: froze it, SIGKILLed %d process(es), thawed it (freeze+kill)",
            self.fs.path(rel),
            len(pids),
        )


def _message(exc: Exception) -> str:
    """An error as a failure shows it; a bug's exception is named."""
    if isinstance(exc, OSError | WnrError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _missing_image_or_runtime(action: StartJob) -> str:
    """Why a containerised attempt cannot start (its image or runtime binary is absent)."""
    if action.image is None:
        return ""
    if shutil.which(action.argv[0]) is None:
        return f"container runtime {action.argv[0]!r} is not installed"
    if not os.path.isdir(action.image) and not os.path.isfile(action.image):
        return f"image {action.image} does not exist"
    return ""


def _within(path: str, ancestor: str) -> bool:
    """Whether a cgroup path is the ancestor or below it ("" is the root, above everything)."""
    return ancestor in ("", path) or path.startswith(ancestor + "/")
