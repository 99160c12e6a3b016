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
