"""Planner tables for which jobs start and which must stop: admission in spec order while jobs
fit the slot (Unschedulable otherwise), Cordoned and Draining slots, and the drain grace.

plan(desired, observed, now) on hand-built data from tests/builders.py, no I/O (DESIGN §2-§5).
"""

from __future__ import annotations

import pytest

from reconciler.host.statedir import SlotRecord
from reconciler.model.actions import Action, RecordSlot, Signal, StartJob
from reconciler.model.desired import Source
from reconciler.plan import Note, plan
from reconciler.plan.jobphase import Phase
from tests.builders import RUNNING, attempt, desired, job, notes_of, ops, records, slot, tree

# --- admission ------------------------------------------------------------------------------


def test_jobs_are_admitted_in_spec_order_until_the_slot_is_full() -> None:
    """Pending jobs start in spec order (file, then document) while they fit the slot's CPUs; the next one waits."""
    sources = {
        ("Job", "a"): Source("/specs/02.yaml", 0),
        ("Job", "b"): Source("/specs/01.yaml", 1),
        ("Job", "c"): Source("/specs/01.yaml", 0),
    }
    d = desired(
        slot("s", resources={"cpus": 2}),
        *(job(n, "s", resources={"cpus": 1}) for n in "abc"),
        sources=sources,
    )
    p = plan(d, tree({"s": {"cpu.max": "200000 100000"}}), 0.0)
    assert ["c", "b"] == [a.job for a in p.actions if isinstance(a, StartJob)]
    assert [Note("Job/a", "waiting", "Unschedulable: waiting for 1 CPUs (0 free) in slot s")] == (
        notes_of(p, "waiting")
    )
    assert "Unschedulable" == p.jobs["a"].reason


def test_running_jobs_count_against_the_slot() -> None:
    """A job already running in the slot uses its share, so a pending job that no longer fits waits."""
    o = tree(
        {"s": {"memory.max": "1073741824"}},
        {"r": ("s", True)},
        job_limits={"r": {"memory.max": "805306368"}},
        records={"r": RUNNING},
    )
    d = desired(
        slot("s", resources={"memory": "1Gi"}),
        job("r", "s", resources={"memory": "768Mi"}),
        job("p", "s", resources={"memory": "512Mi"}),
    )
    p = plan(d, o, 0.0)
    assert () == p.actions
    assert [
        Note("Job/p", "waiting", "Unschedulable: waiting for 512Mi memory (256Mi free) in slot s")
    ] == notes_of(p, "waiting")


# --- slot states ----------------------------------------------------------------------------


def test_cordoned_slot_starts_no_job_and_leaves_running_ones() -> None:
    """In a Cordoned slot, pending jobs (new or to be retried) wait with a note and running jobs are untouched."""
    o = tree(
        {"a": {}},
        {"r": ("a", True)},
        records={"r": RUNNING, "f": records(attempt(1, "failed-start"))},
    )
    d = desired(slot("a", state="Cordoned"), job("p", "a"), job("r", "a"), job("f", "a"))
    p = plan(d, o, 100.0)
    assert () == p.actions
    assert [
        Note("Job/f", "waiting", "slot a is Cordoned: no new jobs start"),
        Note("Job/p", "waiting", "slot a is Cordoned: no new jobs start"),
    ] == notes_of(p, "waiting")
    assert Phase.Running == p.jobs["r"].phase
    assert p.requeue_after is None


@pytest.mark.parametrize(
    ("since", "now", "expected", "requeue"),
    [
        pytest.param(
            None,
            1000.0,
            [RecordSlot("Slot/a", "slot.a", "a", 300.0, 30.0, 1000.0)],
            300.0,
            id="drain-begins",
        ),
        pytest.param(1000.0, 1299.0, [], 1.0, id="within-drain-grace"),
        pytest.param(
            1000.0,
            1300.0,
            [Signal("Job/r", "slot.a/job.r", job="r", grace_seconds=30.0, reason="Drained")],
            30.0,
            id="drained",
        ),
    ],
)
def test_draining_slot_starts_nothing_and_stops_running_jobs_after_the_drain_grace(
    since: float | None, now: float, expected: list[Action], requeue: float
) -> None:
    """A Draining slot records when the drain began, starts no job, and stops running ones as Drained once the drain grace is over."""
    o = tree(
        {"a": {}},
        {"r": ("a", True)},
        records={"r": RUNNING},
        slot_records={"a": SlotRecord(300.0, 30.0, since)},
    )
    d = desired(slot("a", state="Draining"), job("p", "a"), job("r", "a"))
    p = plan(d, o, now)
    assert expected == list(p.actions)
    assert [Note("Job/p", "waiting", "slot a is Draining: no new jobs start")] == notes_of(
        p, "waiting"
    )
    assert requeue == p.requeue_after


def test_uncordoned_slot_starts_the_waiting_job() -> None:
    """The same pending job starts once its slot is Active again."""
    o = tree({"a": {}})
    p = plan(desired(slot("a", state="Active"), job("p", "a")), o, 100.0)
    assert ["create-cgroup", "write-limit", "write-limit", "start-job"] == ops(p)


# --- slots whose spec is gone ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "now", "expected", "requeue"),
    [
        pytest.param(
            None,
            1000.0,
            [RecordSlot("Slot/b", "slot.b", "b", 300.0, 30.0, 1000.0)],
            300.0,
            id="drain-begins",
        ),
        pytest.param(1000.0, 1200.0, [], 100.0, id="draining"),
        pytest.param(
            1000.0,
            1300.0,
            [Signal("Job/y", "slot.b/job.y", job="y", grace_seconds=30.0, reason="Drained")],
            30.0,
            id="drained",
        ),
    ],
)
def test_job_still_desired_in_deleted_slot_runs_for_the_drain_grace(
    since: float | None, now: float, expected: list[Action], requeue: float
) -> None:
    """A running job whose spec remains but whose slot's spec is gone runs on for the drain grace, then stops as Drained."""
    o = tree(
        {"b": {}},
        {"y": ("b", True)},
        records={"y": RUNNING},
        slot_records={"b": SlotRecord(300.0, 30.0, since)},
    )
    p = plan(desired(slot("a"), job("y", "a")), o, now)
    assert expected == [a for a in p.actions if a.path.startswith("slot.b")]
    assert requeue == p.requeue_after
