"""The daemon (`wnr run`) on the real cgroup2 mount: file events drive it, SIGTERM leaves jobs running."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import fill, wait_for
from tests.helpers import REPO, DaemonProcess, alive, procs, record, write_job, write_slot


def test_daemon_reacts_to_spec_files_and_job_exits(
    daemon: DaemonProcess, cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Added files start jobs, a finished job is recorded and its cgroup removed, a deleted file stops a job."""
    specs = tmp_path / "specs"
    daemon.start()
    write_slot(specs, "s", grace=1)
    write_job(specs, "long", "s", ["sleep", "600"])
    long_cgroup = cgroup_root / "slot.s" / "job.long"
    wait_for(lambda: len(procs(long_cgroup)) >= 2)
    write_job(specs, "short", "s", ["sh", "-c", "exit 7"])
    wait_for(lambda: record(state_dir, "short").get("phase") == "exited")
    assert 7 == record(state_dir, "short")["exitCode"]
    wait_for(lambda: not (cgroup_root / "slot.s" / "job.short").exists())
    pids = procs(long_cgroup)
    (specs / "job-long.yaml").unlink()
    wait_for(lambda: not long_cgroup.exists())
    assert not any(alive(pid) for pid in pids)
    assert 0 == daemon.terminate()


def test_sigterm_leaves_jobs_running_and_a_restart_adopts_them(
    daemon: DaemonProcess, cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """After SIGTERM the jobs keep running; a restarted daemon neither reruns finished jobs nor duplicates running ones."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    write_job(specs, "long", "s", ["sleep", "600"])
    write_job(specs, "done", "s", ["true"])
    daemon.start()
    long_cgroup = cgroup_root / "slot.s" / "job.long"
    wait_for(lambda: len(procs(long_cgroup)) >= 2)
    wait_for(lambda: record(state_dir, "done").get("phase") == "exited")
    pids = procs(long_cgroup)
    assert 0 == daemon.terminate()
    assert pids == procs(long_cgroup)
    daemon.start()
    write_job(specs, "after", "s", ["true"])
    wait_for(lambda: record(state_dir, "after").get("phase") == "exited")
    assert pids == procs(long_cgroup)
    jobs = state_dir / "jobs"
    assert ["attempt-1.json"] == sorted(p.name for p in (jobs / "long").glob("attempt-*.json"))
    assert ["attempt-1.json"] == sorted(p.name for p in (jobs / "done").glob("attempt-*.json"))
    assert 0 == daemon.terminate()


def test_a_full_state_dir_delays_a_jobs_end_but_neither_fails_nor_reruns_it(
    cgroup_root: Path, small_fs: Path, tmp_path: Path
) -> None:
    """A job that exits 0 while the state dir is full stays Running (one attempt, wrapper alive) and Succeeds once space is freed."""
    specs, state, work = tmp_path / "specs", small_fs / "state", tmp_path / "work"
    specs.mkdir()
    work.mkdir()
    write_slot(specs, "s")
    job = write_job(specs, "waiter", "s", ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done"])
    job.write_text(job.read_text() + f"  workingDir: {work}\n")
    daemon = DaemonProcess(specs, cgroup_root, state, tmp_path / "daemon.log")
    daemon.start()
    try:
        wait_for(lambda: record(state, "waiter").get("phase") == "running")
        running = record(state, "waiter")
        wrapper, payload = int(str(running["wrapperPid"])), int(str(running["pid"]))
        filler = fill(small_fs)
        (work / "go").touch()
        wait_for(lambda: not alive(payload))
        time.sleep(2.0)  # several passes of the daemon
        attempts = sorted(p.name for p in (state / "jobs" / "waiter").glob("attempt-*.json"))
        assert (["attempt-1.json"], "running", True) == (
            attempts,
            record(state, "waiter")["phase"],
            alive(wrapper),
        )
        filler.unlink()
        wait_for(lambda: record(state, "waiter").get("phase") == "exited")
        assert 0 == record(state, "waiter")["exitCode"]
        wait_for(lambda: not (cgroup_root / "slot.s" / "job.waiter").exists())
        get = [*("get", "jobs", "waiter", "-o", "json"), "--state-dir", str(state)]
        shown = subprocess.run(
            [sys.executable, "-m", "reconciler", *get, "--specs", str(specs)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        status = json.loads(shown.stdout)["status"]
        assert ("Succeeded", "Completed", 1) == (
            status["phase"],
            status["reason"],
            status["attempts"],
        )
        assert daemon.proc is not None
        assert daemon.proc.poll() is None, (tmp_path / "daemon.log").read_text()
    finally:
        daemon.kill()
