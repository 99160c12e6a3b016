"""Planner properties (hypothesis): convergence, order independence, invalid input never deletes.

`simulate` below is a small pure model of what apply does to the kernel and the
state dir. It refuses what the kernel would refuse (writing a file the cgroup does
not have, a cpu.max quota below 1 ms, removing a populated cgroup or one with
children, enabling a controller the cgroup is not offered) and reads values back
the way the kernel does (memory in whole pages, CPU lists as ranges), so a plan
that the kernel would reject or that never settles fails the properties too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.host.statedir import AttemptRecord, JobRecords, SlotRecord, StopRecord
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
from reconciler.model.api import Job, Slot
from reconciler.model.desired import Desired, Source
from reconciler.model.limits import CONTROLLER_OF, KERNEL_DEFAULTS
from reconciler.model.observed import CgroupState, Observed, Placement, Stall, Usage
from reconciler.plan import Plan, plan
from reconciler.plan.memo import PlanMemo
from reconciler.status.jobs import JobStatusMemo, job_statuses
from reconciler.status.slots import SlotStatusMemo, slot_statuses
from tests.builders import DESTRUCTIVE, empty, job, node, slot

CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")
MAX_PASSES = 40

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the simulator --------------------------------------------------------------------------


@dataclass
class _Cgroup:
    subtree_control: set[str] = field(default_factory=set)
    limits: dict[str, str] = field(default_factory=dict)  # files written; the rest read default
    procs: bool = False  # processes directly in this cgroup


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _controllers(tree: Mapping[str, _Cgroup], path: str, parent_offers: frozenset[str]) -> set[str]:
    """A cgroup's cgroup.controllers: what its parent enabled in cgroup.subtree_control."""
    if path == "":
        return set(parent_offers)
    return set(tree[_parent(path)].subtree_control)


def _unpack(observed: Observed) -> dict[str, _Cgroup]:
    tree: dict[str, _Cgroup] = {}
    if observed.root is None:
        return tree
    tree[""] = _Cgroup(set(observed.root.subtree_control))
    for name, state in observed.slots.items():
        tree[f"slot.{name}"] = _Cgroup(set(state.subtree_control), dict(state.limits))
    for name, (slot_name, state) in observed.jobs.items():
        tree[f"slot.{slot_name}/job.{name}"] = _Cgroup(
            set(state.subtree_control), dict(state.limits), state.populated
        )
    return tree


def _pack(observed: Observed, sim: _Sim) -> Observed:
    tree = sim.tree

    def state(path: str, with_limits: bool = True) -> CgroupState:
        controllers = _controllers(tree, path, observed.parent_controllers)
        below = [p for p in tree if path in ("", p) or p.startswith(f"{path}/")]
        children = sorted(p.rpartition("/")[2] for p in tree if p and _parent(p) == path)
        limits = {}
        if with_limits:
            limits = {
                f: tree[path].limits.get(f, KERNEL_DEFAULTS[f])
                for f, c in CONTROLLER_OF.items()
                if c in controllers
            }
        return CgroupState(
            path,
            any(tree[p].procs for p in below),
            (),
            frozenset(controllers),
            frozenset(tree[path].subtree_control),
            limits,
            tuple(children),
        )

    records = {"records": dict(sim.records), "slot_records": dict(sim.slot_records)}
    if "" not in tree:
        return replace(observed, root=None, slots={}, jobs={}, **records)
    slots = {p.removeprefix("slot."): state(p) for p in tree if p and "/" not in p}
    jobs = {}
    for p in tree:
        if "/" in p:
            slot_dir, _, job_dir = p.partition("/")
            jobs[job_dir.removeprefix("job.")] = Placement(slot_dir.removeprefix("slot."), state(p))
    return replace(observed, root=state("", False), slots=slots, jobs=jobs, **records)


