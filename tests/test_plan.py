"""Planner tables: plan(desired, observed, now) on hand-built data, no I/O (DESIGN §2-§5)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.host.statedir import JobRecords, SlotRecord, StopRecord
from reconciler.model.actions import (
    Action,
    CreateCgroup,
    EnableControllers,
    ForgetJob,
    ForgetSlot,
    KillCgroup,
    RecordSlot,
    RemoveCgroup,
    Signal,
    StartJob,
    WriteLimit,
)
from reconciler.model.api import Job, Node, Slot
from reconciler.model.desired import Desired, Source
from reconciler.model.observed import Observed
from reconciler.plan import Note, plan
from reconciler.plan.jobphase import JobView, Phase
from tests.builders import (
    ALL_CONTROLLERS,
    DEFAULT_CONTROLLERS,
    DEFAULT_SLOT_RECORD,
    DESTRUCTIVE,
    ROOT_PATH,
    RUNNING,
    attempt,
    cgroup,
    desired,
    empty,
    job,
    node,
    notes_of,
    ops,
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
        StartJob(
            "Job/j1",
            "slot.a/job.j1",
            job="j1",
            slot="a",
            attempt=1,
            argv=("/usr/bin/run", "--x"),
            env={},
            working_dir="/w",
        ),
        CreateCgroup("Slot/b", "slot.b"),
        WriteLimit("Slot/b", "slot.b", "pids.max", None, "100"),
        EnableControllers("Slot/b", "slot.b", every),
        RecordSlot(
            "Slot/b", "slot.b", slot="b", drain_grace_seconds=300.0, termination_grace_seconds=30.0
        ),
        CreateCgroup("Job/j2", "slot.b/job.j2"),
        StartJob(
            "Job/j2",
            "slot.b/job.j2",
            job="j2",
            slot="b",
            attempt=1,
            argv=("/bin/sleep", "2"),
            env={"A": "2", "Z": "1"},
            working_dir="/var/lib/wnr/jobs/j2/work",
        ),
        CreateCgroup("Job/j3", "slot.b/job.j3"),
        StartJob(
            "Job/j3",
            "slot.b/job.j3",
            job="j3",
            slot="b",
            attempt=1,
            argv=("/bin/sleep", "3"),
            working_dir="/var/lib/wnr/jobs/j3/work",
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
    """The start-job action carries the job's environment in name order, whatever order the spec used."""
    d = desired(slot("a"), job("x", "a", env={"Z": "1", "M": "2", "A": "3"}))
    start = plan(d, empty(), 0.0).actions[-1]
    assert isinstance(start, StartJob)
    assert ["A", "M", "Z"] == list(start.env)


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


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "cpuset", "page_size", "file", "value"),
    [
        ({"memory": 1_000_000}, None, 4096, "memory.max", "999424"),
        ({"memory": "1G"}, None, 4096, "memory.max", "999997440"),
        ({"memory": "100000"}, None, 65536, "memory.max", "65536"),
        ({"memory": "4095"}, None, 4096, "memory.max", "0"),
        ({"memoryHigh": "1Gi"}, None, 4096, "memory.high", "1073741824"),
        ({"swap": "10000"}, None, 4096, "memory.swap.max", "8192"),
        ({"cpus": 4}, None, 4096, "cpu.max", "400000 100000"),
        ({"cpus": "1.5"}, None, 4096, "cpu.max", "150000 100000"),
        ({"cpus": "500m"}, None, 4096, "cpu.max", "50000 100000"),
        ({"cpus": "10m"}, None, 4096, "cpu.max", "1000 100000"),
        ({"cpus": "1m"}, None, 4096, "cpu.max", "1000 100000"),
        ({"cpus": "11m"}, None, 4096, "cpu.max", "1100 100000"),
        ({"ioWeight": 200}, None, 4096, "io.weight", "default 200"),
        ({"pids": 64}, None, 4096, "pids.max", "64"),
        ({}, "3,0,1,2", 4096, "cpuset.cpus", "0-3"),
        ({}, "0-3", 4096, "cpuset.cpus", "0-3"),
        ({}, "7,0,2-4", 4096, "cpuset.cpus", "0,2-4,7"),
        ({}, "5,1,2", 4096, "cpuset.cpus", "1-2,5"),
    ],
)
def test_limits_are_normalised_like_the_kernel_reads_them_back(
    resources: dict[str, Any], cpuset: str | None, page_size: int, file: str, value: str
) -> None:
    """A new slot gets exactly one write per set limit, in the form the kernel reads back."""
    spec: dict[str, Any] = {"resources": resources}
    if cpuset is not None:
        spec["cpuset"] = cpuset
    d = desired(node(controllers=sorted(ALL_CONTROLLERS)), slot("a", **spec))
    p = plan(d, empty(ALL_CONTROLLERS, page_size), 0.0)
    assert [WriteLimit("Slot/a", "slot.a", file, None, value)] == writes(p, "slot.a")


