"""Planner tables for the tree: the root and slot cgroups made from nothing, their controllers
and records, foreign cgroups, and the plan's fingerprint.

plan(desired, observed, now) on hand-built data from tests/builders.py, no I/O (DESIGN §2-§5).
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.host.statedir import SlotRecord
from reconciler.model.actions import (
    Action,
    CreateCgroup,
    EnableControllers,
    RecordSlot,
    StartJob,
    WriteLimit,
)
from reconciler.model.desired import Desired
from reconciler.model.observed import Observed
from reconciler.plan import Note, plan
from reconciler.plan.jobphase import Phase
from reconciler.plan.launch import THREAD_VARIABLES
from tests.builders import (
    AS_NOBODY,
    DEFAULT_CONTROLLERS,
    DEFAULT_SLOT_RECORD,
    NOBODY,
    ROOT_PATH,
    attempt,
    cgroup,
    desired,
    empty,
    job,
    new_job_writes,
    notes_of,
    records,
    slot,
    tree,
    writes,
)

# --- creation from nothing ------------------------------------------------------------------


def test_empty_tree_two_slots_plans_everything_in_order_by_name() -> None:
    """From nothing, the plan creates the root, enables controllers, then each slot (cgroup, limits, controllers, record) and its jobs, in name order."""
    d = desired(
        job("j3", "b", ("/bin/sleep", "3")),
        job("j2", "b", ("/bin/sleep", "2"), env={"Z": "1", "A": "2"}),
        slot("b", resources={"pids": 100}),
        job("j1", "a", ("/usr/bin/run", "--x"), resources={"memory": "512Mi"}, workingDir="/w"),
        slot("a", resources={"cpus": 2, "memory": "1Gi"}),
    )
    every = ("cpu", "io", "memory", "pids")
    expected = [
        CreateCgroup("Root", ""),
        EnableControllers("Root", "", every),
        CreateCgroup("Slot/a", "slot.a"),
        WriteLimit("Slot/a", "slot.a", "cpu.max", None, "200000 100000"),
        WriteLimit("Slot/a", "slot.a", "memory.max", None, "1073741824"),
        EnableControllers("Slot/a", "slot.a", every),
        RecordSlot(
            "Slot/a", "slot.a", slot="a", drain_grace_seconds=300.0, termination_grace_seconds=30.0
        ),
        CreateCgroup("Job/j1", "slot.a/job.j1"),
        WriteLimit("Job/j1", "slot.a/job.j1", "memory.max", None, "536870912"),
        *new_job_writes("j1"),
        StartJob(
            "Job/j1",
            "slot.a/job.j1",
            job="j1",
            slot="a",
            attempt=1,
            argv=("/usr/bin/run", "--x"),
            # the slot's 2 CPUs bound the job
            env={**AS_NOBODY, **dict.fromkeys(THREAD_VARIABLES, "2")},
            working_dir="/w",
            credentials=NOBODY,
        ),
        CreateCgroup("Slot/b", "slot.b"),
        WriteLimit("Slot/b", "slot.b", "pids.max", None, "100"),
        EnableControllers("Slot/b", "slot.b", every),
        RecordSlot(
            "Slot/b", "slot.b", slot="b", drain_grace_seconds=300.0, termination_grace_seconds=30.0
        ),
        CreateCgroup("Job/j2", "slot.b/job.j2"),
        *new_job_writes("j2", "b"),
        StartJob(
            "Job/j2",
            "slot.b/job.j2",
            job="j2",
            slot="b",
            attempt=1,
            argv=("/bin/sleep", "2"),
            env={**AS_NOBODY, "A": "2", "Z": "1"},
            working_dir="/var/lib/wnr/jobs/j2/work",
            credentials=NOBODY,
        ),
        CreateCgroup("Job/j3", "slot.b/job.j3"),
        *new_job_writes("j3", "b"),
        StartJob(
            "Job/j3",
            "slot.b/job.j3",
            job="j3",
            slot="b",
            attempt=1,
            argv=("/bin/sleep", "3"),
            env=AS_NOBODY,
            working_dir="/var/lib/wnr/jobs/j3/work",
            credentials=NOBODY,
        ),
    ]
    p = plan(d, empty(), 0.0)
    assert expected == list(p.actions)
    assert [] == list(p.notes)
    assert ["j1", "j2", "j3"] == sorted(p.jobs)
    assert {"j1": Phase.Pending, "j2": Phase.Pending, "j3": Phase.Pending} == {
        n: v.phase for n, v in p.jobs.items()
    }


@pytest.mark.parametrize(
    ("spec", "record", "expected"),
    [
        ({}, DEFAULT_SLOT_RECORD, []),
        ({}, None, [RecordSlot("Slot/a", "slot.a", "a", 300.0, 30.0)]),
        (
            {"terminationGracePeriodSeconds": 45},
            DEFAULT_SLOT_RECORD,
            [RecordSlot("Slot/a", "slot.a", "a", 300.0, 45.0)],
        ),
        (
            {"drainGracePeriodSeconds": 10},
            DEFAULT_SLOT_RECORD,
            [RecordSlot("Slot/a", "slot.a", "a", 10.0, 30.0)],
        ),
        (
            {"state": "Active"},
            SlotRecord(300.0, 30.0, draining_since=5.0),
            [RecordSlot("Slot/a", "slot.a", "a", 300.0, 30.0, None)],
        ),
    ],
)
def test_slot_record_follows_the_spec(
    spec: dict[str, Any], record: SlotRecord | None, expected: list[Action]
) -> None:
    """A slot's record (grace periods, drain start) is written when missing or out of step with its spec, and only then."""
    o = tree({"a": {}}, slot_records={} if record is None else {"a": record})
    assert expected == list(plan(desired(slot("a", **spec)), o, 100.0).actions)


