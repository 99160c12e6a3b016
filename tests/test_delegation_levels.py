"""`--root auto` for an unprivileged wnr: which level of HTCondor's, systemd's and Slurm's layouts it takes.

The choice (reconciler.observe.delegation.choose_level) is pure, so each layout
is written here as the levels a pilot would survey; tests/vm/guest/test_htcondor.py
builds the same layouts on a real kernel and runs wnr in them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.observe.delegation import (
    REQUIRED,
    Level,
    choose_level,
    describe,
    leaves_for_daemon,
)

ALL = frozenset(REQUIRED)
PID = 4242
HTCONDOR = Path("/sys/fs/cgroup/system.slice/condor.service/htcondor")
SLOT = "condor_var_lib_condor_execute_slot1_1@wn01"


def level(path: Path, writable: frozenset[str] = frozenset(), *pids: int) -> Level:
    """One surveyed level: owned by the pilot when writable, else by root."""
    owner = 1000 if writable else 0
    return Level(path, owner, writable, pids, frozenset({"cpu", "memory", "pids"}), frozenset())


def test_condor_24_takes_the_slice_above_the_root_owned_scope() -> None:
    """HTCondor >= 24.8: the scope is root's, the slice delegated: the slice is the root."""
    slice_ = HTCONDOR / f"{SLOT}.slice"
    levels = [
        level(slice_ / f"{SLOT}.scope", frozenset(), PID),
        level(slice_, ALL),
        level(HTCONDOR),
    ]
    chosen = choose_level(levels)
    assert chosen is not None
    assert slice_ == chosen.level.path
    assert "not usable: dir, cgroup.procs, cgroup.subtree_control not writable" in describe(
        levels[0], PID, chosen
    )


def test_condor_23_takes_the_slot_it_runs_in() -> None:
    """HTCondor 23.x: the delegated slot cgroup the pilot runs in is the root."""
    slot = HTCONDOR / SLOT
    chosen = choose_level([level(slot, ALL, PID), level(HTCONDOR)])
    assert chosen is not None
    assert slot == chosen.level.path


def test_systemd_delegate_subgroup_takes_the_unit_above_its_subgroup() -> None:
    """Delegate=yes with DelegateSubgroup=: both are the user's, and the empty unit cgroup is the root."""
    unit = Path("/sys/fs/cgroup/system.slice/pilot.service")
    levels = [level(unit / "supervisor", ALL, PID), level(unit, ALL), level(unit.parent)]
    chosen = choose_level(levels)
    assert chosen is not None
    assert unit == chosen.level.path
    assert "the leaf wnr was started in" in describe(levels[0], PID, chosen)


def test_slurm_takes_the_delegated_user_cgroup_above_task_0() -> None:
    """Slurm with the prolog: task_0 is root's, step_0/user delegated: user is the root."""
    user = Path("/sys/fs/cgroup/system.slice/slurmstepd.scope/job_1/step_0/user")
    chosen = choose_level([level(user / "task_0", frozenset({"dir"}), PID), level(user, ALL)])
    assert chosen is not None
    assert user == chosen.level.path


def test_a_delegated_parent_with_processes_of_its_own_is_not_climbed_to() -> None:
    """A delegated parent holding processes cannot enable controllers: wnr keeps its own cgroup."""
    own = Path("/sys/fs/cgroup/a/b")
    chosen = choose_level([level(own, ALL, PID), level(own.parent, ALL, 7)])
    assert chosen is not None
    assert own == chosen.level.path


def test_a_job_of_another_wnr_is_its_own_root() -> None:
    """wnr inside another wnr's job cgroup takes that job cgroup, never the other wnr's slot."""
    job = Path("/sys/fs/cgroup/wnr/slot.a/job.b")
    chosen = choose_level([level(job, ALL, PID), level(job.parent, ALL)])
    assert chosen is not None
    assert job == chosen.level.path


def test_nothing_delegated_is_no_choice() -> None:
    """No level the user may manage: no root (wnr then fails naming `wnr doctor`)."""
    assert choose_level([level(HTCONDOR / SLOT, frozenset(), PID), level(HTCONDOR)]) is None


@pytest.mark.parametrize(
    ("own", "root", "leaves"),
    [
        (HTCONDOR / SLOT, HTCONDOR / SLOT, True),
        (HTCONDOR / "x.slice" / "x.scope", HTCONDOR / "x.slice", True),
        (HTCONDOR / "x.slice" / "wnr.daemon", HTCONDOR / "x.slice", False),
        (HTCONDOR / "x.slice" / "a" / "b.scope", HTCONDOR / "x.slice", False),
    ],
)
def test_wnr_leaves_its_root_or_a_scope_below_it_for_wnr_daemon(
    own: Path, root: Path, leaves: bool
) -> None:
    """wnr moves into wnr.daemon from its root or a `.scope` just below it, not from wnr.daemon or deeper."""
    assert leaves == leaves_for_daemon(own, root)


def test_wnr_stays_in_a_task_cgroup_slurm_tracks(tmp_path: Path) -> None:
    """A leaf below the root that is neither a scope nor delegated (Slurm's task_0) is left as it is."""
    task = tmp_path / "task_0"
    task.mkdir()
    assert not leaves_for_daemon(task, tmp_path)
