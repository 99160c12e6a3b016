"""Planner tables for deletion: jobs and slots whose specs are gone are signalled, killed,
removed and forgotten in order; an incomplete spec set deletes nothing.

plan(desired, observed, now) on hand-built data from tests/builders.py, no I/O (DESIGN §2-§5).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.host.statedir import SlotRecord, StopRecord
from reconciler.model.actions import Action, ForgetJob, ForgetSlot, KillCgroup, RemoveCgroup, Signal
from reconciler.model.desired import Desired
from reconciler.plan import Note, plan
from tests.builders import (
    CONVERGED_SLOT,
    DEFAULT_SLOT_RECORD,
    DESTRUCTIVE,
    RUNNING,
    attempt,
    desired,
    job,
    notes_of,
    records,
    slot,
    tree,
)

# --- deletion -------------------------------------------------------------------------------


GRACE_SLOT = slot("a", terminationGracePeriodSeconds=45)
GRACE_RECORD = {"a": SlotRecord(300.0, 45.0)}


@pytest.mark.parametrize(
    ("populated", "stop", "now", "expected", "requeue"),
    [
        pytest.param(
            True,
            None,
            1000.0,
            [Signal("Job/x", "slot.a/job.x", job="x", grace_seconds=45.0, reason="Deleted")],
            45.0,
            id="sigterm",
        ),
        pytest.param(True, StopRecord(1000.0, 45.0, "Deleted"), 1010.0, [], 35.0, id="in-grace"),
        pytest.param(
            True,
            StopRecord(1000.0, 45.0, "Deleted"),
            1045.0,
            [KillCgroup("Job/x", "slot.a/job.x", "Deleted; grace period over")],
            None,
            id="grace-over",
        ),
        pytest.param(
            False,
            StopRecord(1000.0, 45.0, "Deleted"),
            1010.0,
            [RemoveCgroup("Job/x", "slot.a/job.x"), ForgetJob("Job/x", "", job="x")],
            None,
            id="empty",
        ),
        pytest.param(
            None,
            None,
            1000.0,
            [ForgetJob("Job/x", "", job="x")],
            None,
            id="records-only",
        ),
    ],
)
def test_deleted_job_is_stopped_then_removed_then_forgotten(
    populated: bool | None,
    stop: StopRecord | None,
    now: float,
    expected: list[Action],
    requeue: float | None,
) -> None:
    """A job whose spec is gone gets SIGTERM with the slot's grace, cgroup.kill after it, then rmdir and forget."""
    jobs = {} if populated is None else {"x": ("a", populated)}
    recs = {"x": records(attempt(1, "running"), stop=stop)}
    o = tree({"a": {}}, jobs, records=recs, slot_records=GRACE_RECORD)
    p = plan(desired(GRACE_SLOT), o, now)
    assert expected == list(p.actions)
    assert requeue == p.requeue_after


def test_deleted_job_with_no_grace_is_killed_at_once() -> None:
    """With terminationGracePeriodSeconds 0, a deleted job gets SIGKILL at once (its wrapper spared to record the end)."""
    o = tree({"a": {}}, {"x": ("a", True)}, slot_records={"a": SlotRecord(300.0, 0.0)})
    p = plan(desired(slot("a", terminationGracePeriodSeconds=0)), o, 0.0)
    expected = Signal(
        "Job/x", "slot.a/job.x", job="x", signal="SIGKILL", grace_seconds=1.0, reason="Deleted"
    )
    assert [expected] == list(p.actions)


def test_grace_period_comes_from_the_slot_record() -> None:
    """The grace of a stop is the one recorded for the slot, so it survives the deletion of the slot's spec."""
    o = tree({"b": {}}, {"y": ("b", True)}, slot_records={"b": SlotRecord(300.0, 75.0)})
    p = plan(desired(), o, 0.0)
    assert [Signal("Job/y", "slot.b/job.y", job="y", grace_seconds=75.0, reason="Deleted")] == list(
        p.actions
    )


def test_signal_uses_sigterm() -> None:
    """The first stop of a deleted job sends SIGTERM, not SIGKILL."""
    o = tree({"a": {}}, {"x": ("a", True)})
    (action,) = plan(desired(slot("a")), o, 0.0).actions
    assert isinstance(action, Signal)
    assert "SIGTERM" == action.signal


