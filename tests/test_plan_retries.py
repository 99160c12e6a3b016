"""Planner tables for starting a job again: the start timeout and its requeues, the doubling
backoff after a failed start, and where maxStartAttempts comes from.

plan(desired, observed, now) on hand-built data from tests/builders.py, no I/O (DESIGN §2-§5).
"""

from __future__ import annotations

import pytest

from reconciler.model.actions import Action, CreateCgroup
from reconciler.model.api import Job, Node, Slot
from reconciler.plan import plan
from tests.builders import attempt, desired, job, new_job_writes, node, records, slot, start, tree

# --- start timeouts and retries -------------------------------------------------------------


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
        (5, None, 3, [CreateCgroup("Job/x", "slot.a/job.x"), *new_job_writes("x"), start(4)]),
        (None, 5, 3, [CreateCgroup("Job/x", "slot.a/job.x"), *new_job_writes("x"), start(4)]),
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