def test_start_job_env_is_sorted_by_name() -> None:
    """The start-job action carries the user's HOME, USER and LOGNAME, then the job's environment in name order, whatever order the spec used."""
    d = desired(slot("a"), job("x", "a", env={"Z": "1", "M": "2", "A": "3"}))
    start = plan(d, empty(), 0.0).actions[-1]
    assert isinstance(start, StartJob)
    assert ["HOME", "USER", "LOGNAME", "A", "M", "Z"] == list(start.env)


@pytest.mark.parametrize(
    ("available", "root_enable", "written"),
    [
        (frozenset({"memory"}), ("memory",), ["memory.max"]),
        (frozenset({"cpu", "pids"}), ("cpu", "pids"), ["cpu.max", "pids.max"]),
        (frozenset({"io", "cpu", "memory", "pids"}), ("cpu", "io", "memory", "pids"), None),
        (frozenset(), None, []),
    ],
)
def test_only_offered_controllers_are_enabled_and_written(
    available: frozenset[str], root_enable: tuple[str, ...] | None, written: list[str] | None
) -> None:
    """The root enables only the wanted controllers its parent offers, and only their limit files are written."""
    d = desired(slot("a", resources={"cpus": 1, "memory": "1Gi", "pids": 10, "ioWeight": 50}))
    p = plan(d, empty(available), 0.0)
    enables = [a for a in p.actions if isinstance(a, EnableControllers)]
    expected_enables = (
        []
        if root_enable is None
        else [
            EnableControllers("Root", "", root_enable),
            EnableControllers("Slot/a", "slot.a", root_enable),
        ]
    )
    assert expected_enables == enables
    files = [w.file for w in writes(p, "slot.a")]
    every = ["cpu.max", "memory.max", "pids.max", "io.weight"]
    assert (every if written is None else written) == files


def test_nothing_desired_and_no_root_plans_nothing() -> None:
    """With no slots wanted, a missing root is not created."""
    assert () == plan(desired(), empty(), 0.0).actions


def test_existing_root_gets_missing_controllers_only() -> None:
    """An existing root with some controllers enabled gets exactly the missing ones."""
    o = Observed(
        ROOT_PATH,
        cgroup("", controllers=DEFAULT_CONTROLLERS, subtree=frozenset({"cpu"}), with_limits=False),
        DEFAULT_CONTROLLERS,
    )
    assert [EnableControllers("Root", "", ("io", "memory", "pids"))] == list(
        plan(desired(), o, 0.0).actions
    )


# --- foreign cgroups ------------------------------------------------------------------------


def test_foreign_children_are_reported_and_never_touched() -> None:
    """Cgroups under the root that wnr does not own produce a 'foreign' note each and no action."""
    o = tree(
        {"a": {}}, foreign=("system.slice", "slot.a/other"), slot_extra_children={"a": ("other",)}
    )
    p = plan(desired(slot("a")), o, 0.0)
    assert () == p.actions
    assert [
        Note("system.slice", "foreign", "not a cgroup wnr owns; left alone"),
        Note("slot.a/other", "foreign", "not a cgroup wnr owns; left alone"),
    ] == notes_of(p, "foreign")


# --- fingerprint ----------------------------------------------------------------------------


def test_fingerprint_is_stable_for_equal_plans() -> None:
    """Two plans of equal inputs, built separately and in different orders, have the same fingerprint."""
    first = plan(desired(slot("a"), slot("b"), job("x", "a"), job("y", "b")), empty(), 0.0)
    second = plan(desired(job("y", "b"), job("x", "a"), slot("b"), slot("a")), empty(), 5.0)
    assert first.fingerprint == second.fingerprint
    assert 16 == len(first.fingerprint)
    assert set() == set(first.fingerprint) - set("0123456789abcdef")


@pytest.mark.parametrize(
    "changed",
    [
        desired(slot("a"), job("x", "a", ("/bin/false",))),
        desired(slot("a"), job("x", "a", env={"A": "1"})),
        desired(slot("a", resources={"pids": 5}), job("x", "a")),
        desired(slot("a"), job("x", "a", workingDir="/tmp")),
        desired(slot("a")),
    ],
)
def test_fingerprint_changes_when_an_action_changes(changed: Desired) -> None:
    """Any change to an action (argv, env, a limit, the working dir, one action less) changes the fingerprint."""
    base = plan(desired(slot("a"), job("x", "a")), empty(), 0.0)
    other = plan(changed, empty(), 0.0)
    assert base.fingerprint != other.fingerprint


def test_fingerprint_ignores_notes_and_requeue() -> None:
    """Notes and the requeue time are not actions, so they do not change the fingerprint."""
    o = tree(
        {"a": {}},
        {"x": ("a", False)},
        records={"x": records(attempt(1, "starting", spawned_at=100.0))},
    )
    quiet = plan(desired(slot("a"), job("x", "a")), o, 110.0)
    noisy = plan(desired(slot("a", gpus=["0"]), job("x", "a")), o, 120.0)
    assert (quiet.requeue_after, len(quiet.notes)) != (noisy.requeue_after, len(noisy.notes))
    assert quiet.fingerprint == noisy.fingerprint
