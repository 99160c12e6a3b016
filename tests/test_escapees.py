"""Processes out of place on the real cgroup2 mount: a payload's escapees are reported and die
with their job; a process moved into a job's cgroup is reported and left alone until then.

Only PIDs of processes this test starts (or that a payload it starts starts) are ever written
into a cgroup.procs, and only into cgroups of the test's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_cgroup_root, remove_tree, wait_for
from tests.helpers import (
    USER_SPACE_NODE,
    DaemonProcess,
    alive,
    common,
    job_document,
    procs,
    wnr,
    write_job,
    write_slot,
)


def events(state: Path) -> list[dict[str, Any]]:
    """The events the state dir holds, oldest first."""
    path = state / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def warnings(state: Path, reason: str) -> list[dict[str, Any]]:
    """The Warning events of one reason."""
    return [e for e in events(state) if e["type"] == "Warning" and e["reason"] == reason]


def notes(flags: list[str | Path], kind: str) -> list[dict[str, str]]:
    """The notes of one kind in `wnr plan -o json`."""
    result = wnr("plan", *flags, "-o", "json")
    assert result.returncode in (0, 2), result.stderr
    return [n for n in json.loads(result.stdout)["notes"] if n["kind"] == kind]


def moved_children(out: Path, *targets: Path) -> list[str]:
    """A payload that starts one `sleep 600` per target, writes each child's PID into the
    target's cgroup.procs (and into `out`), then sleeps itself."""
    lines = [f"sleep 600 & echo $! > {t}/cgroup.procs; echo $! >> {out}" for t in targets]
    return ["sh", "-c", "; ".join([*lines, "exec sleep 600"])]


def pids_in(path: Path, count: int) -> list[int]:
    """The PIDs a payload wrote, once it has written `count`."""
    wait_for(lambda: path.exists() and len(path.read_text().split()) >= count)
    return [int(p) for p in path.read_text().split()]


def kill_all(pids: list[int]) -> None:
    """SIGKILL what a test's payload started, should the test fail before wnr did."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A cgroup of the test's own beside (not below) wnr's root: outside wnr's tree."""
    path = make_cgroup_root()
    path.mkdir()
    try:
        yield path
    finally:
        remove_tree(path)


def test_escapees_into_the_slot_the_root_and_outside_are_reported_and_die_with_the_job(
    cgroup_root: Path, state_dir: Path, tmp_path: Path, outside: Path
) -> None:
    """Children a payload moves into its slot, wnr's root and a cgroup outside wnr's tree are
    noted in `wnr plan` and as Warning events, survive while the job runs, die when it is
    deleted."""
    specs = tmp_path / "specs"
    specs.mkdir()
    flags = common(specs, cgroup_root, state_dir)
    write_slot(specs, "s", grace=1)
    wnr("apply", *flags, "--wait", check=0)
    out = tmp_path / "children"
    slot = cgroup_root / "slot.s"
    command = moved_children(out, slot, cgroup_root, outside)
    write_job(specs, "j", "s", command)
    wnr("apply", *flags, "--wait", check=0)
    children = pids_in(out, 3)
    try:
        wait_for(lambda: [children[0]] == procs(slot) and [children[1]] == procs(cgroup_root))
        assert [children[2]] == procs(outside)
        escaped = notes(flags, "escaped")
        # In-tree escapees are seen on every pass; the one outside once its job ends.
        assert {"Job/j"} == {n["object"] for n in escaped}
        assert any(f"process {children[0]} (sleep)" in n["message"] for n in escaped)
        assert any(f"process {children[1]} (sleep)" in n["message"] for n in escaped)
        assert any(f"/{cgroup_root.name}/slot.s (slot.s)" in n["message"] for n in escaped)
        wnr("apply", *flags, check=0)
        wnr("apply", *flags, check=0)
        reported = warnings(state_dir, "Escaped")
        assert 2 == len(reported)  # once each, not once a pass
        assert all(alive(pid) for pid in children)
        (specs / "job-j.yaml").unlink()
        wnr("apply", *flags, "--wait", check=0)
        wait_for(lambda: not any(alive(pid) for pid in children))
        assert not (slot / "job.j").exists()
        assert any(e["reason"] == "KilledEscapees" for e in events(state_dir))
        (specs / "slot-s.yaml").unlink()
        wnr("apply", *flags, "--wait", check=0)
        assert not slot.exists()  # nothing left to keep the slot
    finally:
        kill_all(children)


