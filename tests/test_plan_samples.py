"""What a plan reads of a usage sample (reconciler.plan.samples), on plain data: figures under a limit or within a percent read alike, a limit passed or a threshold crossed does not."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.observed import Stall, Usage
from reconciler.plan.samples import over_limits, samples_hold, usage_read
from tests.builders import desired, job, slot

MIB = 2**20
D = desired(
    slot("a"),
    job("x", "a", resources={"memory": "64Mi", "pids": 20}, idle={"minStallFraction": 0.1}),
)
X = D.jobs["x"]
BASE = Usage(sampled_at=10.0, memory_bytes=5 * MIB, tasks=3, busy_at=1.0, stall=Stall(0.01, 0, 0))


def read(usage: Usage) -> tuple[object, ...] | None:
    """usage_read of job x on the node of D."""
    return usage_read(usage, X, D.node_spec)


def test_figures_under_their_limits_read_alike_and_past_them_do_not() -> None:
    """A working set or task count that moved under its limit reads as before; one past it reads with its figure."""
    assert read(BASE) == read(replace(BASE, memory_bytes=40 * MIB, tasks=19))
    assert (65 * MIB, None, None) == over_limits(
        replace(BASE, memory_bytes=65 * MIB), X.spec.resources, 1.0
    )
    assert read(BASE) != read(replace(BASE, memory_bytes=65 * MIB))
    assert read(BASE) != read(replace(BASE, tasks=21))


def test_stall_figures_read_to_the_percent_and_by_the_threshold() -> None:
    """Stall shares within the same percent read alike; another percent, or crossing minStallFraction, reads otherwise."""
    assert read(BASE) == read(replace(BASE, stall=Stall(0.0104, 0, 0)))
    assert read(BASE) != read(replace(BASE, stall=Stall(0.02, 0, 0)))
    below, at = Stall(0.0999, 0, 0), Stall(0.1, 0, 0)
    assert str(below) == str(at)  # both print as 10 %
    assert read(replace(BASE, stall=below)) != read(replace(BASE, stall=at))


def test_samples_hold_looks_only_at_those_taken_now() -> None:
    """A fresh sample that reads as the last holds, an older one is not looked at, a new busy time or a job without a last sample does not hold."""
    last = {"x": BASE}
    now = 15.0
    assert samples_hold(D, last, {"x": replace(BASE, sampled_at=now, memory_bytes=6 * MIB)}, now)
    assert samples_hold(D, last, {"x": replace(BASE, busy_at=9.0)}, now)  # taken before `now`
    assert not samples_hold(D, last, {"x": replace(BASE, sampled_at=now, busy_at=15.0)}, now)
    assert not samples_hold(D, {}, {"x": replace(BASE, sampled_at=now)}, now)
