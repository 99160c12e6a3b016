"""User-space enforcement on this host (no memory or pids controller) and the idle timeout, via the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.observe.workingset import sampled_working_set as memory_of
from tests.conftest import wait_for
from tests.helpers import USER_SPACE_NODE, DaemonProcess, job_document


def outcome(state: Path, name: str) -> dict[str, Any]:
    """The job's attempt record and stop record."""
    directory = state / "jobs" / name
    record = json.loads((directory / "attempt-1.json").read_text())
    stop = directory / "stop.json"
    record["stop"] = json.loads(stop.read_text()) if stop.exists() else None
    assert isinstance(record, dict)
    return record


def finished(state: Path, name: str) -> bool:
    """Whether the job's wrapper recorded the payload's end."""
    try:
        return outcome(state, name)["phase"] == "exited"
    except FileNotFoundError:
        return False


def test_limits_the_kernel_lacks_are_enforced_by_sampling(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Memory over its limit, a fork bomb past pids, disk over its limit and an idle job are each killed with their reason."""
    offered = set((cgroup_root.parent / "cgroup.controllers").read_text().split())
    if {"memory", "pids"} <= offered:
        pytest.fail(
            "this test proves user-space enforcement; run it where the kernel lacks the controllers"
        )
    specs = tmp_path / "specs"
    specs.mkdir()
    hog = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(600)"
    (specs / "specs.yaml").write_text(
        USER_SPACE_NODE
        + job_document(
            "hog", ["python3", "-c", hog], "resources: {memory: 64Mi}\nidle: {windowSeconds: 600}\n"
        )
        + job_document(
            "forks",
            ["sh", "-c", "for i in $(seq 60); do sleep 600 & done; wait"],
            "resources: {pids: 20}\nidle: {windowSeconds: 600}\n",
        )
        + job_document(
            "writer",
            ["sh", "-c", "head -c 3000000 /dev/urandom > big; sleep 600"],
            "resources: {disk: 1Mi}\nidle: {windowSeconds: 600}\n",
        )
        + job_document("idler", ["sleep", "600"], "idle: {windowSeconds: 2, minCpuFraction: 0.1}\n")
        + job_document(
            "worker",
            ["sh", "-c", "while :; do :; done"],
            "resources: {cpus: 1}\nidle: {windowSeconds: 2, minCpuFraction: 0.01}\nactiveDeadlineSeconds: 6\n",
        )
    )
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.start()
    try:
        for name in ("hog", "forks", "writer", "idler", "worker"):
            wait_for(lambda name=name: finished(state_dir, name), timeout=30)
    finally:
        daemon.kill()
    reasons = {
        n: outcome(state_dir, n)["stop"]["reason"]
        for n in ("hog", "forks", "writer", "idler", "worker")
    }
    assert {
        "hog": "OOMKilled",
        "forks": "PidsLimitExceeded",
        "writer": "DiskLimitExceeded",
        "idler": "IdleTimeout",
        "worker": "DeadlineExceeded",
    } == reasons, (tmp_path / "daemon.log").read_text()
    assert "working set" in outcome(state_dir, "hog")["stop"]["message"]
    assert 9 == outcome(state_dir, "hog")["signal"]


# How far the kernel's per-CPU RSS counters, as status and statm sum them, may lag the page
# walk of smaps_rollup (CI saw 96 KiB on 2 CPUs).
COUNTER_SLACK = 1 << 20


def test_the_working_set_bound_is_never_below_it_and_it_is_taken_exactly_past_it() -> None:
    """Below the limit the cheap resident bound is returned (never under the working set); past it, the working set itself."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(32 << 20); time.sleep(600)"]
    )
    try:
        status = Path(f"/proc/{child.pid}/status")
        wait_for(lambda: "VmRSS" in status.read_text() and memory_of((child.pid,)) > 32 << 20)
        exact = memory_of((child.pid,))
        bound = memory_of((child.pid,), over=1 << 40)
        assert bound + COUNTER_SLACK >= exact
        assert memory_of((child.pid,), over=1 << 40, swap=False) + COUNTER_SLACK >= exact
        # The counters behind the bound are summed without the CPUs' pending deltas.
        assert memory_of((child.pid,), over=1 << 20) <= bound + COUNTER_SLACK
        assert 0 == memory_of((2**22 + 12345,), over=1 << 40)
        assert 0 == memory_of((2**22 + 12345,), over=1 << 40, swap=False)
    finally:
        child.kill()
        child.wait()
