"""Delegation as in the talk, on the real kernel: a root-prepared cgroup handed to an unprivileged user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.guest.harness import MOUNT, REPO, WNR_TIMEOUT, MiB, remove_tree

NOBODY = 65534
DELEGATED = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


@pytest.fixture
def delegated() -> Iterator[Path]:
    """A cgroup below the root, prepared by root and (partly) handed to uid 65534 by the test."""
    cgroup = MOUNT / f"wnr-vm-deleg-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    try:
        yield cgroup
    finally:
        remove_tree(cgroup)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory uid 65534 can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="wnr-deleg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def user_specs(base: Path, slot_spec: str, job_spec: str) -> tuple[Path, Path]:
    """A spec dir (Slot `pilot`, Job `payload`) and a state dir, both owned by uid 65534."""
    specs, state = base / "specs", base / "state"
    for directory in (specs, state):
        directory.mkdir()
        os.chown(directory, NOBODY, NOBODY)
    spec = specs / "work.yaml"
    spec.write_text(
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: pilot}\n"
        f"{slot_spec}\n---\n"
        "apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {name: payload}\n"
        f"{job_spec}\n"
    )
    os.chown(spec, NOBODY, NOBODY)
    return specs, state


def as_nobody(cgroup: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m reconciler ARGS` as uid 65534, started inside `cgroup` as a batch system would."""
    launcher = (
        f"echo $$ > {cgroup}/cgroup.procs && exec setpriv --reuid={NOBODY} --regid={NOBODY} "
        f"--clear-groups {sys.executable} -m reconciler " + " ".join(args)
    )
    return subprocess.run(
        ["sh", "-c", launcher],
        capture_output=True,
        text=True,
        timeout=WNR_TIMEOUT,
        cwd=REPO,
        check=False,
    )


def test_unprivileged_wnr_runs_limited_jobs_in_a_delegated_cgroup(
    delegated: Path, shared_tmp: Path
) -> None:
    """uid 65534 in a delegated cgroup: wnr picks it as its root, moves itself into wnr.daemon, enables controllers and runs a limited job."""
    for path in (delegated, *(delegated / name for name in DELEGATED)):
        os.chown(path, NOBODY, NOBODY)
    specs, state = user_specs(
        shared_tmp,
        "spec: {resources: {memory: 200Mi, pids: 64}}",
        "spec: {slot: pilot, command: [sleep, '600'], resources: {memory: 100Mi}}",
    )
    result = as_nobody(
        delegated, "apply", "--specs", str(specs), "--state-dir", str(state), "--wait", "-o", "json"
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert str(delegated) == json.loads(result.stdout)["root"]
    assert {"cpu", "io", "memory", "pids"} <= set(
        (delegated / "cgroup.subtree_control").read_text().split()
    )
    assert "" == (delegated / "cgroup.procs").read_text().strip(), "wnr left the root for its leaf"
    assert (delegated / "wnr.daemon").is_dir()
    assert str(200 * MiB) == (delegated / "slot.pilot" / "memory.max").read_text().strip()
    job = delegated / "slot.pilot" / "job.payload"
    assert str(100 * MiB) == (job / "memory.max").read_text().strip()
    pids = [int(p) for p in (job / "cgroup.procs").read_text().split()]
    assert 2 == len(pids)
    assert {NOBODY} == {os.stat(f"/proc/{pid}").st_uid for pid in pids}


def test_doctor_names_each_file_the_user_does_not_own(delegated: Path, shared_tmp: Path) -> None:
    """Without full delegation, `wnr doctor` run as the user fails and names each file and the chown to run."""
    os.chown(delegated, NOBODY, NOBODY)
    os.chown(delegated / "cgroup.procs", NOBODY, NOBODY)
    specs = shared_tmp / "specs"
    specs.mkdir()
    os.chown(specs, NOBODY, NOBODY)
    result = as_nobody(delegated, "doctor", "--specs", str(specs), "--root", str(delegated))
    assert 1 == result.returncode, result.stdout + result.stderr
    assert f"{delegated}/cgroup.subtree_control (owned by uid 0)" in result.stdout
    assert f"{delegated}/cgroup.threads (owned by uid 0)" in result.stdout
    assert f"hint: as root: chown {NOBODY} {delegated} " in result.stdout


def test_slurm_prolog_delegates_a_step_cgroup_wnr_enforces_limits_in_and_epilog_cleans(
    shared_tmp: Path,
) -> None:
    """On a Slurm-shaped path, the prolog delegates step_0/user; wnr as the user writes kernel limits there; the epilog removes it all."""
    base = MOUNT / f"wnr-vm-slurm-{uuid.uuid4().hex[:8]}" / "slurmstepd.scope"
    user = base / "job_77" / "step_0" / "user"
    try:
        # What slurmd/slurmstepd would have made: root-owned cgroups, controllers down to the job.
        (user / "task_0").mkdir(parents=True)
        for level in (base.parent, base, base / "job_77"):
            (level / "cgroup.subtree_control").write_text("+cpu +memory +pids +io")
        env = {
            "PATH": os.environ["PATH"],
            "SLURM_JOB_ID": "77",
            "SLURM_JOB_UID": str(NOBODY),
            "SLURM_JOB_GID": str(NOBODY),
            "WNR_SLURM_CGROUP_BASE": str(base),
        }
        prolog = subprocess.run(
            ["bash", str(REPO / "manifests/slurm/prolog.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == prolog.returncode, prolog.stderr
        specs, state = user_specs(
            shared_tmp,
            "spec: {resources: {memory: 128Mi}}",
            "spec: {slot: pilot, command: [sleep, '600'], resources: {pids: 10}}",
        )
        result = as_nobody(
            user / "task_0",
            "apply",
            "--specs",
            str(specs),
            "--state-dir",
            str(state),
            "--wait",
            "-o",
            "json",
        )
        assert 0 == result.returncode, result.stdout + result.stderr
        assert str(user) == json.loads(result.stdout)["root"]
        assert str(128 * MiB) == (user / "slot.pilot" / "memory.max").read_text().strip()
        assert "10" == (user / "slot.pilot" / "job.payload" / "pids.max").read_text().strip()
        epilog = subprocess.run(
            ["bash", str(REPO / "manifests/slurm/epilog.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == epilog.returncode, epilog.stderr
        assert ["task_0"] == sorted(p.name for p in user.iterdir() if p.is_dir())
        assert 0 == (user / "cgroup.procs").stat().st_uid
    finally:
        remove_tree(base.parent)
