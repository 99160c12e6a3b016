"""Plain-data builders for planner tests: specs validated from camelCase, observed trees, records.

Shared by the planner tables (tests/test_plan_*.py), the property tests
(tests/test_plan_properties.py) and the tests of the pieces the planner feeds (strays, the
pass guard, the fuzz).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model.accounts import Account
from reconciler.model.actions import Action, StartJob, WriteLimit
from reconciler.model.api import API_VERSION, Job, Node, Slot
from reconciler.model.desired import Desired, Source
from reconciler.model.limits import CONTROLLER_OF, KERNEL_DEFAULTS
from reconciler.model.observed import CgroupState, Observed, Placement
from reconciler.model.records import AttemptRecord, JobRecords, SlotRecord, StopRecord
from reconciler.plan import Note, Plan

ROOT_PATH = "/sys/fs/cgroup/wnr"
DEFAULT_CONTROLLERS = frozenset({"cpu", "memory", "pids", "io"})
ALL_CONTROLLERS = frozenset({"cpuset", "cpu", "memory", "pids", "io"})
DESTRUCTIVE = {"signal", "kill-cgroup", "remove-cgroup", "forget-job", "forget-slot"}
# The record of a slot with the default spec (drain 300 s, termination 30 s), as apply writes it.
DEFAULT_SLOT_RECORD = SlotRecord(300.0, 30.0)
# The user database of the planner's tests: nobody (a root wnr's default) and root.
NOBODY = Account("nobody", 65534, 65534, (65534,), "/nonexistent")
AS_NOBODY = {"HOME": NOBODY.home, "USER": NOBODY.name, "LOGNAME": NOBODY.name}
ACCOUNTS: Mapping[str, Account | str] = {
    "nobody": NOBODY,
    "root": Account("root", 0, 0, (0,), "/root"),
}


def slot(name: str, **spec: Any) -> Slot:
    """A Slot validated from the camelCase the admin writes."""
    return Slot.model_validate(
        {"apiVersion": API_VERSION, "kind": "Slot", "metadata": {"name": name}, "spec": spec}
    )


def job(name: str, slot_name: str, command: tuple[str, ...] = ("/bin/true",), **spec: Any) -> Job:
    """A Job validated from the camelCase the admin writes."""
    body = {"slot": slot_name, "command": list(command), **spec}
    return Job.model_validate(
        {"apiVersion": API_VERSION, "kind": "Job", "metadata": {"name": name}, "spec": body}
    )


def node(**spec: Any) -> Node:
    """A Node validated from the camelCase the admin writes."""
    return Node.model_validate(
        {"apiVersion": API_VERSION, "kind": "Node", "metadata": {"name": "wn"}, "spec": spec}
    )


def desired(
    *objects: Node | Slot | Job,
    complete: bool = True,
    sources: Mapping[tuple[str, str], Source] | None = None,
) -> Desired:
    """A Desired holding the objects in the order given (and where they were written, if given)."""
    nodes = [o for o in objects if isinstance(o, Node)]
    return Desired(
        nodes[0] if nodes else None,
        {o.metadata.name: o for o in objects if isinstance(o, Slot)},
        {o.metadata.name: o for o in objects if isinstance(o, Job)},
        sources or {},
        complete=complete,
    )


def cgroup(
    path: str,
    *,
    populated: bool = False,
    controllers: frozenset[str] = DEFAULT_CONTROLLERS,
    subtree: frozenset[str] = frozenset(),
    limits: Mapping[str, str] | None = None,
    children: tuple[str, ...] = (),
    with_limits: bool = True,
) -> CgroupState:
    """A cgroup as observe reads it: every limit file of its controllers, at the kernel default unless given."""
    values: dict[str, str] = {}
    if with_limits:
        values = {f: KERNEL_DEFAULTS[f] for f, c in CONTROLLER_OF.items() if c in controllers}
        values.update(limits or {})
    return CgroupState(
        path, populated, (), frozenset(controllers), frozenset(subtree), values, children
    )


def tree(
    slots: Mapping[str, Mapping[str, str]],
    jobs: Mapping[str, tuple[str, bool]] = {},
    *,
    job_limits: Mapping[str, Mapping[str, str]] = {},
    records: Mapping[str, JobRecords] = {},
    available: frozenset[str] = DEFAULT_CONTROLLERS,
    foreign: tuple[str, ...] = (),
    slot_extra_children: Mapping[str, tuple[str, ...]] = {},
    slot_records: Mapping[str, SlotRecord] | None = None,
    page_size: int = 4096,
) -> Observed:
    """An existing tree: root and slots with every available controller enabled, jobs in their slots.

    Each slot has the record of a default slot spec unless `slot_records` says otherwise.
    """
    slot_states = {}
    for name, limits in slots.items():
        mine = [j for j, (s, _) in jobs.items() if s == name]
        children = (*(f"job.{j}" for j in mine), *slot_extra_children.get(name, ()))
        slot_states[name] = cgroup(
            f"slot.{name}",
            populated=any(jobs[j][1] for j in mine),
            controllers=available,
            subtree=available,
            limits=limits,
            children=children,
        )
    # A job cgroup as wnr left it: no swap and oom.group on (Limits.of_job) unless told.
    made = {"memory.swap.max": "0", "memory.oom.group": "1"} if "memory" in available else {}
    job_states = {
        j: Placement(
            s,
            cgroup(
                f"slot.{s}/job.{j}",
                populated=populated,
                controllers=available,
                limits={**made, **job_limits.get(j, {})},
            ),
        )
        for j, (s, populated) in jobs.items()
    }
    root_children = (*(f"slot.{n}" for n in slots), *(f for f in foreign if "/" not in f))
    root = cgroup(
        "",
        populated=any(p for _, p in jobs.values()),
        controllers=available,
        subtree=available,
        children=root_children,
        with_limits=False,
    )
    return Observed(
        ROOT_PATH,
        root,
        available,
        slots=slot_states,
        jobs=job_states,
        records=records,
        slot_records=(
            dict.fromkeys(slots, DEFAULT_SLOT_RECORD) if slot_records is None else slot_records
        ),
        foreign=foreign,
        page_size=page_size,
        accounts=ACCOUNTS,
    )


def empty(available: frozenset[str] = DEFAULT_CONTROLLERS, page_size: int = 4096) -> Observed:
    """Nothing created yet: no root; its parent offers `available`."""
    return Observed(ROOT_PATH, None, available, page_size=page_size, accounts=ACCOUNTS)


def attempt(n: int, phase: str, **fields: Any) -> AttemptRecord:
    """One attempt record (spawned at 0 unless given)."""
    fields.setdefault("spawned_at", 0.0)
    return AttemptRecord(n, phase, **fields)


def records(*attempts: AttemptRecord, stop: StopRecord | None = None) -> JobRecords:
    """A job's records."""
    return JobRecords(tuple(attempts), stop)