def test_escapees_of_a_payload_that_exits_die_with_its_end(
    cgroup_root: Path, state_dir: Path, tmp_path: Path, outside: Path
) -> None:
    """A payload that moves its children out and exits at once: the pass that sees its end
    kills them, in the slot and outside wnr's tree alike."""
    specs = tmp_path / "specs"
    specs.mkdir()
    flags = common(specs, cgroup_root, state_dir)
    write_slot(specs, "s", grace=1)
    out = tmp_path / "children"
    command = moved_children(out, cgroup_root / "slot.s", outside)
    command[-1] = command[-1].replace("; exec sleep 600", "")
    write_job(specs, "j", "s", command)
    wnr("apply", *flags, "--wait", check=0)
    children = pids_in(out, 2)
    try:
        wnr("apply", *flags, "--wait", check=0)
        wait_for(lambda: not any(alive(pid) for pid in children))
        assert [] == procs(outside)
    finally:
        kill_all(children)


def test_a_process_moved_into_a_job_is_reported_and_left_alone_until_the_job_is_deleted(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A process the test started, written into a running job's cgroup (with memory and pids
    enforced by sampling every 0.2 s): one Intruder warning, alive after many passes, stopped
    with the job when its spec is deleted."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "node.yaml").write_text(USER_SPACE_NODE)
    spec = job_document("j", ["sleep", "600"], "resources: {memory: 1Gi, pids: 50}\n")
    (specs / "job.yaml").write_text(spec)
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.start()
    cgroup = cgroup_root / "slot.s" / "job.j"
    foreign = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        wait_for(lambda: len(procs(cgroup)) >= 2)
        (cgroup / "cgroup.procs").write_text(str(foreign.pid))
        wait_for(lambda: warnings(state_dir, "Intruder"), timeout=15)
        (intruder,) = warnings(state_dir, "Intruder")
        assert "Job/j" == intruder["object"]
        assert f"process {foreign.pid} (sleep)" in intruder["message"]
        time.sleep(2.0)  # ten samples and passes
        assert foreign.poll() is None
        assert 1 == len(warnings(state_dir, "Intruder"))
        assert not warnings(state_dir, "Escaped")
        (specs / "job.yaml").unlink()
        wait_for(lambda: not cgroup.exists(), timeout=15)
        foreign.wait(timeout=5)
    finally:
        daemon.kill()
        if foreign.poll() is None:
            foreign.send_signal(signal.SIGKILL)
            foreign.wait()


def test_the_daemon_reports_an_escapee_within_a_pass_and_kills_it_with_the_job(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """The daemon: a child moved into the slot is a Warning event at the next pass (and no
    Intruder); it dies when the job is deleted."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "node.yaml").write_text(USER_SPACE_NODE)
    out = tmp_path / "children"
    gate = tmp_path / "go"
    slot = cgroup_root / "slot.s"
    script = (
        f"sleep 600 & echo $! >> {out}; while [ ! -e {gate} ]; do sleep 0.05; done; "
        f"cat {out} > {slot}/cgroup.procs; exec sleep 600"
    )
    (specs / "job.yaml").write_text(job_document("j", ["sh", "-c", script], ""))
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.start()
    children: list[int] = []
    try:
        children = pids_in(out, 1)
        time.sleep(1.0)  # the daemon samples the job while the child is still inside
        gate.touch()
        wait_for(lambda: children == procs(slot))
        wait_for(lambda: warnings(state_dir, "Escaped"), timeout=15)
        assert str(children[0]) in warnings(state_dir, "Escaped")[0]["message"]
        assert not warnings(state_dir, "Intruder")
        (specs / "job.yaml").unlink()
        wait_for(lambda: not alive(children[0]), timeout=15)
    finally:
        daemon.kill()
        kill_all(children)
