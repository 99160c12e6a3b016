"""End to end on the real cgroup2 mount: specs -> `wnr plan` / `wnr apply` -> cgroups and processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.helpers import REPO, alive, cgroup_of, common, procs, wnr, write_job, write_slot


def test_quickstart_plan_apply_converges(cgroup_root: Path, state_dir: Path) -> None:
    """The quickstart plans changes (exit 2), applies with every job in its own cgroup, then plans none."""
    specs = REPO / "examples" / "quickstart"
    flags = common(specs, cgroup_root, state_dir)
    first = wnr("plan", *flags, check=2)
    assert "create-cgroup" in first.stdout
    assert "start-job" in first.stdout
    wnr("apply", *flags, "--wait", check=0)
    mount_rel = "/" + str(cgroup_root.relative_to(cgroup_root.parent))
    for slot, job in [("alpha", "long-sleep"), ("beta", "analysis")]:
        job_cgroup = cgroup_root / f"slot.{slot}" / f"job.{job}"
        pids = procs(job_cgroup)
        assert len(pids) >= 2, f"wrapper and payload expected in {job_cgroup}: {pids}"
        for pid in pids:
            assert f"{mount_rel}/slot.{slot}/job.{job}" == cgroup_of(pid)
    wnr("plan", *flags, check=0)
    hello = json.loads((state_dir / "jobs" / "hello" / "attempt-1.json").read_text())
    failing = json.loads((state_dir / "jobs" / "failing" / "attempt-1.json").read_text())
    assert (0, "exited") == (hello["exitCode"], hello["phase"])
    assert (3, "exited") == (failing["exitCode"], failing["phase"])
    assert "hello from hello in slot alpha" in (state_dir / "jobs/hello/attempt-1.log").read_text()


def test_payload_and_its_children_start_inside_the_job_cgroup(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """The payload's first instruction and every process it forks run inside the job cgroup."""
    specs = tmp_path / "specs"
    specs.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    write_slot(specs, "s")
    script = f"grep ^0:: /proc/self/cgroup > {out}/parent; sh -c 'grep ^0:: /proc/self/cgroup' > {out}/child"
    write_job(specs, "probe", "s", ["sh", "-c", script])
    wnr("apply", *common(specs, cgroup_root, state_dir), "--wait", check=0)
    expected = f"0::/{cgroup_root.name}/slot.s/job.probe\n"
    assert expected == (out / "parent").read_text()
    assert expected == (out / "child").read_text()


