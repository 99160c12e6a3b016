"""The per-object lookups made once per desired state, plan or observation (a spec's errors,
a job's limits, a plan's notes, the slots that run something), plain data: pure code."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.desired import Source, SpecError
from reconciler.model.limits import Limits
from reconciler.plan import Note, plan
from reconciler.status.conditions import spec_conditions
from reconciler.status.jobs import JobStatusMemo, job_statuses
from reconciler.status.slots import SlotStatusMemo, slot_statuses
from tests.builders import RUNNING, attempt, cgroup, desired, empty, job, records, slot, tree

A_FILE, B_FILE = "/specs/job-a.yaml", "/specs/job-b.yaml"
SOURCES = {("Job", "a"): Source(A_FILE, 0), ("Job", "b"): Source(B_FILE, 0)}
OF_A = SpecError(A_FILE, 5, 9, "Slot 'gone' does not exist", "Job", "a", "spec.slot")
# A file that no longer parses names no object: it concerns what was last loaded from it.
OF_B_FILE = SpecError(B_FILE, 2, 1, "mapping values are not allowed here")


def test_errors_of_an_object_are_its_own_and_those_of_its_file() -> None:
    """An object's errors are those naming it and those of the file its last good spec came from, in the loader's order."""
    specs = desired(slot("s"), job("a", "s"), job("b", "s"), sources=SOURCES)
    specs = replace(specs, errors=(OF_B_FILE, OF_A))

    assert ((OF_A,), (OF_B_FILE,), ()) == (
        specs.errors_of("Job", "a"),
        specs.errors_of("Job", "b"),
        specs.errors_of("Slot", "s"),
    )


def test_errors_of_keep_the_loader_order_and_leave_out_other_files() -> None:
    """An object's errors interleaved with others' come in the loader's order; an error naming another object in another file is not its own."""
    of_a_file = SpecError(A_FILE, 9, 1, "duplicate key")
    of_b = SpecError(B_FILE, 3, 1, "bad field", "Job", "b", "spec.command")
    specs = desired(slot("s"), job("a", "s"), job("b", "s"), sources=SOURCES)
    specs = replace(specs, errors=(of_a_file, of_b, OF_A, OF_B_FILE))

    assert (of_a_file, OF_A) == specs.errors_of("Job", "a")
    assert (of_b, OF_B_FILE) == specs.errors_of("Job", "b")
    assert () == replace(specs, errors=(of_b,)).errors_of("Job", "a")


def test_spec_condition_names_the_errors_and_the_spec_kept() -> None:
    """SpecValid is False with every error of the object, saying its last good spec stays in force."""
    specs = replace(desired(slot("s"), job("a", "s"), sources=SOURCES), errors=(OF_A,))

    (condition,) = spec_conditions(specs, "Job", "a")

    expected = f"{OF_A} (the last good spec stays in force)"
    assert ("SpecValid", "False", expected) == (condition.type, condition.status, condition.message)


def test_an_error_of_one_job_leaves_the_others_status_as_kept() -> None:
    """A new spec error of one job makes only that job's status new; every other job keeps the very status the memo holds."""
    clean = desired(slot("s"), job("a", "s"), job("b", "s"), sources=SOURCES)
    broken = replace(clean, errors=(OF_A,))
    memo = JobStatusMemo()
    before = job_statuses(clean, empty(), plan(clean, empty(), 1000.0), 1000.0, memo)

    after = job_statuses(broken, empty(), plan(broken, empty(), 1000.0), 1000.0, memo)

    assert before["b"] is after["b"]
    assert before["a"] is not after["a"]
    assert ["SpecValid"] == [c.type for c in after["a"].conditions if c.status == "False"]


