"""How apply classifies a failed action (transient, terminal, skipped) and keys it by its place in the plan."""

from __future__ import annotations

import time
from pathlib import Path

from reconciler.apply.applier import Applier
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.statedir import StateDir
from reconciler.model.actions import CreateCgroup, FailureKind, WriteLimit


def test_a_failed_action_is_terminal_and_what_depends_on_it_is_skipped(
    cgroup_root: Path, state_dir: Path
) -> None:
    """On the real cgroup2 mount: mkdir below a missing parent is terminal (ENOENT), the limit below it is skipped, a sibling still runs."""
    cgroup_root.mkdir()
    applier = Applier(CgroupFS(cgroup_root), StateDir(state_dir), time.time)
    actions = [
        CreateCgroup("Job/j", "slot.missing/job.j"),
        WriteLimit("Job/j", "slot.missing/job.j", "pids.max", None, "10"),
        CreateCgroup("Slot/ok", "slot.ok"),
    ]
    failures = applier.apply(actions)
    assert [(0, FailureKind.TERMINAL), (1, FailureKind.SKIPPED)] == [
        (f.index, f.kind) for f in failures
    ]
    assert "ENOENT" in failures[0].error
    assert (cgroup_root / "slot.ok").is_dir()


def test_a_bug_in_one_action_is_that_actions_terminal_failure(
    cgroup_root: Path, state_dir: Path
) -> None:
    """An action apply does not expect to raise (a bug) fails alone, named by its exception, and the next action runs."""
    cgroup_root.mkdir()
    applier = Applier(CgroupFS(cgroup_root), StateDir(state_dir), time.time)
    bad = WriteLimit("Slot/a", "slot.a", "cgroup.freeze", None, None)  # type: ignore[arg-type]
    failures = applier.apply(
        [CreateCgroup("Slot/a", "slot.a"), bad, CreateCgroup("Slot/b", "slot.b")]
    )
    assert [(1, FailureKind.TERMINAL)] == [(f.index, f.kind) for f in failures]
    assert failures[0].error.startswith(("TypeError", "AttributeError"))
    assert (cgroup_root / "slot.b").is_dir()
