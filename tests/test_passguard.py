"""A pass that raises is contained: logged once, an event, back-off, and a quarantine for a job that keeps failing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.daemon.passguard import BACKOFF_MIN, QUARANTINE_AFTER, ErrorLog, PassGuard
from reconciler.host.eventlog import EventLog
from reconciler.model.desired import SpecError
from reconciler.model.errors import ObjectError, attributed
from reconciler.plan import plan
from reconciler.plan.jobphase import JobView, Phase
from tests.builders import desired, job, slot, tree
from tests.conftest import wait_for
from tests.helpers import REPO, record, write_job, write_slot


def failing(obj: str, message: str = "boom") -> None:
    """A pass that raises, as the planner does when one job's planning has a bug."""
    with attributed(obj):
        raise ValueError(message)


def events(state: Path) -> list[dict[str, object]]:
    """The events logged in a state dir."""
    path = state / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_failing_pass_is_logged_once_then_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure logs its traceback and an event; repeats log one line each and double the back-off."""
    guard = PassGuard(EventLog(tmp_path), lambda: 5.0)
    caplog.set_level(logging.INFO, "wnr.daemon")
    for _ in range(3):
        assert guard.run(lambda: failing("Slot/a")) is None
    assert 1 == sum(1 for r in caplog.records if r.exc_info is not None)
    assert BACKOFF_MIN * 4 == guard.backoff
    assert [("Slot/a", "PassFailed")] == [(e["object"], e["reason"]) for e in events(tmp_path)]
    assert "ValueError: boom (at " in str(events(tmp_path)[0]["message"])


def test_a_pass_that_succeeds_again_resets_the_guard(tmp_path: Path) -> None:
    """After a failure, a good pass returns its result, records PassRecovered and resets the back-off."""
    guard = PassGuard(EventLog(tmp_path), lambda: 5.0)
    guard.run(lambda: failing("Node"))
    guard.run(lambda: failing("Node"))
    assert 42 == guard.run(lambda: 42)
    assert BACKOFF_MIN == guard.backoff
    assert ["PassFailed", "PassRecovered"] == [e["reason"] for e in events(tmp_path)]


def test_a_job_that_keeps_failing_is_quarantined_until_its_spec_changes(tmp_path: Path) -> None:
    """The same Job failure QUARANTINE_AFTER times quarantines that job; a changed spec lifts it."""
    guard = PassGuard(EventLog(tmp_path), lambda: 5.0)
    for _ in range(QUARANTINE_AFTER):
        guard.run(lambda: failing("Job/bad"))
    assert {"bad": "ValueError: boom"} == guard.quarantined
    assert "Quarantined" == events(tmp_path)[-1]["reason"]
    first = job("bad", "a")
    guard.track({"bad": first})
    guard.track({"bad": job("bad", "a")})  # equal spec, re-parsed: still quarantined
    assert ["bad"] == list(guard.quarantined)
    guard.track({"bad": job("bad", "a", command=("/bin/false",))})
    assert {} == guard.quarantined


def test_node_failures_never_quarantine(tmp_path: Path) -> None:
    """A failure not attributed to a job only backs off; nothing is quarantined."""
    guard = PassGuard(EventLog(tmp_path), lambda: 5.0)
    for _ in range(QUARANTINE_AFTER + 2):
        guard.run(lambda: failing("Node"))
    assert {} == guard.quarantined


def test_the_planner_names_the_job_it_failed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while planning one job reaches the caller as an ObjectError for that job."""
    from reconciler.plan import jobs  # noqa: PLC0415 - patched for this test only

    real = jobs._plan_job

    def buggy(out: object, here: object, one: object, view: object) -> None:
        if getattr(getattr(one, "metadata", None), "name", "") == "bad":
            raise KeyError("bug")
        real(out, here, one, view)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "_plan_job", buggy)
    with pytest.raises(ObjectError) as raised:
        plan(desired(slot("a"), job("ok", "a"), job("bad", "a")), tree({}), 1.0)
    assert "Job/bad" == raised.value.obj
    assert isinstance(raised.value.__cause__, KeyError)


def test_a_quarantined_job_is_failed_and_left_alone() -> None:
    """The planner reports a quarantined job Failed/ReconcileError, plans nothing for it, and plans its neighbours."""
    planned = plan(
        desired(slot("a"), job("ok", "a"), job("bad", "a")), tree({}), 1.0, {"bad": "KeyError"}
    )
    expected = JobView(Phase.Failed, "ReconcileError", "wnr cannot reconcile this job: KeyError")
    assert expected == planned.jobs["bad"]
    assert not [a for a in planned.actions if a.obj == "Job/bad"]
    assert [a for a in planned.actions if a.obj == "Job/ok"]


def test_error_log_logs_each_error_once_while_it_lasts(caplog: pytest.LogCaptureFixture) -> None:
    """The same errors on every pass are logged once; a resolved one is said once; a new one is logged."""
    caplog.set_level(logging.INFO, "wnr.daemon")
    errors = ErrorLog()
    a, b, c = (SpecError("f", line, 1, message) for line, message in ((1, "a"), (2, "b"), (3, "c")))
    for _ in range(5):
        errors.log([a, b])
    errors.log([b, c])
    expected = ["f:1:1: a", "f:2:1: b", "f:3:1: c", "resolved: f:1:1: a"]
    assert expected == [r.getMessage() for r in caplog.records]


BUGGY_DAEMON = textwrap.dedent(
    """\
    import sys
    import reconciler.plan.jobs as jobs
    real = jobs._plan_job
    def buggy(out, here, job, view):
        if job.metadata.name == "boom":
            raise ZeroDivisionError("injected bug")
        real(out, here, job, view)
    jobs._plan_job = buggy
    from reconciler.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_daemon_with_a_planner_bug_quarantines_the_job_and_runs_the_rest(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A real daemon whose planner raises on one job keeps running, runs the other jobs and quarantines that one."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s")
    write_job(specs, "boom", "s", ["true"])
    write_job(specs, "fine", "s", ["true"])
    argv = ["run", "--specs", specs, "--root", cgroup_root, "--state-dir", state_dir]
    with open(tmp_path / "daemon.log", "wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-c", BUGGY_DAEMON, *map(str, argv)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Quarantined" in [e["reason"] for e in events(state_dir)], timeout=30)
        wait_for(lambda: record(state_dir, "fine").get("phase") == "exited")
        write_job(specs, "after", "s", ["true"])
        wait_for(lambda: record(state_dir, "after").get("phase") == "exited")
        assert daemon.poll() is None
        assert not (state_dir / "jobs" / "boom").exists()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    log = (tmp_path / "daemon.log").read_text()
    assert 1 == log.count("ERROR wnr.daemon: the pass failed on Job/boom")
    assert "ZeroDivisionError: injected bug" in log