def test_removing_a_job_file_leaves_no_trace(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Deleting a running job's spec stops it (even one ignoring SIGTERM) and removes its cgroup and records."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s", grace=1)
    write_job(specs, "keep", "s", ["sleep", "600"])
    stubborn = write_job(specs, "stubborn", "s", ["sh", "-c", "trap '' TERM; sleep 600 & wait"])
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    job_cgroup = cgroup_root / "slot.s" / "job.stubborn"
    pids = procs(job_cgroup)
    assert pids
    stubborn.unlink()
    wnr("apply", *flags, "--wait", check=0)
    assert not job_cgroup.exists()
    assert not (state_dir / "jobs" / "stubborn").exists()
    wait_for(lambda: not any(alive(pid) for pid in pids))
    assert procs(cgroup_root / "slot.s" / "job.keep")
    wnr("plan", *flags, check=0)


def test_removing_a_slot_stops_its_jobs_and_removes_it(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Deleting a Slot's spec (and its jobs') stops the jobs and removes the slot cgroup."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "a")
    write_slot(specs, "b")
    write_job(specs, "ja", "a", ["sleep", "600"])
    write_job(specs, "jb", "b", ["sleep", "600"])
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    pids = procs(cgroup_root / "slot.b" / "job.jb")
    (specs / "slot-b.yaml").unlink()
    (specs / "job-jb.yaml").unlink()
    wnr("apply", *flags, "--wait", check=0)
    assert not (cgroup_root / "slot.b").exists()
    assert (cgroup_root / "slot.a" / "job.ja").exists()
    wait_for(lambda: not any(alive(pid) for pid in pids))


def test_invalid_file_never_stops_running_work(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A running job whose spec file turns invalid keeps running; apply reports the error and deletes nothing."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s")
    job_file = write_job(specs, "j", "s", ["sleep", "600"])
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    pids = procs(cgroup_root / "slot.s" / "job.j")
    job_file.write_text(job_file.read_text().replace("command:", "comand:"))
    result = wnr("apply", *flags, check=1)
    assert f"{job_file}:6:3: Job/j: spec.comand: Extra inputs are not permitted" in result.stderr
    assert pids == procs(cgroup_root / "slot.s" / "job.j")
    shutil.rmtree(specs)
    wnr("apply", *flags, check=1)
    assert pids == procs(cgroup_root / "slot.s" / "job.j")


def test_foreign_cgroups_and_processes_are_left_alone(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A cgroup under the root that wnr does not own, and its process, survive an empty spec set."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s")
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    foreign = cgroup_root / "not-wnr"
    foreign.mkdir()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        (foreign / "cgroup.procs").write_text(str(sleeper.pid))
        (specs / "slot-s.yaml").unlink()
        result = wnr("plan", *flags, "-o", "json", check=2)
        plan = json.loads(result.stdout)
        assert [("remove-cgroup", "slot.s"), ("forget-slot", "slot.s")] == [
            (a["op"], a["path"]) for a in plan["actions"]
        ]
        assert {
            "object": "not-wnr",
            "kind": "foreign",
            "message": "not a cgroup wnr owns; left alone",
        } in plan["notes"]
        wnr("apply", *flags, "--wait", check=0)
        assert [sleeper.pid] == procs(foreign)
        assert sleeper.poll() is None
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()


def test_plan_json_carries_actions_and_fingerprint_for_apply_expect(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """`plan -o json` gives actions and a fingerprint; `apply --expect` refuses a stale fingerprint."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s")
    flags = common(specs, cgroup_root, state_dir)
    plan = json.loads(wnr("plan", *flags, "-o", "json", check=2).stdout)
    assert ["create-cgroup", "create-cgroup", "record-slot"] == [a["op"] for a in plan["actions"]]
    write_job(specs, "late", "s", ["true"])
    refused = wnr("apply", *flags, "--expect", plan["fingerprint"], check=1)
    assert "the plan changed" in refused.stderr
    assert not cgroup_root.exists()
    current = json.loads(wnr("plan", *flags, "-o", "json", check=2).stdout)["fingerprint"]
    wnr("apply", *flags, "--expect", current, check=0)
    assert (cgroup_root / "slot.s").is_dir()


@pytest.mark.parametrize("bad_root", ["/tmp/not-a-cgroup", "relative/root"])
def test_root_outside_cgroup2_is_refused(bad_root: str, state_dir: Path) -> None:
    """A --root outside every cgroup2 mount is refused with a clear error, before anything is done."""
    result = wnr("plan", *common(REPO / "examples/quickstart", Path(bad_root), state_dir), check=1)
    assert "wnr: error: --root" in result.stderr
    assert not os.path.exists("/tmp/not-a-cgroup")


def test_job_with_nested_cgroups_is_killed_and_removed_whole(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A payload that nests a cgroup of its own (as container runtimes do) is still stopped and removed completely."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s", grace=0)
    script = (
        "cg=/sys/fs/cgroup/unified$(grep ^0:: /proc/self/cgroup | cut -d: -f3); mkdir $cg/inner; "
        "sh -c 'echo $$ > '$cg'/inner/cgroup.procs; for i in 1 2 3; do sleep 600 & done; wait' & "
        "for i in 1 2 3; do sleep 600 & done; wait"
    )
    job_file = write_job(specs, "nest", "s", ["sh", "-c", script])
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    job = cgroup_root / "slot.s" / "job.nest"
    wait_for(lambda: len(procs(job / "inner")) == 4)
    pids = procs(job) + procs(job / "inner")
    job_file.unlink()
    wnr("apply", *flags, "--wait", check=0)
    assert not job.exists()
    wait_for(lambda: not any(alive(pid) for pid in pids))