def _cpu_list(value: str) -> str:
    """A CPU list as the kernel reads it back: sorted, with ranges."""
    cpus = sorted(
        {
            cpu
            for part in value.split(",")
            for cpu in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)
        }
    )
    runs: list[list[int]] = []
    for cpu in cpus:
        if runs and runs[-1][-1] == cpu - 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _read_back(file: str, value: str, page_size: int) -> str:
    """What the kernel reads back after a write; it refuses what cgroup v2 refuses (EINVAL)."""
    if file.startswith("memory.") and file != "memory.oom.group" and value != "max":
        return str(int(value) // page_size * page_size)
    if file == "cpu.max":
        quota, period = value.split()
        assert quota == "max" or 1000 <= int(quota), f"cpu.max {value!r}: EINVAL"
        return f"{quota} {period}"
    if file == "cpuset.cpus" and value:
        return _cpu_list(value)
    if file == "io.weight":
        assert value.startswith("default "), f"io.weight {value!r}: EINVAL"
    return value


class _Sim:
    """The tree and the state dir while a plan is being applied."""

    def __init__(self, observed: Observed, now: float, sigterm_ends: bool) -> None:
        self.offers = observed.parent_controllers
        self.page_size = observed.page_size
        self.tree = _unpack(observed)
        self.records = dict(observed.records)
        self.slot_records = dict(observed.slot_records)
        self.now = now
        self.sigterm_ends = sigterm_ends

    def offered(self, path: str) -> set[str]:
        return _controllers(self.tree, path, self.offers)

    def existing(self, action: Action) -> _Cgroup:
        assert action.path in self.tree, f"{action}: no cgroup"
        return self.tree[action.path]

    def stop(self, job: str, grace: float, reason: str) -> JobRecords:
        """Record the start of a stop; the first one wins, like StateDir.record_stop."""
        recs = self.records.get(job, JobRecords())
        if recs.stop is None:
            recs = replace(recs, stop=StopRecord(self.now, grace, reason))
        self.records[job] = recs
        return recs

    def create(self, action: CreateCgroup) -> None:
        path = action.path
        assert path not in self.tree, f"{action}: exists"
        assert path == "" or _parent(path) in self.tree, f"{action}: no parent"
        self.tree[path] = _Cgroup()

    def enable(self, action: EnableControllers) -> None:
        cgroup = self.existing(action)
        offered = self.offered(action.path)
        assert set(action.controllers) <= offered, f"{action}: offered {offered}"
        assert action.path == "" or not cgroup.procs, f"{action}: has processes"
        cgroup.subtree_control |= set(action.controllers)

    def write(self, action: WriteLimit) -> None:
        cgroup = self.existing(action)
        assert CONTROLLER_OF[action.file] in self.offered(action.path), f"{action}: no file"
        current = cgroup.limits.get(action.file, KERNEL_DEFAULTS[action.file])
        assert action.old in (None, current), f"{action}: reads {current!r}"
        cgroup.limits[action.file] = _read_back(action.file, action.new, self.page_size)

    def start(self, action: StartJob) -> None:
        cgroup = self.existing(action)
        assert not cgroup.procs, f"{action}: cgroup already populated"
        previous = self.records.get(action.job, JobRecords())
        assert action.attempt == len(previous.attempts) + 1, f"{action}: {previous}"
        record = AttemptRecord(action.attempt, "running", self.now, started_at=self.now)
        self.records[action.job] = replace(previous, attempts=(*previous.attempts, record))
        cgroup.procs = True

    def signal(self, action: Signal) -> None:
        cgroup = self.existing(action)
        recs = self.stop(action.job, action.grace_seconds, action.reason)
        if self.sigterm_ends and cgroup.procs:
            cgroup.procs = False
            if recs.last is not None:
                ended = replace(recs.last, phase="exited", signal=15, finished_at=self.now)
                self.records[action.job] = replace(recs, attempts=(*recs.attempts[:-1], ended))

    def kill(self, action: KillCgroup) -> None:
        self.existing(action)
        for path, cgroup in self.tree.items():
            if path == action.path or path.startswith(f"{action.path}/"):
                cgroup.procs = False

    def remove(self, action: RemoveCgroup) -> None:
        cgroup = self.existing(action)
        children = [p for p in self.tree if p and _parent(p) == action.path]
        assert not children, f"{action}: has children {children}"
        assert not cgroup.procs, f"{action}: populated"
        del self.tree[action.path]

    def forget(self, action: ForgetJob) -> None:
        self.records.pop(action.job, None)

    def record_slot(self, action: RecordSlot) -> None:
        self.slot_records[action.slot] = SlotRecord(
            action.drain_grace_seconds, action.termination_grace_seconds, action.draining_since
        )

    def forget_slot(self, action: ForgetSlot) -> None:
        self.slot_records.pop(action.slot, None)


_APPLY: dict[type[Action], Callable[[_Sim, Any], None]] = {
    CreateCgroup: _Sim.create,
    EnableControllers: _Sim.enable,
    WriteLimit: _Sim.write,
    StartJob: _Sim.start,
    Signal: _Sim.signal,
    KillCgroup: _Sim.kill,
    RemoveCgroup: _Sim.remove,
    ForgetJob: _Sim.forget,
    RecordSlot: _Sim.record_slot,
    ForgetSlot: _Sim.forget_slot,
}


def simulate(
    observed: Observed, actions: Sequence[Action], now: float, *, sigterm_ends: bool = False
) -> Observed:
    """What the tree and the state dir look like after apply ran `actions` at `now`.

    start-job: a populated job cgroup and a "running" record; signal: a stop record
    (the payload exits on it only with `sigterm_ends`); kill-cgroup: the cgroup
    empties and the wrapper dies with it, leaving its attempt record as it was;
    remove-cgroup: rmdir; forget-job and forget-slot: the records go.
    """
    sim = _Sim(observed, now, sigterm_ends)
    for action in actions:
        _APPLY[type(action)](sim, action)
    return _pack(observed, sim)


@dataclass(frozen=True)
class Settled:
    """Where plan -> apply ended: the tree, the last (empty) plan, the time, the passes that acted."""

    observed: Observed
    plan: Plan
    now: float
    passes: int


def converge(desired: Desired, observed: Observed, now: float, **sim: Any) -> Settled:
    """Plan and apply until a plan has no action and no requeue, jumping to each requeue time."""
    passes = 0
    for _ in range(MAX_PASSES):
        p = plan(desired, observed, now)
        if p.actions:
            observed = simulate(observed, p.actions, now, **sim)
            passes += 1
            now += 1.0
            continue
        if p.requeue_after is None:
            return Settled(observed, p, now, passes)
        # Nothing to do yet: an immediate requeue of the same inputs would give the same
        # plan, so the daemon would spin.
        assert p.requeue_after > 0, f"busy requeue with no action at {now}"
        now += p.requeue_after + 0.5
    raise AssertionError(f"not settled in {MAX_PASSES} passes; last plan {p.actions}")


# --- strategies (built once: building them inside each draw costs more than the test) -------

SLOT_NAMES = ("a", "b", "c", "d")
JOB_NAMES = ("j0", "j1", "j2", "j3", "j4", "j5")

SLOT_RESOURCES = st.fixed_dictionaries(
    {},
    optional={
        "cpus": st.integers(1, 64_000).map(lambda m: f"{m}m"),
        "memory": st.integers(0, 2**40),
        "memoryHigh": st.integers(0, 2**40),
        "swap": st.integers(0, 2**36),
        "pids": st.integers(1, 100_000),
        "ioWeight": st.integers(1, 10_000),
    },
)
SLOT_EXTRAS = st.fixed_dictionaries(
    {
        "state": st.sampled_from(["Active", "Active", "Cordoned", "Draining"]),
        "terminationGracePeriodSeconds": st.integers(0, 120),
        "drainGracePeriodSeconds": st.integers(0, 600),
    },
    optional={"cpuset": st.sampled_from(["0", "0-3", "3,0,1,2", "1,3-5", "7,2"])},
)
JOB_RESOURCES = st.fixed_dictionaries(
    {},
    optional={
        "cpus": st.integers(1, 8_000).map(lambda m: f"{m}m"),
        "memory": st.integers(0, 2**36),
        "pids": st.integers(1, 1000),
    },
)
JOB_EXTRAS = st.fixed_dictionaries(
    {"env": st.dictionaries(st.sampled_from(["A", "B", "Z_1"]), st.text("xyz", max_size=3))},
    optional={"activeDeadlineSeconds": st.integers(1, 3600)},
)
SLOT_NAME_LISTS = st.lists(st.sampled_from(SLOT_NAMES), unique=True)
JOB_NAME_LISTS = st.lists(st.sampled_from(JOB_NAMES), unique=True)
NODE_CONTROLLERS = st.one_of(st.none(), st.lists(st.sampled_from(CONTROLLERS), unique=True))
SLOT_INDICES = {n: st.integers(0, n - 1) for n in range(1, len(SLOT_NAMES) + 1)}
# Where each job was written: a file and a document index, unique per job; or nowhere known.
SOURCE_PLANS = st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=6, max_size=6)


