"""Planner tables for processes out of place (plan/strays.py) and their events, on plain data."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.actions import KillStrays, Signal
from reconciler.model.event import stray_events
from reconciler.model.observed import Observed, Stray
from reconciler.plan import plan
from tests.builders import RUNNING, attempt, desired, job, notes_of, records, slot, tree

SLOT_CGROUP = "/wnr/slot.a"
OUTSIDE = Stray(4242, 777, "sleep", "/user.slice", "x", None)
IN_SLOT = Stray(4243, 778, "sleep", SLOT_CGROUP, "x", "slot.a")
INTRUDER = Stray(5000, 900, "bash", "/wnr/slot.a/job.x", "x", "slot.a/job.x")


def running(*strays: Stray, intruders: tuple[Stray, ...] = ()) -> Observed:
    """Job x running in slot a, with the given processes out of place."""
    o = tree({"a": {}}, {"x": ("a", True)}, records={"x": RUNNING})
    return replace(o, strays=strays, intruders=intruders)


def test_a_running_jobs_escapees_are_noted_and_left_running() -> None:
    """While its job runs, an escapee is a note naming the job, the PID and where it went."""
    p = plan(desired(slot("a"), job("x", "a")), running(OUTSIDE, IN_SLOT), 100.0)
    assert [] == list(p.actions)
    assert [
        "process 4242 (sleep) left the job's cgroup for /user.slice (outside wnr's tree); "
        "it is killed when the job ends",
        "process 4243 (sleep) left the job's cgroup for /wnr/slot.a (slot.a); "
        "it is killed when the job ends",
    ] == [n.message for n in notes_of(p, "escaped")]
    assert {"Job/x"} == {n.obj for n in notes_of(p, "escaped")}


def test_a_deleted_jobs_escapees_are_killed_with_it() -> None:
    """Deleting the job: SIGTERM to its cgroup, SIGKILL to each escapee by PID and start."""
    p = plan(desired(slot("a")), running(OUTSIDE, IN_SLOT), 100.0)
    assert ["signal", "kill-escapees"] == [a.op for a in p.actions]
    kill = p.actions[-1]
    assert isinstance(kill, KillStrays)
    assert ((4242, 777), (4243, 778)) == kill.pids
    assert ("Job/x", "slot.a/job.x", "the job was deleted") == (kill.obj, kill.path, kill.reason)


def test_an_incomplete_spec_set_kills_no_escapee() -> None:
    """A job that only seems deleted (a file failed to parse) keeps its escapees too."""
    p = plan(desired(slot("a"), complete=False), running(OUTSIDE), 100.0)
    assert [] == list(p.actions)
    assert notes_of(p, "escaped")


def test_a_finished_or_stopping_jobs_escapees_are_killed() -> None:
    """The job's end (its cgroup emptied or not) and a stop in its grace both end them."""
    d = desired(slot("a"), job("x", "a"))
    done = replace(
        tree({"a": {}}, {"x": ("a", False)}, records={"x": records(attempt(1, "exited"))}),
        strays=(OUTSIDE,),
    )
    assert ["remove-cgroup", "kill-escapees"] == [a.op for a in plan(d, done, 100.0).actions]
    gone = replace(done, jobs={})  # its cgroup removed already: the escapee is still its
    assert ["kill-escapees"] == [a.op for a in plan(d, gone, 100.0).actions]
    deadline = job("x", "a", activeDeadlineSeconds=10)
    p = plan(desired(slot("a"), deadline), running(IN_SLOT), 100.0)
    assert ["signal", "kill-escapees"] == [a.op for a in p.actions]


def test_an_intruder_is_noted_and_goes_only_with_the_whole_cgroup() -> None:
    """A process moved into the job's cgroup is never signalled alone: no action while the
    job runs, and at its deletion only the cgroup's own stop."""
    d = desired(slot("a"), job("x", "a"))
    p = plan(d, running(intruders=(INTRUDER,)), 100.0)
    assert [] == list(p.actions)
    (note,) = notes_of(p, "intruder")
    assert "Job/x" == note.obj
    assert note.message.startswith("process 5000 (bash) was moved into /wnr/slot.a/job.x")
    deleted = plan(desired(slot("a")), running(intruders=(INTRUDER,)), 100.0)
    assert [Signal] == [type(a) for a in deleted.actions]
    assert "slot.a/job.x" == deleted.actions[0].path


def test_a_stray_no_job_claims_is_noted_on_its_slot_and_left_alone() -> None:
    """An unknown process in a slot (or the root) is reported where it sits, never touched."""
    unknown = replace(IN_SLOT, job=None)
    in_root = Stray(6000, 1, "sh", "/wnr", None, "")
    p = plan(desired(slot("a")), running(unknown, in_root), 100.0)
    assert ["signal"] == [a.op for a in p.actions]
    assert [("Slot/a", 4243), ("Root", 6000)] == [
        (n.obj, int(n.message.split()[1])) for n in notes_of(p, "stray")
    ]


def test_a_quarantined_jobs_escapees_are_left_alone() -> None:
    """A job the pass guard quarantined is not acted on, escapees included."""
    p = plan(desired(slot("a")), running(OUTSIDE), 100.0, quarantined={"x": "boom"})
    assert "kill-escapees" not in [a.op for a in p.actions]


def test_each_process_out_of_place_is_one_warning_while_it_stays() -> None:
    """The marks kept with the reported phases make the next pass (or process) quiet."""
    p = plan(desired(slot("a"), job("x", "a")), running(OUTSIDE, intruders=(INTRUDER,)), 100.0)
    marks, events = stray_events(p.notes, {}, 100.0)
    assert [("Job/x", "Escaped"), ("Job/x", "Intruder")] == [(e.obj, e.reason) for e in events]
    assert all(e.type == "Warning" for e in events)
    assert "4242" in events[0].message
    assert (marks, []) == stray_events(p.notes, marks, 101.0)
    moved = replace(OUTSIDE, cgroup="/elsewhere")
    p = plan(desired(slot("a"), job("x", "a")), running(moved), 102.0)
    _, again = stray_events(p.notes, marks, 102.0)
    assert [True] == ["for /elsewhere " in e.message for e in again]
