"""Delegation on the real cgroup2 mount: the Slurm prolog hands a step cgroup to a user, wnr runs there as that user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, alive, cgroup_of, procs

NOBODY = 65534
PROLOG = REPO / "manifests" / "slurm" / "prolog.sh"
EPILOG = REPO / "manifests" / "slurm" / "epilog.sh"


def slurm_env(base: Path, job_id: str = "4242") -> dict[str, str]:
    """The variables slurmd gives a Prolog, plus where this test's fake slurmstepd scope is."""
    return {
        "PATH": os.environ["PATH"],
        "SLURM_JOB_ID": job_id,
        "SLURM_JOB_UID": str(NOBODY),
        "SLURM_JOB_GID": str(NOBODY),
        "WNR_SLURM_CGROUP_BASE": str(base),
    }


def slurm_tree(cgroup_root: Path, job_id: str = "4242") -> tuple[Path, Path]:
    """Create the cgroups slurmstepd would: .../job_<id>/step_0/user/task_0, all root-owned."""
    base = cgroup_root / "system.slice" / "slurmstepd.scope"
    task = base / f"job_{job_id}" / "step_0" / "user" / "task_0"
    task.mkdir(parents=True)
    return base, task.parent


def test_prolog_delegates_exactly_the_step_user_cgroup(cgroup_root: Path) -> None:
    """The prolog chowns the user cgroup and its procs/subtree_control/threads files, nothing else."""
    base, user = slurm_tree(cgroup_root)
    result = subprocess.run(
        ["bash", str(PROLOG)], env=slurm_env(base), capture_output=True, text=True, check=False
    )
    assert 0 == result.returncode, result.stderr
    owned = {p.name for p in [user, *user.iterdir()] if p.stat().st_uid == NOBODY}
    assert {"user", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} == owned
    assert 0 == (user / "task_0").stat().st_uid
    assert 0 == user.parent.stat().st_uid


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SLURM_JOB_ID", "42; rm -rf /", "SLURM_JOB_ID is not a job number"),
        ("SLURM_JOB_UID", "nobody", "SLURM_JOB_UID is not a uid"),
        ("SLURM_JOB_ID", "999", "no step cgroup at"),
    ],
)
def test_prolog_refuses_bad_variables(
    cgroup_root: Path, variable: str, value: str, message: str
) -> None:
    """The prolog refuses malformed Slurm variables and a missing step cgroup with a clear message."""
    base, user = slurm_tree(cgroup_root)
    env = slurm_env(base) | {variable: value}
    result = subprocess.run(
        ["bash", str(PROLOG)], env=env, capture_output=True, text=True, check=False
    )
    assert 1 == result.returncode
    assert message in result.stderr
    assert 0 == user.stat().st_uid


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory other users can reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="wnr-deleg-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_unprivileged_wnr_runs_jobs_in_the_delegated_cgroup_and_epilog_cleans_up(
    cgroup_root: Path, shared_tmp: Path
) -> None:
    """As uid 65534 inside task_0, wnr picks the delegated cgroup as its root, runs a job there, and the epilog removes it all."""
    base, user = slurm_tree(cgroup_root)
    env = slurm_env(base)
    subprocess.run(["bash", str(PROLOG)], env=env, check=True, capture_output=True)
    specs = shared_tmp / "specs"
    state = shared_tmp / "state"
    for directory in (specs, state):
        directory.mkdir()
        os.chown(directory, NOBODY, NOBODY)
    spec = specs / "work.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            apiVersion: wnr.dev/v1alpha1
            kind: Slot
            metadata: {name: pilot}
            ---
            apiVersion: wnr.dev/v1alpha1
            kind: Job
            metadata: {name: payload}
            spec: {slot: pilot, command: [sleep, "600"]}
            """
        )
    )
    os.chown(spec, NOBODY, NOBODY)
    # The shell we start enters task_0 (as slurmstepd puts a task there), then drops to the user.
    launcher = (
        f"echo $$ > {user}/task_0/cgroup.procs && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
        f"{sys.executable} -m reconciler apply --specs {specs} --state-dir {state} --wait -o json"
    )
    result = subprocess.run(
        ["sh", "-c", launcher], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert 0 == result.returncode, result.stderr
    assert str(user) == json.loads(result.stdout)["root"]
    job = user / "slot.pilot" / "job.payload"
    pids = procs(job)
    assert pids
    assert {NOBODY} == {os.stat(f"/proc/{pid}").st_uid for pid in pids}
    assert {f"/{job.relative_to(cgroup_root.parent)}"} == {cgroup_of(pid) for pid in pids}
    cleaned = subprocess.run(
        ["bash", str(EPILOG)], env=env, capture_output=True, text=True, check=False
    )
    assert 0 == cleaned.returncode, cleaned.stderr
    assert ["task_0"] == sorted(p.name for p in user.iterdir() if p.is_dir())
    assert 0 == (user / "cgroup.procs").stat().st_uid
    assert not any(alive(pid) for pid in pids)
