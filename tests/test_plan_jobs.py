"""Planner tables for a job's phase: what its records and cgroup say, what that phase starts
or cleans up, and a running job staying in its slot.

plan(desired, observed, now) on hand-built data from tests/builders.py, no I/O (DESIGN §2-§5).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.host.statedir import JobRecords
from reconciler.model.actions import (
    Action,
    CreateCgroup,
    KillCgroup,
    RecordEnd,
    RemoveCgroup,
    Signal,
)
from reconciler.model.observed import OomEvents, Placement, Usage
from reconciler.plan import Note, plan
from reconciler.plan.jobphase import JobView, Phase
from reconciler.plan.memo import PlanMemo
from tests.builders import (
    RUNNING,
    attempt,
    desired,
    job,
    new_job_writes,
    records,
    slot,
    start,
    tree,
)

# --- job phases -----------------------------------------------------------------------------


PHASE_CASES = [
    pytest.param(
        records(attempt(1, "exited", exit_code=0)),
        None,
        100.0,
        JobView(Phase.Succeeded, "Completed", attempts=1, exit_code=0),
        [],
        id="exited-0",
    ),
    pytest.param(
        records(attempt(1, "exited", exit_code=3)),
        None,
        100.0,
        JobView(Phase.Failed, "Error", "exit code 3", 1, 3),
        [],
        id="exited-3",
    ),
    pytest.param(
        records(attempt(1, "exited", signal=9)),
        None,
        100.0,
        JobView(Phase.Failed, "Error", "killed by SIGKILL", 1, 137),
        [],
        id="killed-by-signal",
    ),
    pytest.param(
        records(attempt(1, "exited", signal=11, core_dumped=True)),
        None,
        100.0,
        JobView(Phase.Failed, "Error", "killed by SIGSEGV (core dumped)", 1, 139),
        [],
        id="killed-with-a-core-dump",
    ),
    pytest.param(
        records(attempt(1, "exited", signal=15, terminated_by=15)),
        None,
        100.0,
        JobView(
            Phase.Failed,
            "Error",
            "killed by SIGTERM; its wrapper got SIGTERM too (stopped from outside?)",
            1,
            143,
        ),
        [],
        id="stopped-from-outside",
    ),
    pytest.param(
        records(attempt(1, "exited", signal=9, oom_kills=2)),
        None,
        100.0,
        JobView(
            Phase.Failed, "OOMKilled", "the kernel OOM-killed 2 process(es) of the job", 1, 137
        ),
        [],
        id="oom-killed",
    ),
    pytest.param(
        records(attempt(1, "exited", signal=9, oom_kills=3, oom_level="slot")),
        None,
        100.0,
        JobView(
            Phase.Failed,
            "OOMKilled",
            "the kernel OOM-killed 3 process(es) of the job: its slot reached the slot's memory "
            "limit (not this job's own)",
            1,
            137,
        ),
        [],
        id="oom-killed-by-the-slots-limit",
    ),
    pytest.param(
        records(attempt(1, "failed-start", message="cannot run 'x'")),
        False,
        100.0,
        JobView(Phase.Pending, "StartFailed", "attempt 1: cannot run 'x'", 1, deadline=1.0),
        [start(2)],
        id="failed-start-1-of-3",
    ),
    pytest.param(
        records(
            attempt(1, "failed-start", message="m1"),
            attempt(2, "failed-start", message="m2"),
        ),
        False,
        100.0,
        JobView(Phase.Pending, "StartFailed", "attempt 2: m2", 2, deadline=2.0),
        [start(3)],
        id="failed-start-2-of-3",
    ),
    pytest.param(
        records(
            attempt(1, "failed-start", message="m1"),
            attempt(2, "failed-start", message="m2"),
            attempt(3, "failed-start", message="m3"),
        ),
        False,
        100.0,
        JobView(Phase.Failed, "ErrorVN", "3 attempts failed to start; last: m3", 3),
        [RemoveCgroup("Job/x", "slot.a/job.x")],
        id="failed-start-3-of-3",
    ),
    pytest.param(
        records(attempt(1, "failed-start", message="E2BIG", terminal=True)),
        False,
        100.0,
        JobView(Phase.Failed, "ErrorVN", "attempt 1 cannot ever start: E2BIG", 1),
        [RemoveCgroup("Job/x", "slot.a/job.x")],
        id="failed-start-terminal-is-not-retried",
    ),
    pytest.param(
        records(attempt(1, "starting", spawned_at=100.0)),
        False,
        110.0,
        JobView(Phase.Starting, attempts=1, deadline=130.0),
        [],
        id="starting-within-timeout",
    ),
    pytest.param(
        records(attempt(1, "starting", spawned_at=100.0)),
        True,
        110.0,
        JobView(Phase.Starting, attempts=1, deadline=110.5),
        [],
        id="starting-populated",
    ),
    pytest.param(
        records(attempt(1, "starting", spawned_at=100.0)),
        False,
        130.0,
        JobView(
            Phase.Pending,
            "StartFailed",
            "attempt 1: the wrapper did not report within 30s",
            1,
            deadline=101.0,
        ),
        [start(2)],
        id="starting-timed-out",
    ),
    pytest.param(
        JobRecords(),
        True,
        100.0,
        JobView(Phase.Running, "Adopted", "running processes found without records"),
        [],
        id="adopted",
    ),
    pytest.param(
        RUNNING,
        True,
        100.0,
        JobView(Phase.Running, attempts=1),
        [],
        id="running",
    ),
    pytest.param(
        RUNNING,
        False,
        100.0,
        JobView(
            Phase.Failed,
            "Error",
            "the wrapper ended without recording the payload's end (killed from outside?)",
            1,
        ),
        [RemoveCgroup("Job/x", "slot.a/job.x")],
        id="running-vanished",
    ),
    pytest.param(
        JobRecords(),
        None,
        100.0,
        JobView(Phase.Pending),
        [CreateCgroup("Job/x", "slot.a/job.x"), *new_job_writes("x"), start(1)],
        id="new",
    ),
]


@pytest.mark.parametrize(("recs", "populated", "now", "view", "expected"), PHASE_CASES)
def test_job_phase_from_records_decides_the_actions(
    recs: JobRecords,
    populated: bool | None,
    now: float,
    view: JobView,
    expected: list[Action],
) -> None:
    """The job's records and cgroup give its phase, and the phase decides whether it (re)starts."""
    jobs = {} if populated is None else {"x": ("a", populated)}
    o = tree({"a": {}}, jobs, records={"x": recs})
    p = plan(desired(slot("a"), job("x", "a")), o, now)
    assert view == p.jobs["x"]
    assert expected == list(p.actions)


