"""The state dir as the node's object store, end to end with real daemons and real processes.

Identity (uid, creationTimestamp, generation), last good specs that outlive
the daemon, the status the daemon publishes and the commands that read it:
`get` with no flags but the state dir, `get -w`, `wait`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import wait_for
from tests.helpers import REPO, DaemonProcess, common, record, wnr, write_slot

JOBS = """\
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: a}
spec:
  slot: s
  command: [sleep, "300"]
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: b}
spec:
  slot: s
  command: [sleep, "300"]
"""


def published(state: Path, kind: str = "jobs") -> dict[str, dict[str, Any]]:
    """The daemon's published objects of a kind, by name, read through `wnr get -o json`."""
    out = wnr("get", kind, "--state-dir", state, "-o", "json", check=0).stdout
    return {o["metadata"]["name"]: o for o in json.loads(out)["items"]}


def daemon_pid(state: Path) -> int | None:
    """The PID the daemon record names."""
    try:
        return int(json.loads((state / "daemon.json").read_text())["pid"])
    except (FileNotFoundError, ValueError):
        return None


def spec_valid(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The SpecValid condition of a published object, if it has one."""
    conditions = obj["status"].get("conditions", [])
    return next((c for c in conditions if c["type"] == "SpecValid"), None)


def test_a_broken_file_keeps_its_jobs_across_a_killed_daemon(
    daemon: DaemonProcess, state_dir: Path, cgroup_root: Path, tmp_path: Path
) -> None:
    """SIGKILL the daemon, break the file: a new daemon and `wnr plan` keep both jobs, marked."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    (specs / "jobs.yaml").write_text(JOBS)
    daemon.start()
    wait_for(lambda: all(record(state_dir, n)["phase"] == "running" for n in "ab"))
    wait_for(lambda: {"a", "b"} <= set(published(state_dir)))
    uids = {n: o["metadata"]["uid"] for n, o in published(state_dir).items()}
    pids = {n: record(state_dir, n)["pid"] for n in "ab"}
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait()
    (specs / "jobs.yaml").write_text(JOBS.replace("  slot: s\n", "  slot: s\n  bogus: 1\n", 1))
    second = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon2.log")
    second.start()
    try:
        assert second.proc is not None
        wait_for(lambda: daemon_pid(state_dir) == second.proc.pid if second.proc else False)
        wait_for(lambda: all(spec_valid(o) for o in published(state_dir).values()))
        jobs = published(state_dir)
        for name in "ab":
            condition = spec_valid(jobs[name])
            assert condition is not None
            assert "False" == condition["status"]
            assert f"{specs}/jobs.yaml:6:3: Job/a: spec.bogus" in condition["message"]
            assert uids[name] == jobs[name]["metadata"]["uid"]
            assert "Running" == jobs[name]["status"]["phase"]
            assert pids[name] == record(state_dir, name)["pid"]
            assert not (state_dir / "jobs" / name / "stop.json").exists()
        plan = wnr("plan", *common(specs, cgroup_root, state_dir), "-o", "json")
        assert 1 == plan.returncode
        assert f"{specs}/jobs.yaml:6:3" in plan.stderr
        touched = {a["object"] for a in json.loads(plan.stdout)["actions"]}
        assert not touched & {"Job/a", "Job/b"}
        (specs / "jobs.yaml").write_text(JOBS)
        wait_for(lambda: not any(spec_valid(o) for o in published(state_dir).values()))
        assert 0 == second.terminate()
    finally:
        second.kill()


def test_a_job_deleted_and_written_again_is_a_new_object(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Delete a running job's spec and write it again within its grace: Deleted, then new."""
    specs, runs = tmp_path / "specs", tmp_path / "runs"
    write_slot(specs, "s")
    script = f'echo run >> {runs}; trap "sleep 3; exit 0" TERM; while :; do sleep 0.1; done'
    text = (
        "apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {name: x}\n"
        f"spec:\n  slot: s\n  command: [sh, -c, {json.dumps(script)}]\n"
    )
    job = specs / "job-x.yaml"
    job.write_text(text)
    daemon.start()
    wait_for(lambda: record(state_dir, "x")["phase"] == "running")
    wait_for(lambda: "x" in published(state_dir))
    first = published(state_dir)["x"]["metadata"]["uid"]
    job.unlink()
    wait_for((state_dir / "jobs" / "x" / "stop.json").exists)
    job.write_text(text)
    wait_for(lambda: "deletionTimestamp" in published(state_dir)["x"]["metadata"])
    held = published(state_dir)["x"]
    assert first == held["metadata"]["uid"]
    assert "written again" in held["status"]["message"]
    wait_for(lambda: published(state_dir).get("x", {}).get("metadata", {}).get("uid") != first)
    wait_for(lambda: published(state_dir)["x"]["status"]["phase"] == "Running", timeout=15)
    new = published(state_dir)["x"]
    assert 1 == new["status"]["attempts"]
    assert 1 == new["metadata"]["generation"]
    assert "deletionTimestamp" not in new["metadata"]
    events = [json.loads(line) for line in (state_dir / "events.jsonl").read_text().splitlines()]
    ends = [e for e in events if e.get("object") == "Job/x" and "Deleted" in json.dumps(e)]
    assert ends, events
    time.sleep(1.0)
    assert ["run", "run"] == runs.read_text().split()
    assert 0 == daemon.terminate()


def test_generation_follows_the_spec_and_the_status_its_pass(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A changed spec bumps generation and observedGeneration; a changed label alone does not."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    daemon.start()
    wait_for(lambda: "s" in published(state_dir, "slots"))
    slot = published(state_dir, "slots")["s"]
    assert (1, 1) == (slot["metadata"]["generation"], slot["status"]["observedGeneration"])
    created = slot["metadata"]["creationTimestamp"]
    path = specs / "slot-s.yaml"
    path.write_text(path.read_text().replace("memory: 1Gi", "memory: 2Gi"))
    wait_for(lambda: published(state_dir, "slots")["s"]["metadata"]["generation"] == 2)
    slot = published(state_dir, "slots")["s"]
    assert 2 == slot["status"]["observedGeneration"]
    assert "2Gi" == slot["spec"]["resources"]["memory"]
    path.write_text(
        path.read_text().replace("metadata: {name: s}", "metadata: {name: s, labels: {t: x}}")
    )
    wait_for(lambda: published(state_dir, "slots")["s"]["metadata"].get("labels") == {"t": "x"})
    slot = published(state_dir, "slots")["s"]
    assert (2, created) == (slot["metadata"]["generation"], slot["metadata"]["creationTimestamp"])
    assert 0 == daemon.terminate()


def test_get_finds_the_daemon_from_the_state_dir_and_falls_back_to_a_dry_pass(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`get` needs only --state-dir while a daemon runs; once it stops, a dry pass, said so."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    (specs / "jobs.yaml").write_text(JOBS)
    daemon.start()
    wait_for(lambda: all(record(state_dir, n)["phase"] == "running" for n in "ab"))
    wait_for(lambda: "Running" in wnr("get", "jobs", "--state-dir", state_dir).stdout)
    shown = wnr("get", "jobs", "--state-dir", state_dir, check=0)
    assert "" == shown.stderr
    assert ["a", "b"] == [line.split()[0] for line in shown.stdout.splitlines()[1:]]
    assert all(line.split()[2] == "Running" for line in shown.stdout.splitlines()[1:])
    assert 0 == daemon.terminate()
    after = wnr("get", "jobs", "--state-dir", state_dir, check=0)
    assert "wnr: no daemon runs on this state dir: showing a dry pass\n" == after.stderr
    assert shown.stdout.split("\n")[1].split()[:3] == after.stdout.split("\n")[1].split()[:3]


def test_get_watch_prints_each_change_and_wait_exits_like_kubectl(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`get -w` prints a new row as a job moves; `wait` exits 0 when met and 1 on timeout."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    daemon.start()
    wait_for(lambda: "s" in published(state_dir, "slots"))
    printed = tmp_path / "watch.out"

    def phases() -> list[str]:
        lines = printed.read_text().splitlines()
        return [line.split()[2] for line in lines if line.split()[:1] == ["q"]]

    with open(printed, "w") as out:
        watch = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "get", "jobs", "-w", "--state-dir", state_dir],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        time.sleep(1.5)
        (specs / "job-q.yaml").write_text(
            "apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {name: q}\n"
            "spec:\n  slot: s\n  command: [sh, -c, 'sleep 3']\n"
        )
        met = wnr(
            "wait", "job/q", "--for=phase=Succeeded", "--timeout", "20", "--state-dir", state_dir
        )
        assert (0, "job/q condition met\n") == (met.returncode, met.stdout)
        # The watcher polls on its own: give it until it has printed the last change too.
        wait_for(lambda: phases()[-1:] == ["Succeeded"], timeout=20)
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    assert "Running" in phases()
    late = wnr("wait", "job/q", "--for=phase=Failed", "--timeout", "0.5", "--state-dir", state_dir)
    assert 1 == late.returncode
    assert "waiting for Job/q to be phase=Failed: it is Succeeded/Completed" in late.stderr
    bad = wnr("wait", "job/q", "--for=done", "--state-dir", state_dir)
    assert 1 == bad.returncode
    assert "invalid --for 'done'" in bad.stderr
    assert 0 == daemon.terminate()


def test_status_files_are_written_only_when_they_change(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Passes every 0.1 s over a settled node rewrite no published status file."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_slot(specs, "s")
    (specs / "jobs.yaml").write_text(JOBS)
    process = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    process.args += ["--resync", "0.1"]
    process.start()
    try:
        wait_for(lambda: all(record(state_dir, n)["phase"] == "running" for n in "ab"))
        wait_for(lambda: {"a", "b"} <= set(published(state_dir)))
        time.sleep(1.0)
        files = sorted((state_dir / "status").rglob("*.json"))
        before = {p: p.stat().st_mtime_ns for p in files}
        time.sleep(2.0)
        assert before == {p: p.stat().st_mtime_ns for p in files}
        assert 0 == process.terminate()
    finally:
        process.kill()