RUNNING = records(attempt(1, "running", started_at=1.0))


def start(attempt_no: int) -> StartJob:
    """The start-job action of job x in slot a, run as nobody (a root wnr's default)."""
    return StartJob(
        "Job/x",
        "slot.a/job.x",
        job="x",
        slot="a",
        attempt=attempt_no,
        argv=("/bin/true",),
        env=AS_NOBODY,
        working_dir="/var/lib/wnr/jobs/x/work",
        credentials=NOBODY,
    )


# Slot a with four limits and job x with one, converged and running: the tree
# converged_desired() leads to is converged_tree().
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


def ops(p: Plan) -> list[str]:
    """The op names of a plan, in order."""
    return [a.op for a in p.actions]


def notes_of(p: Plan, kind: str) -> list[Note]:
    """The notes of one kind, in order."""
    return [n for n in p.notes if n.kind == kind]


def writes(p: Plan, path: str) -> list[Action]:
    """The write-limit actions on one cgroup path."""
    return [a for a in p.actions if isinstance(a, WriteLimit) and a.path == path]


def new_job_writes(name: str, slot_name: str = "a") -> list[WriteLimit]:
    """The limits every new job's cgroup gets without asking (Limits.of_job): no swap, and the
    OOM killer takes the whole job."""
    rel = f"slot.{slot_name}/job.{name}"
    return [
        WriteLimit(f"Job/{name}", rel, "memory.swap.max", None, "0"),
        WriteLimit(f"Job/{name}", rel, "memory.oom.group", None, "1"),
    ]