@pytest.mark.parametrize(
    ("populated", "expected"),
    [
        (True, [KillCgroup("Job/x", "slot.a/job.x", "the job has finished; leftover processes")]),
        (False, [RemoveCgroup("Job/x", "slot.a/job.x")]),
    ],
)
def test_finished_job_cgroup_is_emptied_then_removed(
    populated: bool, expected: list[Action]
) -> None:
    """A finished job's leftover processes are killed, and its empty cgroup is removed."""
    o = tree(
        {"a": {}},
        {"x": ("a", populated)},
        records={"x": records(attempt(1, "exited", exit_code=0))},
    )
    p = plan(desired(slot("a"), job("x", "a")), o, 100.0)
    assert expected == list(p.actions)


def test_finished_job_whose_spec_moved_slot_still_has_its_cgroup_removed() -> None:
    """A finished job's empty cgroup is removed even when its spec now names another slot."""
    o = tree(
        {"a": {}, "b": {}},
        {"x": ("a", False)},
        records={"x": records(attempt(1, "exited", exit_code=0))},
    )
    p = plan(desired(slot("a"), slot("b"), job("x", "b")), o, 100.0)
    assert [RemoveCgroup("Job/x", "slot.a/job.x")] == list(p.actions)


def test_running_job_does_not_move_when_its_spec_names_another_slot() -> None:
    """A running job whose spec names another slot keeps running where it is, with a 'kept' note."""
    o = tree({"a": {}, "b": {}}, {"x": ("a", True)}, records={"x": RUNNING})
    p = plan(desired(slot("a"), slot("b"), job("x", "b")), o, 100.0)
    assert () == p.actions
    assert [Note("Job/x", "kept", "runs in slot a; a running job does not move slots")] == list(
        p.notes
    )