def _slot(draw: st.DrawFn, name: str) -> Slot:
    return slot(name, resources=draw(SLOT_RESOURCES), **draw(SLOT_EXTRAS))


def _job(draw: st.DrawFn, name: str, slot_name: str, timed: bool) -> Job:
    extras = draw(JOB_EXTRAS)
    if not timed:
        extras.pop("activeDeadlineSeconds", None)
    return job(name, slot_name, ("/bin/run", name), resources=draw(JOB_RESOURCES), **extras)


@st.composite
def desireds(draw: st.DrawFn, timed: bool = True) -> Desired:
    """A valid desired state: slots with random limits and states, jobs in them, maybe a Node.

    With `timed`, jobs may have an activeDeadlineSeconds, which stops them as time passes.
    """
    slot_names = draw(SLOT_NAME_LISTS)
    slots = {n: _slot(draw, n) for n in slot_names}
    jobs: dict[str, Job] = {}
    if slot_names:
        indices = SLOT_INDICES[len(slot_names)]
        for n in draw(JOB_NAME_LISTS):
            jobs[n] = _job(draw, n, slot_names[draw(indices)], timed)
    files = draw(SOURCE_PLANS)
    sources = {
        ("Job", n): Source(f"/specs/{files[i]}.yaml", i)
        for i, n in enumerate(jobs)
        if files[i] is not None
    }
    controllers = draw(NODE_CONTROLLERS)
    the_node = None if controllers is None else node(controllers=controllers)
    return Desired(the_node, slots, jobs, sources)


