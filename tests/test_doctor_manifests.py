"""`wnr doctor` on this machine and the systemd unit in manifests/, checked with the real tools."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.doctor import (
    Verdict,
    check_controllers,
    check_delegation,
    check_kill,
    check_spec_dir,
)

REPO = Path(__file__).resolve().parent.parent


def test_doctor_passes_on_this_machine_and_names_missing_controllers() -> None:
    """As root on this hybrid host doctor exits 0 and warns which controllers the kernel lacks."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "doctor",
            "--specs",
            str(REPO / "examples/quickstart"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "[  ok] cgroup2: mounted at" in result.stdout
    offered = set(Path("/sys/fs/cgroup/unified/cgroup.controllers").read_text().split())
    if not {"memory", "pids"} <= offered:
        assert "[warn] controllers: missing" in result.stdout


def test_delegation_check_names_each_file_the_user_lacks(cgroup_root: Path) -> None:
    """For a non-root uid, doctor lists the root and each delegation file it does not own, with the chown to run."""
    cgroup_root.mkdir()
    os.chown(cgroup_root, 4242, 4242)
    os.chown(cgroup_root / "cgroup.procs", 4242, 4242)
    [check] = check_delegation(cgroup_root, 4242)
    assert Verdict.fail == check.verdict
    assert f"{cgroup_root}/cgroup.subtree_control (owned by uid 0)" in check.detail
    assert f"{cgroup_root}/cgroup.threads (owned by uid 0)" in check.detail
    assert f"{cgroup_root}/cgroup.procs" not in check.detail
    assert f"chown 4242 {cgroup_root} " in check.hint
    for name in ("cgroup.subtree_control", "cgroup.threads"):
        os.chown(cgroup_root / name, 4242, 4242)
    assert Verdict.ok == check_delegation(cgroup_root, 4242)[0].verdict


def test_spec_dir_writable_by_others_fails(tmp_path: Path) -> None:
    """A spec dir or file that group or others can write is a failed check, since specs run commands."""
    specs = tmp_path / "specs"
    specs.mkdir(mode=0o755)
    (specs / "a.yaml").write_text("")
    assert Verdict.ok == check_spec_dir(specs, os.geteuid()).verdict
    (specs / "a.yaml").chmod(0o666)
    check = check_spec_dir(specs, os.geteuid())
    assert Verdict.fail == check.verdict
    assert f"{specs}/a.yaml (uid 0, mode -rw-rw-rw-)" in check.detail


@pytest.mark.parametrize(
    ("release", "verdict"),
    [
        ("6.1.0-56-amd64", Verdict.ok),
        ("5.14.0-362.el9.x86_64", Verdict.ok),
        ("4.18.0-513.el8.x86_64", Verdict.warn),
    ],
)
def test_cgroup_kill_follows_kernel_version(release: str, verdict: Verdict) -> None:
    """cgroup.kill is reported for 5.14+ kernels and its fallback explained for older ones (EL8)."""
    assert verdict == check_kill(release).verdict


def test_untrusted_spec_file_is_refused_and_keeps_running_work(tmp_path: Path) -> None:
    """The loader refuses a spec file that others can write, like an invalid file (nothing is deleted)."""
    from reconciler.specs.loader import SpecLoader  # noqa: PLC0415 - kept beside the test that needs it

    specs = tmp_path / "specs"
    specs.mkdir()
    slot = specs / "slot.yaml"
    slot.write_text("apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: s}\n")
    loader = SpecLoader([specs], trusted_uid=os.geteuid())
    assert ["s"] == list(loader.load().slots)
    slot.chmod(0o646)
    os.utime(slot)
    desired = loader.load()
    assert ["s"] == list(desired.slots)
    assert [f"{slot}:1:1: refusing spec file: writable by group or others (mode -rw-r--rw-)"] == [
        str(e) for e in desired.errors
    ]


def test_systemd_units_verify(tmp_path: Path) -> None:
    """manifests/wnr.service and wnr-slots.service pass `systemd-analyze verify` (ExecStart
    pointed at this checkout's wnr): the daemon notifies and is watched, its root is the
    other unit's delegated cgroup."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: install the systemd package")
    unit = (REPO / "manifests" / "wnr.service").read_text()
    slots = (REPO / "manifests" / "wnr-slots.service").read_text()
    lines = unit.splitlines()
    for line in ("KillMode=process", "Type=notify", "NotifyAccess=main", "WatchdogSec=60s"):
        assert line in lines
    assert "LimitNOFILE=1024:524288" in lines
    assert "Requires=wnr-slots.service" in lines
    assert "--root /sys/fs/cgroup/system.slice/wnr-slots.service " in unit
    assert {"Delegate=yes", "RemainAfterExit=yes"} <= set(slots.splitlines())
    wnr = Path(sys.executable).with_name("wnr")
    (tmp_path / "wnr.service").write_text(unit.replace("/usr/local/bin/wnr", str(wnr)))
    (tmp_path / "wnr-slots.service").write_text(slots)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "wnr.service"), str(tmp_path / "wnr-slots.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "" == result.stderr.strip()
    assert 0 == result.returncode


def test_controllers_check_reads_the_parent_of_a_root_not_created_yet(cgroup_root: Path) -> None:
    """Before wnr's root exists doctor reports the controllers its parent offers, read through the cgroup layer."""
    offered = set((cgroup_root.parent / "cgroup.controllers").read_text().split())
    check = check_controllers(cgroup_root, ("memory", "pids"))
    expected = Verdict.ok if {"memory", "pids"} <= offered else Verdict.warn
    assert expected == check.verdict
    assert str(cgroup_root.parent) in check.detail


def test_controllers_check_fails_on_a_path_that_is_not_a_cgroup(tmp_path: Path) -> None:
    """A root whose parent is no cgroup is a failed check naming the path, not a traceback."""
    check = check_controllers(tmp_path / "wnr", ("memory",))
    assert Verdict.fail == check.verdict
    assert f"{tmp_path} is not a cgroup" in check.detail


def _doctor_under_limit(specs: Path, limit: tuple[int, int]) -> str:
    """`wnr doctor` on `specs`, started with RLIMIT_NOFILE `limit` (as a unit's LimitNOFILE=)."""
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "doctor", "--specs", str(specs)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit),
    )
    return result.stdout