def test_deleted_slot_stops_its_jobs_and_waits_for_them() -> None:
    """A slot whose spec is gone, like its jobs', has its running jobs signalled and is kept until it is empty."""
    o = tree({"b": {}}, {"y": ("b", True), "z": ("b", False)}, records={"y": RUNNING})
    p = plan(desired(), o, 500.0)
    assert [
        Signal("Job/y", "slot.b/job.y", job="y", grace_seconds=30.0, reason="Deleted"),
        RemoveCgroup("Job/z", "slot.b/job.z"),
        ForgetJob("Job/z", "", job="z"),
    ] == list(p.actions)
    assert [Note("Slot/b", "waiting", "removed once empty; still holds job.y")] == notes_of(
        p, "waiting"
    )


def test_deleted_slot_is_removed_in_the_same_plan_as_its_empty_jobs() -> None:
    """Once all of a deleted slot's job cgroups are empty, the jobs and then the slot are removed in one plan."""
    o = tree({"b": {}}, {"y": ("b", False), "z": ("b", False)}, records={"y": RUNNING})
    p = plan(desired(), o, 500.0)
    assert [
        RemoveCgroup("Job/y", "slot.b/job.y"),
        ForgetJob("Job/y", "", job="y"),
        RemoveCgroup("Job/z", "slot.b/job.z"),
        ForgetJob("Job/z", "", job="z"),
        RemoveCgroup("Slot/b", "slot.b"),
        ForgetSlot("Slot/b", "slot.b", slot="b"),
    ] == list(p.actions)


def test_job_still_desired_in_deleted_slot_is_stopped_but_not_forgotten() -> None:
    """A finished job whose slot's spec is gone has its empty cgroup removed with the slot, but its records stay while its spec exists."""
    o = tree({"b": {}}, {"y": ("b", False)}, records={"y": RUNNING})
    p = plan(desired(slot("a"), job("y", "a")), o, 500.0)
    removals = [a for a in p.actions if a.op in DESTRUCTIVE]
    assert [
        RemoveCgroup("Job/y", "slot.b/job.y"),
        RemoveCgroup("Slot/b", "slot.b"),
        ForgetSlot("Slot/b", "slot.b", slot="b"),
    ] == removals


def test_slot_record_without_slot_is_forgotten() -> None:
    """The record of a slot that has neither a spec nor a cgroup any more is deleted."""
    o = tree({}, slot_records={"z": DEFAULT_SLOT_RECORD})
    assert [ForgetSlot("Slot/z", "slot.z", slot="z")] == list(plan(desired(), o, 0.0).actions)


def test_deleted_slot_with_a_foreign_child_is_not_removed() -> None:
    """A deleted slot that holds a cgroup wnr does not own is left in place, and the child is untouched."""
    o = tree({"b": {}}, slot_extra_children={"b": ("stray",)}, foreign=("slot.b/stray",))
    p = plan(desired(), o, 0.0)
    assert () == p.actions
    assert [
        Note("Slot/b", "waiting", "removed once empty; still holds stray"),
        Note("slot.b/stray", "foreign", "not a cgroup wnr owns; left alone"),
    ] == list(p.notes)


def test_incomplete_spec_set_deletes_nothing() -> None:
    """With a spec file never parsed, nothing observed but absent from the specs is signalled, killed, removed or forgotten."""
    o = tree(
        {"a": {}, "b": {}},
        {"x": ("a", True), "y": ("a", False), "w": ("b", True)},
        records={
            "x": records(attempt(1, "running"), stop=StopRecord(0.0, 1.0, "Deleted")),
            "y": RUNNING,
            "z": records(attempt(1, "exited", exit_code=0)),
            "w": RUNNING,
        },
    )
    o = replace(o, slot_records={**o.slot_records, "gone": DEFAULT_SLOT_RECORD})
    p = plan(desired(slot("a"), complete=False), o, 10_000.0)
    assert [] == [a for a in p.actions if a.op in DESTRUCTIVE]
    message = "the spec set is incomplete (see errors); nothing is deleted"
    assert [
        Note("Job/w", "kept", message),
        Note("Job/x", "kept", message),
        Note("Job/y", "kept", message),
        Note("Job/z", "kept", message),
        Note("Slot/b", "kept", message),
    ] == notes_of(p, "kept")


def test_missing_spec_directory_deletes_nothing() -> None:
    """An empty, incomplete desired state (unreadable spec dir) plans no action on a populated tree."""
    o = tree({"a": CONVERGED_SLOT}, {"x": ("a", True)}, records={"x": RUNNING})
    p = plan(Desired(complete=False), o, 100.0)
    assert () == p.actions
