"""`wnr doctor`'s cgroup checks on this machine's cgroup2 mount: the stop mechanism and a slot's delegation."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.doctor import Verdict, check_delegation, check_kill
from reconciler.observe.mounts import unified_problem


def test_kill_check_finds_cgroup_kill_in_a_real_cgroup(cgroup_root: Path) -> None:
    """In a cgroup of this kernel (5.14+), doctor names cgroup.kill as the stop mechanism and where it saw it."""
    cgroup_root.mkdir()
    check = check_kill("6.1.0-57-amd64", cgroup_root)
    assert Verdict.ok == check.verdict
    assert f"mechanism cgroup.kill: kernel 6.1.0-57-amd64 has it (found in {cgroup_root})" == (
        check.detail
    )


def test_kill_check_without_the_file_names_freeze_and_kill(tmp_path: Path) -> None:
    """Where a cgroup has no cgroup.kill (a 5.10 kernel), doctor warns and names freeze+kill, whatever the release says."""
    check = check_kill("6.1.0-57-amd64", tmp_path)
    assert Verdict.warn == check.verdict
    assert check.detail.startswith("mechanism freeze+kill: ")
    assert f"none in {tmp_path}" in check.detail
    assert "SIGKILLing each process" in check.hint


def test_kill_check_without_a_cgroup_judges_by_the_release() -> None:
    """With no cgroup to look in (the root not created yet), the kernel release decides."""
    assert "mechanism freeze+kill" in check_kill("5.10.0-32-amd64").detail
    assert "mechanism cgroup.kill" in check_kill("6.1.0-57-amd64").detail


def test_delegation_without_cgroup_threads_passes_as_htcondor_leaves_it(cgroup_root: Path) -> None:
    """HTCondor chowns the slot, cgroup.procs and cgroup.subtree_control but not cgroup.threads: the check passes and says so."""
    cgroup_root.mkdir()
    for path in (cgroup_root, cgroup_root / "cgroup.procs", cgroup_root / "cgroup.subtree_control"):
        os.chown(path, 4242, 4242)
    [check] = check_delegation(cgroup_root, 4242)
    assert Verdict.ok == check.verdict
    assert f"not {cgroup_root}/cgroup.threads (owned by uid 0)" in check.detail
    assert "only threaded cgroups need" in check.detail


def test_this_hybrid_host_is_not_pure_cgroup_v2() -> None:
    """The VM tier's guard refuses this hybrid host: /sys/fs/cgroup is not the cgroup2 mount, and beside the unified one v1 hierarchies are mounted."""
    assert (unified_problem(Path("/sys/fs/cgroup"), ()) or "").endswith(", not cgroup2")
    beside = unified_problem(Path("/sys/fs/cgroup/unified"), ("memory", "pids")) or ""
    assert beside.startswith("cgroup v1 hierarchies are mounted (/sys/fs/cgroup/")