# No root yet; its parent offers a random set of controllers; a random page size.
EMPTY_TREES = st.builds(
    lambda offered, page: empty(frozenset(offered), page),
    st.sets(st.sampled_from(CONTROLLERS)),
    st.sampled_from([4096, 16384, 65536]),
)


def shuffled(desired: Desired, rng: random.Random) -> Desired:
    """The same desired state with its slots, jobs and sources inserted in another order."""
    parts = [list(desired.slots.items()), list(desired.jobs.items()), list(desired.sources.items())]
    for part in parts:
        rng.shuffle(part)
    slots, jobs, sources = (dict(part) for part in parts)
    return Desired(desired.node, slots, jobs, sources, complete=desired.complete)


def destructive(p: Plan) -> list[Action]:
    """The actions that stop or delete something."""
    return [a for a in p.actions if a.op in DESTRUCTIVE]


# --- properties -----------------------------------------------------------------------------


@SETTINGS
@given(desired=desireds(timed=False), observed=EMPTY_TREES)
def test_plans_converge_from_an_empty_tree(desired: Desired, observed: Observed) -> None:
    """From nothing, plan -> apply reaches an empty plan within three passes, and it stays empty."""
    end = converge(desired, observed, 1000.0)
    assert end.passes <= 3
    assert () == end.plan.actions
    assert () == plan(desired, end.observed, end.now + 1.0).actions
    assert set(desired.slots) == set(end.observed.slots)
    assert set(desired.slots) == set(end.observed.slot_records)


def samples(observed: Observed, now: float) -> dict[str, Usage]:
    """A fresh usage sample of each observed job taken at `now`, stalled a share that changes
    with every whole second."""
    share = (int(now) % 2) / 4
    return {name: Usage(now, stall=Stall(share, 0.0, 0.0)) for name in observed.jobs}


@SETTINGS
@given(
    before=desireds(),
    after=desireds(),
    observed=EMPTY_TREES,
    sigterm_ends=st.booleans(),
)
def test_plans_converge_after_the_specs_change(
    before: Desired, after: Desired, observed: Observed, sigterm_ends: bool
) -> None:
    """From the tree of one desired state, plan -> apply (time passing) settles on another, deletions included."""
    start = converge(before, observed, 1000.0)
    end = converge(after, start.observed, start.now + 1.0, sigterm_ends=sigterm_ends)
    final = end.observed
    assert () == plan(after, final, end.now + 1.0).actions
    assert set(after.slots) == set(final.slots)
    assert set(after.slots) == set(final.slot_records)
    assert set() == set(final.records) - set(after.jobs)
    for name, (slot_name, state) in final.jobs.items():
        assert name in after.jobs
        assert slot_name in after.slots
        assert state.populated