def test_slot_notes_are_those_made_while_the_slot_was_planned() -> None:
    """Each slot's notes are its own and its jobs', in plan order, and none of another slot's jobs."""
    limited = {"memory": "1Gi"}
    specs = desired(
        slot("s", resources=limited),
        slot("t"),
        *(
            job(name, where, resources=limited)
            for name, where in (("a", "s"), ("b", "t"), ("c", "s"))
        ),
    )
    placed = {"a": ("s", True), "b": ("t", True), "c": ("s", True)}
    running = {n: records(attempt(1, "running")) for n in placed}
    # A hybrid host's tree: no controller, so every memory limit is noted, not written.
    observed = tree({"s": {}, "t": {}}, placed, records=running, available=frozenset())

    planned = plan(specs, observed, 1000.0)

    about = {name: sorted({n.obj for n in notes}) for name, notes in planned.slot_notes.items()}
    assert {"s": ["Job/a", "Job/c", "Slot/s"], "t": ["Job/b"]} == about
    for notes in planned.slot_notes.values():
        assert [n for n in planned.notes if n in notes] == list(notes)


def test_running_slots_are_those_with_a_populated_job_or_agent() -> None:
    """A slot runs something when one of its jobs' or agents' cgroups holds processes; an empty job cgroup does not count."""
    observed = tree({"a": {}, "b": {}, "c": {}}, {"in-a": ("a", True), "in-c": ("c", False)})
    agent = cgroup("slot.b/agent.0", populated=True)

    assert frozenset({"a", "b"}) == replace(observed, agents={("b", 0): agent}).running_slots


def test_job_limits_are_made_once_per_desired_state() -> None:
    """A job's limits are those of its spec in its slot, the same object each time asked; a job whose slot has no spec has none."""
    specs = desired(
        slot("s", resources={"swap": "1Gi"}), job("a", "s", resources={"memory": "1Gi"})
    )
    orphan = desired(job("a", "gone"))

    limits = specs.job_limits("a")

    assert Limits.of_job(specs.jobs["a"], specs.slots["s"]) == limits
    assert limits is specs.job_limits("a")
    assert (None, None) == (orphan.job_limits("a"), specs.job_limits("b"))


def test_a_slot_keeps_its_status_while_nothing_it_reads_changes() -> None:
    """A slot's status is the very one of the last pass while what it reads stays; its job's records alone changing (an OOM kill at the slot's limit) make only that slot's status new."""
    specs = desired(slot("s"), slot("t"), job("a", "s"), job("b", "t"))
    placed = {"a": ("s", True), "b": ("t", True)}
    running = tree({"s": {}, "t": {}}, placed, records=dict.fromkeys(placed, RUNNING))
    planned = plan(specs, running, 1000.0)
    memo = SlotStatusMemo()
    before = slot_statuses(specs, running, planned, 1000.0, memo=memo)
    again = slot_statuses(specs, running, planned, 1001.0, memo=memo)
    killed = records(attempt(1, "exited", signal=9, oom_kills=1, oom_level="slot"))
    oom = replace(running, records={**running.records, "a": killed})

    after = slot_statuses(specs, oom, planned, 1002.0, memo=memo)

    assert (before["s"], before["t"]) == (again["s"], again["t"])
    assert before["s"] is again["s"]
    assert before["t"] is after["t"]
    assert slot_statuses(specs, oom, planned, 1002.0)["s"] == after["s"]
    assert after["s"].condition("MemoryLimitReached") is not None


def test_a_kept_job_status_follows_a_new_waiting_note() -> None:
    """A pending job whose placement, records and view are unchanged still takes the message of a new waiting note: the memo compares what every job reads alike."""
    specs = desired(slot("s"), job("a", "s"))
    planned = plan(specs, empty(), 1000.0)
    memo = JobStatusMemo()
    waiting = replace(planned, notes=(Note("Job/a", "waiting", "Unschedulable: no room"),))
    other = replace(planned, notes=(Note("Job/a", "waiting", "Unschedulable: no GPU"),))

    before = job_statuses(specs, empty(), waiting, 1000.0, memo)
    after = job_statuses(specs, empty(), other, 1001.0, memo)

    assert ("Unschedulable: no room", "Unschedulable: no GPU") == (
        before["a"].message,
        after["a"].message,
    )
