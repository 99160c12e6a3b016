"""Planner tables for limits: values written as the kernel reads them back, changes and resets
on a converged tree, and the notes for what the kernel or wnr does not enforce.

plan(desired, observed, now) on hand-built data from tests/builders.py, no I/O (DESIGN §2-§5).
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.model.actions import WriteLimit
from reconciler.model.api import Job, Node, Slot
from reconciler.plan import Note, plan
from reconciler.plan.jobphase import JobView, Phase
from tests.builders import (
    ALL_CONTROLLERS,
    converged_desired,
    converged_tree,
    desired,
    empty,
    job,
    node,
    notes_of,
    ops,
    slot,
    tree,
    writes,
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
    assert ["create-cgroup", *["write-limit"] * 3, "start-job"] == ops(p)
    expected = {WriteLimit("Job/x", "slot.a/job.x", file, None, value), *job_defaults("x")}
    assert expected == set(writes(p, "slot.a/job.x"))


def job_defaults(name: str) -> list[WriteLimit]:
    """What every new job's cgroup gets without asking: no swap, and OOM kills it whole."""
    rel = f"slot.a/job.{name}"
    return [
        WriteLimit(f"Job/{name}", rel, "memory.swap.max", None, "0"),
        WriteLimit(f"Job/{name}", rel, "memory.oom.group", None, "1"),
    ]


def test_a_job_gets_no_swap_and_dies_whole_and_its_slot_neither() -> None:
    """Jobs get memory.swap.max=0 and memory.oom.group=1; the slot gets neither written."""
    p = plan(desired(slot("a"), job("x", "a")), empty(ALL_CONTROLLERS, 4096), 0.0)
    assert job_defaults("x") == writes(p, "slot.a/job.x")
    assert [] == [w for w in writes(p, "slot.a") if w.file.startswith("memory.")]


@pytest.mark.parametrize(
    ("job_swap", "slot_swap", "expected"),
    [("1Gi", None, str(2**30)), (None, "2Gi", None), ("64Mi", "2Gi", str(64 * 2**20))],
)
def test_swap_is_the_jobs_own_else_its_slots_bound(
    job_swap: str | None, slot_swap: str | None, expected: str | None
) -> None:
    """A job asking for swap gets it; one in a slot that allows swap is bounded by the slot only."""
    job_resources = {"swap": job_swap} if job_swap else {}
    slot_resources = {"swap": slot_swap} if slot_swap else {}
    d = desired(slot("a", resources=slot_resources), job("x", "a", resources=job_resources))
    p = plan(d, empty(ALL_CONTROLLERS, 4096), 0.0)
    swaps = [w.new for w in writes(p, "slot.a/job.x") if w.file == "memory.swap.max"]
    assert ([expected] if expected else []) == swaps


def test_wnrs_own_job_defaults_are_not_reported_unenforced_without_the_memory_controller() -> None:
    """On a host with no memory controller, no swap and oom.group are not notes; an asked-for swap is."""
    quiet = plan(desired(slot("a"), job("x", "a")), tree({"a": {}}, available=frozenset()), 0.0)
    assert [] == [n for n in quiet.notes if n.obj == "Job/x"]
    d = desired(slot("a"), job("x", "a", resources={"swap": "1Gi"}))
    asked = plan(d, tree({"a": {}}, available=frozenset()), 0.0)
    assert ["memory.swap.max"] == [n.file for n in asked.notes if n.obj == "Job/x"]


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


# --- what is not enforced -------------------------------------------------------------------


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