@pytest.mark.parametrize(
    ("resources", "file", "value"),
    [
        ({"cpus": "250m"}, "cpu.max", "25000 100000"),
        ({"memory": "100Mi"}, "memory.max", "104857600"),
        ({"pids": 7}, "pids.max", "7"),
    ],
)
def test_job_limits_are_written_to_the_job_cgroup(
    resources: dict[str, Any], file: str, value: str
) -> None:
    """A new job's set resources become writes on the job cgroup, before its start."""
    d = desired(slot("a"), job("x", "a", resources=resources))
    p = plan(d, tree({"a": {}}), 0.0)
    assert ["create-cgroup", "write-limit", "start-job"] == ops(p)
    assert [WriteLimit("Job/x", "slot.a/job.x", file, None, value)] == writes(p, "slot.a/job.x")


CONVERGED_SLOT = {
    "cpu.max": "200000 100000",
    "memory.max": "1073741824",
    "pids.max": "100",
    "io.weight": "default 200",
}


def converged_desired(memory: str = "1Gi") -> Desired:
    """Slot a with four limits and a running job x with a memory limit."""
    return desired(
        slot("a", resources={"cpus": 2, "memory": memory, "pids": 100, "ioWeight": 200}),
        job("x", "a", resources={"memory": "512Mi"}),
    )


def converged_tree() -> Observed:
    """The tree converged_desired() leads to, with x running."""
    return tree(
        {"a": CONVERGED_SLOT},
        {"x": ("a", True)},
        job_limits={"x": {"memory.max": "536870912"}},
        records={"x": RUNNING},
    )


def test_converged_tree_plans_nothing() -> None:
    """When every limit reads back as desired and the job runs, the plan is empty, with no requeue."""
    p = plan(converged_desired(), converged_tree(), 100.0)
    assert () == p.actions
    assert () == p.notes
    assert p.requeue_after is None
    assert JobView(Phase.Running, attempts=1) == p.jobs["x"]


def test_changed_slot_memory_is_one_write_with_old_and_new() -> None:
    """Changing one slot limit plans exactly that write, naming the value read back and the new one."""
    p = plan(converged_desired(memory="2Gi"), converged_tree(), 100.0)
    assert [WriteLimit("Slot/a", "slot.a", "memory.max", "1073741824", "2147483648")] == list(
        p.actions
    )


def test_removed_limit_is_reset_to_the_kernel_default() -> None:
    """A limit dropped from the spec is written back to the kernel's default ('max')."""
    d = desired(
        slot("a", resources={"cpus": 2, "pids": 100, "ioWeight": 200}),
        job("x", "a", resources={"memory": "512Mi"}),
    )
    p = plan(d, converged_tree(), 100.0)
    assert [WriteLimit("Slot/a", "slot.a", "memory.max", "1073741824", "max")] == list(p.actions)


