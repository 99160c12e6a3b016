"""What each running job's usage sample reads (reconciler.observe.usage.Needs), pass after
pass, plain data: pure code but for the state dir's path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.host.statedir import StateDir
from reconciler.model.observed import Observed, Placement
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