def test_a_job_whose_oom_group_kill_took_its_wrapper_is_recorded_oom_killed() -> None:
    """Running, its cgroup empty after OOM kills, no end recorded: OOMKilled, and wnr records the end before removing the cgroup."""
    o = tree({"a": {}}, {"x": ("a", False)}, records={"x": records(attempt(1, "running"))})
    placed = o.jobs["x"]
    oom = OomEvents(kills=3, job_ooms=1, slot_ooms=0)
    o = replace(o, jobs={"x": Placement(placed.slot, replace(placed.cgroup, oom=oom))})
    p = plan(desired(slot("a"), job("x", "a")), o, 50.0)
    assert (Phase.Failed, "OOMKilled", 128 + 9) == (
        p.jobs["x"].phase,
        p.jobs["x"].reason,
        p.jobs["x"].exit_code,
    )
    assert "it reached its own memory limit" in p.jobs["x"].message
    [end, remove] = p.actions
    assert RemoveCgroup("Job/x", "slot.a/job.x") == remove
    assert isinstance(end, RecordEnd)
    assert ("exited", 9, 3, "job", 50.0) == (
        end.record["phase"],
        end.record["signal"],
        end.record["oomKills"],
        end.record["oomLevel"],
        end.record["finishedAt"],
    )


def test_a_running_job_whose_cgroup_emptied_without_oom_kills_is_an_error() -> None:
    """No OOM kill in its cgroup: the wrapper was killed from outside, and nothing is recorded for it."""
    o = tree({"a": {}}, {"x": ("a", False)}, records={"x": records(attempt(1, "running"))})
    placed = o.jobs["x"]
    o = replace(o, jobs={"x": Placement(placed.slot, replace(placed.cgroup, oom=OomEvents()))})
    p = plan(desired(slot("a"), job("x", "a")), o, 50.0)
    assert (Phase.Failed, "Error") == (p.jobs["x"].phase, p.jobs["x"].reason)
    assert [RemoveCgroup("Job/x", "slot.a/job.x")] == list(p.actions)


# --- plans kept between passes (reconciler.plan.memo) -----------------------------------------


def test_a_kept_plan_of_a_running_job_is_recalled_until_its_idle_window_ends() -> None:
    """A quiet running job's plan is recalled while its inputs stay the same, and planned afresh (IdleTimeout) once the idle window its last busy moment opened has passed."""
    d = desired(slot("a"), job("x", "a", idle={"windowSeconds": 60, "minCpuFraction": 0.1}))
    usage = Usage(sampled_at=100.0, busy_at=100.0)
    o = replace(tree({"a": {}}, {"x": ("a", True)}, records={"x": RUNNING}), usage={"x": usage})
    memo = PlanMemo()
    first = plan(d, o, 101.0, memo=memo)
    assert ((), None) == (first.actions, first.requeue_after)
    assert (first, 1) == (plan(d, o, 159.0, memo=memo), memo.hits)
    late = plan(d, o, 160.0, memo=memo)
    assert 0 == memo.hits
    assert ["IdleTimeout"] == [a.reason for a in late.actions if isinstance(a, Signal)]


def test_a_slot_of_kept_jobs_is_recalled_whole_until_one_of_them_changes() -> None:
    """A slot whose every job was kept is recalled whole while each job's placement, records and sample stay the same; a change in any one of them plans the slot as a fresh plan would."""
    d = desired(slot("a"), job("x", "a"), job("y", "a"), slot("b"), job("z", "b"))
    placed = {"x": ("a", True), "y": ("a", True), "z": ("b", True)}
    o = tree({"a": {}, "b": {}}, placed, records=dict.fromkeys(placed, RUNNING))
    memo = PlanMemo()
    first = plan(d, o, 100.0, memo=memo)
    assert (first, 3) == (plan(d, o, 101.0, memo=memo), memo.hits)
    ended = records(attempt(1, "exited", exit_code=0, started_at=1.0, finished_at=101.0))
    emptied = Placement("a", replace(o.jobs["x"].cgroup, populated=False))
    usage = {"y": Usage(sampled_at=101.0, busy_at=101.0)}
    for changed in (
        replace(o, records={**o.records, "x": ended}),
        replace(o, jobs={**o.jobs, "x": emptied}),
        replace(o, usage=usage),
    ):
        plan(d, o, 102.0, memo=memo)
        assert plan(d, changed, 103.0) == plan(d, changed, 103.0, memo=memo)