def test_running_job_limit_change_is_written_live() -> None:
    """A running job's changed limit is written to its cgroup without restarting it."""
    d = desired(
        slot("a", resources={"cpus": 2, "memory": "1Gi", "pids": 100, "ioWeight": 200}),
        job("x", "a", resources={"memory": "256Mi"}),
    )
    p = plan(d, converged_tree(), 100.0)
    assert [WriteLimit("Job/x", "slot.a/job.x", "memory.max", "536870912", "268435456")] == list(
        p.actions
    )


# --- what is not enforced --------------------------------------------------------------------


def test_controller_not_offered_is_a_note_not_a_write() -> None:
    """A limit whose controller the kernel lacks is not written; the root and the slot say so."""
    d = desired(slot("a", resources={"memory": "1Gi", "pids": 10}))
    p = plan(d, empty(frozenset({"cpu", "pids", "io"})), 0.0)
    assert [WriteLimit("Slot/a", "slot.a", "pids.max", None, "10")] == writes(p, "slot.a")
    assert [
        Note("Root", "not-enforced-by-kernel", "controller memory is not available in the root"),
        Note(
            "Slot/a",
            "not-enforced-by-kernel",
            "memory.max=1073741824 (no memory controller)",
            "memory.max",
        ),
    ] == notes_of(p, "not-enforced-by-kernel")


def test_unset_limit_without_controller_is_not_reported() -> None:
    """A limit left at its default needs no controller and gets no note."""
    d = desired(slot("a", resources={"pids": 10}))
    p = plan(d, empty(frozenset({"cpu", "pids", "io"})), 0.0)
    assert [
        Note("Root", "not-enforced-by-kernel", "controller memory is not available in the root")
    ] == notes_of(p, "not-enforced-by-kernel")


def test_existing_cgroup_without_the_limit_file_gets_a_note() -> None:
    """A cgroup that lacks a limit file (controller not enabled above it) is reported, not written."""
    o = tree({"a": {}}, available=frozenset({"cpu"}))
    d = desired(slot("a", resources={"cpus": 1, "memory": "1Gi"}))
    p = plan(d, o, 0.0)
    assert [WriteLimit("Slot/a", "slot.a", "cpu.max", "max 100000", "100000 100000")] == list(
        p.actions
    )
    assert [
        Note(
            "Slot/a",
            "not-enforced-by-kernel",
            "memory.max=1073741824 (no memory controller)",
            "memory.max",
        )
    ] == [n for n in notes_of(p, "not-enforced-by-kernel") if n.obj == "Slot/a"]


@pytest.mark.parametrize(
    ("obj", "note"),
    [
        (
            slot("a", resources={"disk": "10Gi"}),
            Note("Slot/a", "not-enforced-yet", "spec.resources.disk"),
        ),
        (slot("a", user="alice"), Note("Slot/a", "not-enforced-yet", "spec.user")),
        (node(capacity={"cpus": 8}), Note("Node/wn", "not-enforced-yet", "spec.capacity")),
    ],
)
def test_set_but_unimplemented_field_is_noted(obj: Node | Slot | Job, note: Note) -> None:
    """A field the models accept but wnr does not act on yet shows up as a 'not-enforced-yet' note."""
    objects: list[Node | Slot | Job] = [obj]
    if not isinstance(obj, Slot):
        objects.append(slot("a"))
    if isinstance(obj, Node) or not any(isinstance(o, Job) for o in objects):
        objects.append(job("x", "a"))
    p = plan(desired(*objects), empty(), 0.0)
    assert [note] == notes_of(p, "not-enforced-yet")


def test_default_valued_fields_are_not_noted() -> None:
    """Fields written with their 'do the default' value (architecture auto) and unset fields give no note."""
    d = desired(node(architecture="auto", runtime="auto"), slot("a"), job("x", "a"))
    assert [] == notes_of(plan(d, empty(), 0.0), "not-enforced-yet")


# --- job phases -----------------------------------------------------------------------------


