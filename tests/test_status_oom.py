"""Whose memory limit an OOM kill came from, told apart in status (issue 14): pure."""

from __future__ import annotations

from reconciler.plan import plan
from reconciler.status import slot_statuses
from tests.builders import attempt, desired, job, records, slot, tree


def test_a_slot_level_oom_is_reported_on_the_slot_with_the_jobs_it_killed() -> None:
    """Job x died of its slot's limit, y of its own: the slot's MemoryLimitReached names x alone."""
    d = desired(slot("a", resources={"memory": "1Gi"}), job("x", "a"), job("y", "a"))
    killed = {
        "x": records(attempt(1, "exited", signal=9, oom_kills=2, oom_level="slot")),
        "y": records(attempt(1, "exited", signal=9, oom_kills=1, oom_level="job")),
    }
    o = tree({"a": {}}, {}, records=killed)
    status = slot_statuses(d, o, plan(d, o, 10.0), 10.0)["a"]
    reached = status.condition("MemoryLimitReached")
    assert reached is not None
    expected = (
        "True",
        "SlotOOM",
        "the slot reached its memory limit (1Gi): the kernel OOM-killed job(s) x",
    )
    assert expected == (reached.status, reached.reason, reached.message)


def test_a_slot_whose_jobs_hit_only_their_own_limits_has_no_such_condition() -> None:
    """A job-level OOM is the job's affair: its slot says nothing of it."""
    d = desired(slot("a"), job("y", "a"))
    o = tree(
        {"a": {}},
        {},
        records={"y": records(attempt(1, "exited", signal=9, oom_kills=1, oom_level="job"))},
    )
    assert slot_statuses(d, o, plan(d, o, 10.0), 10.0)["a"].condition("MemoryLimitReached") is None