@SETTINGS
@given(
    before=desireds(),
    after=desireds(),
    observed=EMPTY_TREES,
    sigterm_ends=st.booleans(),
)
def test_a_memo_of_earlier_passes_never_changes_a_plan(
    before: Desired, after: Desired, observed: Observed, sigterm_ends: bool
) -> None:
    """Planning with the memo of earlier passes gives the very plan planning afresh gives, pass after pass, through a spec change and past every requeue time; so do the jobs' statuses with theirs."""
    memo, statuses, kept, now, recalled = PlanMemo(), JobStatusMemo(), SlotStatusMemo(), 1000.0, 0
    for desired in (before, after):
        for _ in range(MAX_PASSES):
            # Twice on the same tree: the second pass recalls what the first kept.
            for later in (0.0, 0.25):
                expected = plan(desired, observed, now + later)
                assert expected == plan(desired, observed, now + later, memo=memo)
                recalled += memo.hits
                # A new sample of every job each time; its stall figures move every other pass.
                sampled = replace(observed, usage=samples(observed, now + later))
                fresh = job_statuses(desired, sampled, expected, now + later)
                assert fresh == job_statuses(desired, sampled, expected, now + later, statuses)
                slots = slot_statuses(desired, sampled, expected, now + later)
                memo_slots = slot_statuses(desired, sampled, expected, now + later, memo=kept)
                assert slots == memo_slots
            if expected.actions:
                observed = simulate(observed, expected.actions, now, sigterm_ends=sigterm_ends)
                now += 1.0
            elif expected.requeue_after is None:
                break
            else:
                now += expected.requeue_after + 0.5
    running = [n for n, v in expected.jobs.items() if v.phase.value == "Running"]
    assert not running or recalled > 0


@SETTINGS
@given(desired=desireds(), observed=EMPTY_TREES, seed=st.integers(0, 2**32 - 1))
def test_plan_does_not_depend_on_insertion_order(
    desired: Desired, observed: Observed, seed: int
) -> None:
    """The same slots, jobs and sources inserted in another order give the identical action list, on every pass."""
    rng = random.Random(seed)
    for _ in range(3):
        p = plan(desired, observed, 1000.0)
        expected = [a.to_dict() for a in p.actions]
        actual = [a.to_dict() for a in plan(shuffled(desired, rng), observed, 1000.0).actions]
        assert expected == actual
        observed = simulate(observed, p.actions, 1000.0)


@SETTINGS
@given(
    before=desireds(),
    after=desireds(),
    observed=EMPTY_TREES,
    seed=st.integers(0, 2**32 - 1),
    later=st.floats(0, 10_000),
)
def test_removals_do_not_depend_on_insertion_order(
    before: Desired, after: Desired, observed: Observed, seed: int, later: float
) -> None:
    """Planning a changed desired state over an existing tree gives the same actions in any insertion order."""
    start = converge(before, observed, 1000.0)
    now = start.now + later
    expected = [a.to_dict() for a in plan(after, start.observed, now).actions]
    rng = random.Random(seed)
    actual = [a.to_dict() for a in plan(shuffled(after, rng), start.observed, now).actions]
    assert expected == actual


@SETTINGS
@given(
    desired=desireds(),
    observed=EMPTY_TREES,
    keep=st.lists(st.booleans(), min_size=11, max_size=11),
    later=st.floats(0, 10_000),
)
def test_incomplete_specs_never_delete(
    desired: Desired, observed: Observed, keep: list[bool], later: float
) -> None:
    """Over a converged tree, an incomplete desired state holding any subset of the objects stops and removes nothing."""
    end = converge(desired, observed, 1000.0)
    flags = iter(keep)
    subset = Desired(
        desired.node if next(flags) else None,
        {n: s for n, s in desired.slots.items() if next(flags)},
        {n: j for n, j in desired.jobs.items() if next(flags)},
        desired.sources,
        complete=False,
    )
    assert [] == destructive(plan(subset, end.observed, end.now + later))


@SETTINGS
@given(
    before=desireds(),
    after=desireds(),
    observed=EMPTY_TREES,
    steps=st.integers(0, 4),
    later=st.floats(0, 10_000),
)
def test_missing_spec_directory_never_removes(
    before: Desired, after: Desired, observed: Observed, steps: int, later: float
) -> None:
    """With no readable spec directory (empty, incomplete desired), no tree, mid-change or not, is stopped or removed."""
    start = converge(before, observed, 1000.0)
    tree, now = start.observed, start.now
    for _ in range(steps):  # part of the way towards `after`: stops and removals in flight
        p = plan(after, tree, now)
        if p.actions:
            tree = simulate(tree, p.actions, now)
        now += 1.0 if p.actions else (p.requeue_after or 0.0)
    assert [] == destructive(plan(Desired(complete=False), tree, now + later))