def start(attempt_no: int) -> StartJob:
    """The start-job action of job x in slot a."""
    return StartJob(
        "Job/x",
        "slot.a/job.x",
        job="x",
        slot="a",
        attempt=attempt_no,
        argv=("/bin/true",),
        working_dir="/var/lib/wnr/jobs/x/work",
    )


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
        [CreateCgroup("Job/x", "slot.a/job.x"), start(1)],
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


def test_starting_job_requeues_at_its_start_timeout() -> None:
    """A job starting within its timeout plans nothing and asks to be looked at when the timeout ends."""
    o = tree(
        {"a": {}},
        {"x": ("a", False)},
        records={"x": records(attempt(1, "starting", spawned_at=100.0))},
    )
    p = plan(desired(slot("a"), job("x", "a")), o, 110.0)
    assert () == p.actions
    assert 20.0 == p.requeue_after


def test_starting_job_past_its_timeout_but_populated_does_not_busy_loop() -> None:
    """A wrapper that sits in its cgroup past the start timeout makes the planner look again shortly, never at once."""
    o = tree(
        {"a": {}},
        {"x": ("a", True)},
        records={"x": records(attempt(1, "starting", spawned_at=100.0))},
    )
    p = plan(desired(slot("a"), job("x", "a")), o, 200.0)
    assert () == p.actions
    # Its `running` record wakes nothing (the state dir is not watched), so the planner
    # looks again in 0.5 s; a requeue of 0 s would run passes back to back.
    assert 0.5 == p.requeue_after


@pytest.mark.parametrize(
    ("attempts", "finished_at", "now", "expected", "requeue"),
    [
        (1, 100.5, 101.0, [], 0.5),
        (1, 100.5, 101.5, [start(2)], None),
        (1, None, 100.5, [], 0.5),
        (2, 100.0, 101.0, [], 1.0),
        (2, 100.0, 102.0, [start(3)], None),
    ],
)
def test_failed_start_is_retried_after_a_doubling_backoff(
    attempts: int,
    finished_at: float | None,
    now: float,
    expected: list[Action],
    requeue: float | None,
) -> None:
    """A failed start is retried 1 s after it ended, then 2 s, ...; before that the plan only asks for a requeue."""
    recs = records(
        *(
            attempt(n, "failed-start", spawned_at=100.0, finished_at=finished_at, message="no")
            for n in range(1, attempts + 1)
        )
    )
    o = tree({"a": {}}, {"x": ("a", False)}, records={"x": recs})
    p = plan(desired(slot("a"), job("x", "a", maxStartAttempts=5)), o, now)
    assert expected == list(p.actions)
    assert requeue == p.requeue_after


@pytest.mark.parametrize(
    ("job_max", "node_max", "failed", "expected"),
    [
        (1, None, 1, []),
        (5, None, 3, [CreateCgroup("Job/x", "slot.a/job.x"), start(4)]),
        (None, 5, 3, [CreateCgroup("Job/x", "slot.a/job.x"), start(4)]),
        (None, 2, 2, []),
        (2, 5, 2, []),
    ],
)
def test_max_start_attempts_comes_from_the_job_then_the_node(
    job_max: int | None, node_max: int | None, failed: int, expected: list[Action]
) -> None:
    """The job's maxStartAttempts overrides the node policy, which overrides the default of 3."""
    recs = records(*(attempt(n, "failed-start", message="no") for n in range(1, failed + 1)))
    spec = {} if job_max is None else {"maxStartAttempts": job_max}
    objects: list[Node | Slot | Job] = [slot("a"), job("x", "a", **spec)]
    if node_max is not None:
        objects.append(node(policies={"maxStartAttempts": node_max}))
    p = plan(desired(*objects), tree({"a": {}}, records={"x": recs}), 100.0)
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
    assert ["create-cgroup", "start-job"] == ops(p)


# --- admission -----------------------------------------------------------------------------


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
