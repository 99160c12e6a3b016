"""What passes among quiet jobs reuse (reconciler.observe.usage.Needs, the reread of ended
jobs in reconciler.observe.snapshot), pass after pass, plain data: pure code but for the
state dir."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from reconciler.host.statedir import StateDir
from reconciler.model.observed import Observed, Placement
from reconciler.observe.quiet import QuietJob, QuietJobs
from reconciler.observe.snapshot import reread_ended
from reconciler.observe.usage import Needs
from tests.builders import attempt, desired, job, records, slot, tree

LIMITED = {"memory": "64Mi", "pids": "16"}


def test_kept_needs_are_those_made_afresh_pass_after_pass(tmp_path: Path) -> None:
    """Needs kept between passes equal fresh ones whatever changed in between (a job emptied, a job's first attempt, a job back), and a job whose placement and records stayed keeps its very Need."""
    specs = desired(slot("s"), job("a", "s", resources=LIMITED), job("b", "s"))
    placed = {"a": ("s", True), "b": ("s", True)}
    first = {n: records(attempt(1, "running", spawned_at=5.0)) for n in placed}
    running = tree({"s": {}}, placed, records=first, available=frozenset())
    emptied = Placement("s", replace(running.jobs["a"].cgroup, populated=False))
    later = records(attempt(1, "running", spawned_at=9.0))
    passes: list[Observed] = [
        running,
        replace(running, jobs={**running.jobs, "a": emptied}),
        replace(running, records={**running.records, "b": later}),
        running,
        running,
    ]
    state, kept = StateDir(tmp_path), Needs()
    before = kept.of(specs, running, state)
    for observed in passes:
        assert Needs().of(specs, observed, state) == kept.of(specs, observed, state)
    again = kept.of(specs, running, state)
    assert ["a", "b"] == sorted(again)
    assert before["b"] is not again["b"]  # remade when its records changed, then kept
    assert again["b"] is kept.of(specs, running, state)["b"]
    assert 9.0 == kept.of(specs, passes[2], state)["b"].since


def test_a_quiet_job_read_again_empty_gets_its_records_read_again(tmp_path: Path) -> None:
    """A quiet job whose cgroup was read again (not its kept reading) and found empty has its records read again, so its recorded end is seen; one whose kept reading was reused is left as it was."""
    state = StateDir(tmp_path)
    for name in ("a", "b"):
        directory = tmp_path / "jobs" / name
        directory.mkdir(parents=True)
        ended = {"phase": "exited", "spawnedAt": 1.0, "exitCode": 0, "finishedAt": 2.0}
        (directory / "attempt-1.json").write_text(json.dumps(ended))
    running = records(attempt(1, "running", spawned_at=1.0))
    observed = tree({"s": {}}, {"a": ("s", True), "b": ("s", True)}, available=frozenset())
    quiet = {n: QuietJob(observed.jobs[n], running, 4242) for n in ("a", "b")}
    empty = Placement("s", replace(observed.jobs["a"].cgroup, populated=False))
    jobs = {"a": empty, "b": observed.jobs["b"]}

    found = reread_ended(state, {"a": running, "b": running}, jobs, quiet)

    assert found["a"].last is not None
    assert "exited" == found["a"].last.phase
    assert found["b"] is running


def test_a_kept_quiet_job_whose_wrapper_is_no_longer_watched_is_not_kept() -> None:
    """A quiet job read as it was kept stays quiet only while its wrapper is watched: a watch lost (an exit a raising pass took) makes the next pass read it."""
    running = records(attempt(1, "running", spawned_at=1.0, wrapper_pid=4242))
    read = tree({"s": {}}, {"a": ("s", True)}, records={"a": running}, available=frozenset())
    quiet = QuietJobs()
    quiet.keep(read, read, (), lambda pid: True)
    assert 1 == len(quiet)
    quiet.keep(read, read, (), lambda pid: True)
    assert 1 == len(quiet)

    quiet.keep(read, read, (), lambda pid: False)

    assert 0 == len(quiet)
