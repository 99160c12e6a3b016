"""Crash safety: a daemon SIGKILLed at random moments loses and duplicates no job."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tests.conftest import wait_for
from tests.helpers import DaemonProcess

JOBS = 100
KILLS = 50


def specs_text(ran: Path) -> str:
    """One slot and JOBS short jobs that each append their name to a shared file."""
    docs = [
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: s}\nspec: {terminationGracePeriodSeconds: 1, user: root}\n"
    ]
    for n in range(JOBS):
        command = ["sh", "-c", f"echo job-{n} >> {ran}; sleep 0.2"]
        docs.append(
            f"apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {{name: job-{n}}}\n"
            f"spec: {{slot: s, command: {json.dumps(command)}}}\n"
        )
    return "---\n".join(docs)


def settled(state: Path, root: Path) -> bool:
    """Every job has recorded its end and no job cgroup is left."""
    for n in range(JOBS):
        attempts = sorted((state / "jobs" / f"job-{n}").glob("attempt-*.json"))
        if not attempts or json.loads(attempts[-1].read_text()).get("phase") != "exited":
            return False
    return not list((root / "slot.s").glob("job.*"))


def test_daemon_killed_fifty_times_runs_every_job_exactly_once(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """After 50 SIGKILLs at random points of its passes, every one of 100 jobs ran exactly once and nothing is left over."""
    specs = tmp_path / "specs"
    specs.mkdir()
    ran = tmp_path / "ran"
    ran.touch()
    (specs / "jobs.yaml").write_text(specs_text(ran))
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    chance = random.Random(20261124)
    try:
        for _ in range(KILLS):
            daemon.start()
            time.sleep(chance.uniform(0.3, 1.0))
            daemon.kill()
        daemon.start()
        wait_for(lambda: settled(state_dir, cgroup_root), timeout=120, interval=0.2)
    finally:
        daemon.kill()
    names = ran.read_text().split()
    assert [] == sorted({n for n in names if names.count(n) > 1})
    assert JOBS == len(names)
    for n in range(JOBS):
        records = [
            json.loads(p.read_text())
            for p in (state_dir / "jobs" / f"job-{n}").glob("attempt-*.json")
        ]
        ran_records = [r for r in records if r["phase"] == "exited"]
        assert [0] == [r["exitCode"] for r in ran_records], (n, records)
    assert [] == [p.name for p in (cgroup_root / "slot.s").iterdir() if p.is_dir()]