def test_doctor_reports_the_descriptor_budget_and_warns_below_the_wrappers(tmp_path: Path) -> None:
    """doctor names the soft and hard RLIMIT_NOFILE and the pidfd budget; a hard limit leaving fewer descriptors than the specs' jobs and agents is a warning."""
    specs = tmp_path / "specs"
    specs.mkdir()
    docs = [
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: s}\n"
        "spec: {agents: {replicas: 2, command: [sleep, '600']}}\n"
    ]
    docs += [
        f"apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {{name: j{i}}}\n"
        "spec: {slot: s, command: [sleep, '600']}\n"
        for i in range(100)
    ]
    (specs / "node.yaml").write_text("---\n".join(docs))
    roomy = _doctor_under_limit(specs, (1024, 4096))
    line = next(line for line in roomy.splitlines() if "descriptors:" in line)
    assert (
        "[  ok] descriptors: RLIMIT_NOFILE 1024:4096 here; wnr run raises its soft limit to 4096 "
        "and watches up to 3840 wrappers' exits by pidfd (specs ask for 102); payloads get the "
        "soft limit it started with (1024)"
    ) == line
    tight = _doctor_under_limit(specs, (300, 300))
    assert "[warn] descriptors: RLIMIT_NOFILE 300:300 here" in tight
    assert "watches up to 44 wrappers' exits by pidfd (specs ask for 102)" in tight
    assert "hint: raise the hard limit (LimitNOFILE= in wnr.service" in tight
