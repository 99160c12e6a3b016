"""The state dir under faults, and one wnr per state dir and root: real daemons, cgroups, file systems.

The state dir sits on a 512 KiB tmpfs that each test mounts under its own
tmp_path (and unmounts after its daemon and jobs are gone) to fill it or make
it read-only; payloads append their job's name to a file outside the state dir,
so a payload run twice shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.apply.applier import Applier
from reconciler.apply.statekeeper import StateKeeper
from reconciler.doctor import Verdict, check_state_dir
from reconciler.host.atomicfile import write_json
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.eventlog import EventLog
from reconciler.host.nodelock import LockBusyError, NodeLock
from reconciler.host.statedir import AttemptRecord, JobRecords, StateDir, StateDirError
from reconciler.model.actions import FailureKind, ForgetJob, StartJob
from reconciler.model.event import Event
from reconciler.model.observed import Observed
from reconciler.plan.jobphase import Phase, job_view
from reconciler.reconcile import Reconciler
from reconciler.specs.loader import SpecLoader
from tests.conftest import wait_for
from tests.helpers import REPO, DaemonProcess, common, wnr, write_slot


@pytest.fixture
def statefs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of this test's own (50 jobs' records, objects and statuses fit), unmounted at the end."""
    mount = tmp_path / "statefs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "wnr-test", mount], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", mount], check=False).returncode != 0:
            subprocess.run(["umount", "-l", mount], check=False)


@pytest.fixture
def on_tmpfs(statefs: Path, cgroup_root: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon whose state dir is on `statefs`; stopped first, then the cgroups (and jobs)
    go, then the tmpfs (the fixtures' order)."""
    specs = tmp_path / "specs"
    specs.mkdir()
    process = DaemonProcess(specs, cgroup_root, statefs / "state", tmp_path / "daemon.log")
    try:
        yield process
    finally:
        process.kill()


def write_jobs(  # noqa: PLR0917 - one batch's settings
    specs: Path,
    batch: str,
    names: list[str],
    runs: Path,
    hold: Path | None = None,
    workdir: Path | None = None,
) -> None:
    """Jobs that append their name to `runs` (after `hold` exists, if given), in one file;
    they run in `workdir` when given, else in their own work dir inside the state dir."""
    wait = f"while [ ! -e {hold} ]; do sleep 0.05; done; " if hold is not None else ""
    where = f"  workingDir: {workdir}\n" if workdir is not None else ""
    docs = [
        textwrap.dedent(
            f"""\
            apiVersion: wnr.dev/v1alpha1
            kind: Job
            metadata: {{name: {name}}}
            spec:
              slot: s
              command: ["sh", "-c", {json.dumps(wait + f"echo $WNR_JOB >> {runs}")}]
            """
        )
        + where
        for name in names
    ]
    tmp = specs / f".{batch}.tmp"
    tmp.write_text("---\n".join(docs))
    tmp.rename(specs / f"jobs-{batch}.yaml")


def ran(runs: Path) -> Counter[str]:
    """How many times each payload ran."""
    return Counter(runs.read_text().split()) if runs.exists() else Counter()


def phase(state: Path, job: str) -> str:
    """The phase of a job's first attempt record ("" while it has none)."""
    try:
        return str(json.loads((state / "jobs" / job / "attempt-1.json").read_text())["phase"])
    except (FileNotFoundError, ValueError):
        return ""


def published(state: Path, job: str) -> str:
    """The phase the daemon last published for a job ("" before it has)."""
    try:
        status = json.loads((state / "status" / "jobs" / f"{job}.json").read_text())["status"]
    except (FileNotFoundError, ValueError, KeyError):
        return ""
    return str(status.get("phase", ""))


def node_events(state: Path) -> list[str]:
    """The reasons of the Node's events."""
    lines = (state / "events.jsonl").read_text().splitlines()
    return [e["reason"] for e in map(json.loads, lines) if e["object"] == "Node"]


def fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free (none at all for 0)."""
    info = os.statvfs(mount)
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as out:
        out.write(b"\0" * max(0, info.f_bfree * info.f_frsize - leave))
        with contextlib.suppress(OSError):  # ENOSPC at the last byte
            while leave == 0:
                out.write(b"\0" * 4096)
    return filler


def test_second_daemon_and_apply_are_refused_and_every_job_runs_once(
    daemon: DaemonProcess, cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A second `wnr run` on the same state dir or root, and `wnr apply`, exit 1 naming the holder."""
    specs, runs = tmp_path / "specs", tmp_path / "runs"
    write_slot(specs, "s")
    daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    wait_for(lambda: json.loads((state_dir / "wnr.lock").read_text())["pid"] == pid)
    names = [f"j{i}" for i in range(20)]
    write_jobs(specs, "a", names, runs)
    flags = common(specs, cgroup_root, state_dir)
    second = wnr("run", *flags, check=1)
    assert f"another wnr (pid {pid}) holds the state dir {state_dir}" in second.stderr
    other_state = tmp_path / "other-state"
    by_root = wnr("run", *common(specs, cgroup_root, other_state), check=1)
    assert f"another wnr (pid {pid}) manages the cgroup root {cgroup_root}" in by_root.stderr
    refused = wnr("apply", *flags, check=1)
    assert f"pid {pid}" in refused.stderr
    wnr("get", "jobs", *flags, check=0)  # read-only commands take no lock
    wait_for(lambda: all(phase(state_dir, n) == "exited" for n in names), timeout=30)
    assert daemon.proc.poll() is None
    time.sleep(0.5)
    assert Counter(names) == ran(runs)
    assert 0 == daemon.terminate()


def test_a_full_state_dir_holds_starts_and_they_resume_once_freed(
    on_tmpfs: DaemonProcess, statefs: Path, cgroup_root: Path, tmp_path: Path
) -> None:
    """ENOSPC: nothing starts while full, the condition shows and clears, every payload runs once."""
    specs, runs, state = tmp_path / "specs", tmp_path / "runs", statefs / "state"
    write_slot(specs, "s")
    on_tmpfs.start()
    first = [f"a{i}" for i in range(10)]
    write_jobs(specs, "a", first, runs)
    wait_for(lambda: all(phase(state, n) == "exited" for n in first), timeout=30)
    # Room for a few more jobs' records: the state dir fills up while the next ones start.
    filler = fill(statefs, 48 * 1024)
    rest = [f"b{i}" for i in range(40)]
    write_jobs(specs, "b", rest, runs)
    flags = common(specs, cgroup_root, state)
    wait_for(lambda: "StateDirWritable=False (NoSpace)" in wnr("get", "slots", *flags).stderr)
    waiting = json.loads(wnr("get", "jobs", rest[-1], *flags, "-o", "json").stdout)["status"]
    assert "Pending" == waiting["phase"]
    assert "StateDirWritable" in [c["type"] for c in waiting["conditions"]]
    while_full = ran(runs)
    assert 10 <= sum(while_full.values()) < 20
    time.sleep(1.5)
    assert while_full == ran(runs)  # nothing started while full
    filler.unlink()
    wait_for(lambda: all(phase(state, n) == "exited" for n in first + rest), timeout=40)
    time.sleep(0.5)
    assert Counter(first + rest) == ran(runs)
    for name in first + rest:
        assert ["attempt-1.json"] == [p.name for p in (state / "jobs" / name).glob("*.json")]
    assert "StateDirWritable=False" not in wnr("get", "slots", *flags).stderr
    wait_for(lambda: node_events(state)[-2:] == ["StateDirUnwritable", "StateDirWritable"])
    assert 0 == on_tmpfs.terminate()


def test_a_read_only_state_dir_holds_starts_until_it_is_writable_again(
    on_tmpfs: DaemonProcess, statefs: Path, cgroup_root: Path, tmp_path: Path
) -> None:
    """EROFS: no job starts while the tmpfs is read-only; they all start, once, when it is not.

    (A running job's log is open for writing, which makes the kernel refuse the remount,
    so it is done between jobs.)"""
    specs, runs, state = tmp_path / "specs", tmp_path / "runs", statefs / "state"
    write_slot(specs, "s")
    on_tmpfs.start()
    write_jobs(specs, "a", ["a0"], runs)
    wait_for(
        lambda: phase(state, "a0") == "exited" and not (cgroup_root / "slot.s/job.a0").exists()
    )
    subprocess.run(["mount", "-o", "remount,ro", statefs], check=True)
    names = [f"b{i}" for i in range(5)]
    try:
        write_jobs(specs, "b", names, runs)
        flags = common(specs, cgroup_root, state)
        wait_for(lambda: "StateDirWritable=False (ReadOnly)" in wnr("get", "slots", *flags).stderr)
        time.sleep(1.5)
        assert Counter(["a0"]) == ran(runs)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", statefs], check=True)
    wait_for(lambda: all(phase(state, n) == "exited" for n in names), timeout=30)
    time.sleep(0.5)
    assert Counter(["a0", *names]) == ran(runs)
    wait_for(lambda: node_events(state)[-2:] == ["StateDirUnwritable", "StateDirWritable"])
    assert 0 == on_tmpfs.terminate()


def delete_under_writers(path: Path) -> None:
    """rm -rf while the daemon and wrappers write in it: a directory refilled between the
    removal of its entries and its own rmdir (ENOTEMPTY) is removed again."""
    for _ in range(20):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
    shutil.rmtree(path)


def test_a_state_dir_deleted_under_the_daemon_is_recreated_and_nothing_runs_twice(
    daemon: DaemonProcess, cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """rmtree of the state dir: the daemon recreates it, restores what it had seen, reruns nothing."""
    specs, runs, go = tmp_path / "specs", tmp_path / "runs", tmp_path / "go"
    daemon.args += ["--resync", "0.5"]
    write_slot(specs, "s")
    daemon.start()
    done, held = [f"d{i}" for i in range(5)], [f"h{i}" for i in range(3)]
    write_jobs(specs, "d", done, runs)
    write_jobs(specs, "h", held, runs, hold=go)
    # What the daemon has seen (its published phases), not only what the wrappers wrote: an
    # end the daemon never read goes with the deleted directory (RecordsLost, never rerun).
    wait_for(lambda: all(published(state_dir, n) == "Succeeded" for n in done), timeout=30)
    wait_for(lambda: all(published(state_dir, n) == "Running" for n in held), timeout=30)
    wait_for((state_dir / "objects" / "jobs" / "d0.json").exists)
    uid = json.loads((state_dir / "objects" / "jobs" / "d0.json").read_text())["uid"]
    delete_under_writers(state_dir)
    wait_for(lambda: all(phase(state_dir, n) == "exited" for n in done), timeout=15)
    # What the daemon last read: `running`, or `starting` if it had not looked since.
    wait_for(lambda: all(phase(state_dir, n) in ("starting", "running") for n in held))
    go.touch()
    write_jobs(specs, "after", ["after"], runs)
    wait_for(lambda: all(phase(state_dir, n) == "exited" for n in [*held, "after"]), timeout=30)
    time.sleep(1.0)
    assert Counter([*done, *held, "after"]) == ran(runs)
    flags = common(specs, cgroup_root, state_dir)
    shown = wnr("get", "jobs", *flags, "-o", "json", check=0)
    assert "" == shown.stderr  # the daemon published again, and wrote its record again
    listed = json.loads(shown.stdout)["items"]
    assert uid == next(j for j in listed if j["metadata"]["name"] == "d0")["metadata"]["uid"]
    assert {
        (j["metadata"]["name"], j["status"]["phase"], j["status"]["attempts"]) for j in listed
    } == {(n, "Succeeded", 1) for n in [*done, *held, "after"]}
    assert "StateDirRecreated" in node_events(state_dir)
    assert daemon.proc is not None
    assert daemon.proc.pid == json.loads((state_dir / "wnr.lock").read_text())["pid"]
    assert 0 == daemon.terminate()


def test_a_state_dir_deleted_right_after_the_pass_that_started_jobs_starts_none_again(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """The attempts a pass began are known before any pass reads them back: deleted at once,
    they are restored, never started a second time."""
    specs, runs, go, work = tmp_path / "specs", tmp_path / "runs", tmp_path / "go", tmp_path / "w"
    specs.mkdir()
    work.mkdir()
    write_slot(specs, "s")
    quick, held = ["q0", "q1"], ["h0"]
    # Outside the state dir: a wrapper that has not yet entered its own work dir when the
    # state dir goes fails to start (and is retried, rightly: its payload never ran).
    write_jobs(specs, "q", quick, runs, workdir=work)
    write_jobs(specs, "h", held, runs, hold=go, workdir=work)
    reconciler = Reconciler(SpecLoader([specs]), CgroupFS(cgroup_root), StateDir(state_dir))
    started = [a.job for a in reconciler.run_pass().plan.actions if isinstance(a, StartJob)]
    assert sorted([*quick, *held]) == sorted(started)
    delete_under_writers(state_dir)
    go.touch()
    again: list[str] = []
    for _ in range(200):
        result = reconciler.run_pass()
        again += [a.job for a in result.plan.actions if isinstance(a, StartJob)]
        if Counter([*quick, *held]) == ran(runs) and not result.plan.actions:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert [] == again
    assert Counter([*quick, *held]) == ran(runs)


def test_a_write_on_a_full_file_system_leaves_no_trace_and_spawns_nothing(
    statefs: Path, cgroup_root: Path
) -> None:
    """write_json removes its temporary file; an attempt that cannot be recorded is not spawned."""
    state = StateDir(statefs / "state")
    state.jobs.mkdir(parents=True)
    (statefs / "state" / "kept.json").write_text('{"old": 1}')
    fill(statefs, 0)
    with pytest.raises(OSError, match="No space left"):
        write_json(str(statefs / "state" / "kept.json"), {"new": "x" * 10000})
    assert '{"old": 1}' == (statefs / "state" / "kept.json").read_text()
    with pytest.raises(StateDirError, match="ENOSPC"):
        state.begin_attempt("a", 1, time.time())
    assert [] == [p for p in (statefs / "state").rglob("*") if p.name.endswith(".tmp")]
    assert not state.attempt_path("a", 1).exists()
    applier = Applier(CgroupFS(cgroup_root), state, time.time)
    starts = [StartJob(f"Job/{n}", f"slot.s/job.{n}", job=n, argv=("true",)) for n in "ab"]
    failures = applier.apply(starts)
    assert [] == applier.spawned
    assert applier.fault is not None
    assert "NoSpace" == applier.fault.reason
    assert [FailureKind.STATE_DIR] * 2 == [f.kind for f in failures]
    assert not state.attempt_path("a", 1).exists()
    # After a spawn, a PID file that cannot be written fails nothing: the PID is in memory.
    record = state.attempt_path("c", 1)
    applier._note_wrapper(record, 4242)  # the step after a spawn
    assert 4242 == state.spawned_pid(record)
    assert not record.with_suffix(".pid").exists()


def test_an_event_batch_cut_short_by_a_full_disk_is_taken_back(statefs: Path) -> None:
    """An append that fails part-way on ENOSPC leaves the log as it was, whole lines only."""
    log = EventLog(statefs / "state")
    first = Event(1.0, "Node", "Warning", "StateDirUnwritable", "full")
    log.append([first])
    before = log.path.read_bytes()
    filler = fill(statefs, 0)  # the log's page has room left: the next write is partial
    batch = [Event(2.0 + i, f"Job/j{i}", "Normal", "Started", "x" * 200) for i in range(40)]
    with pytest.raises(OSError, match="No space left"):
        log.append(batch)
    assert before == log.path.read_bytes()
    filler.unlink()
    log.append(batch[:1])
    assert [first, batch[0]] == log.read()
    assert all(json.loads(line) for line in log.path.read_text().splitlines())


def test_the_lock_names_its_holder(state_dir: Path, cgroup_root: Path) -> None:
    """A second lock on the same state dir or root is refused at once with the holder's PID."""
    held = NodeLock(state_dir, cgroup_root, "run").acquire()
    try:
        with pytest.raises(LockBusyError, match=f"pid {os.getpid()}"):
            NodeLock(state_dir / "elsewhere", cgroup_root, "run").acquire()
        with pytest.raises(LockBusyError, match=f"pid {os.getpid()}"):
            NodeLock(state_dir, cgroup_root.with_name(cgroup_root.name + "-b"), "apply").acquire()
    finally:
        held.release()
        remove = cgroup_root.with_name(cgroup_root.name + "-b")
        if remove.exists():
            remove.rmdir()
    NodeLock(state_dir, cgroup_root, "run").acquire().release()


def test_a_restored_attempt_that_ended_unrecorded_is_records_lost_and_not_retried() -> None:
    """An attempt put back from memory whose wrapper is gone may have run: Failed, never again."""
    for phase_name in ("starting", "running"):
        last = AttemptRecord(1, phase_name, 100.0, restored_at=110.0, wrapper_alive=False)
        view = job_view(JobRecords((last,)), None, 3, 200.0)
        assert (Phase.Failed, "RecordsLost", 1) == (view.phase, view.reason, view.attempts)
    alive = AttemptRecord(1, "starting", 100.0, restored_at=110.0, wrapper_alive=True)
    assert Phase.Starting == job_view(JobRecords((alive,)), None, 3, 101.0).phase


def test_the_keeper_puts_lost_records_back_and_forgets_deleted_jobs(tmp_path: Path) -> None:
    """Records gone since the last pass come back (on disk too); a ForgetJob ends that."""
    state = StateDir(tmp_path / "state")
    state.begin_attempt("a", 1, 100.0)
    keeper = StateKeeper(state)
    seen = Observed("/r", None, frozenset(), records=state.read_all())
    keeper.before_plan(seen, 101.0)
    shutil.rmtree(state.root)
    assert keeper.recreate(102.0)
    back = keeper.before_plan(Observed("/r", None, frozenset(), records=state.read_all()), 102.0)
    assert 102.0 == back.records["a"].attempts[0].restored_at
    assert 102.0 == json.loads(state.attempt_path("a", 1).read_text())["restoredAt"]
    reasons = [e.reason for e in keeper.take_events()]
    assert ["StateDirRecreated", "RecordsLost"] == reasons
    keeper.after_apply((ForgetJob("Job/a", "", job="a"),), None, 103.0)
    state.forget("a")
    gone = keeper.before_plan(Observed("/r", None, frozenset(), records=state.read_all()), 104.0)
    assert "a" not in gone.records


def test_doctor_checks_that_the_state_dir_can_record(statefs: Path, tmp_path: Path) -> None:
    """`wnr doctor`: ok with room, FAIL with a hint when full or read-only."""
    state = statefs / "state"
    state.mkdir()
    assert Verdict.ok == check_state_dir(state).verdict
    filler = fill(statefs, 512 * 1024)
    small = check_state_dir(state)  # 512 KiB: records for a few hundred jobs at most
    assert (Verdict.warn, "free space") == (small.verdict, small.hint[:10])
    assert Verdict.ok == check_state_dir(tmp_path / "new").verdict
    filler.unlink()
    filler = fill(statefs, 0)
    full = check_state_dir(state)
    assert (Verdict.fail, "ENOSPC") == (full.verdict, full.detail.split()[1])
    assert "free space" in full.hint
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", statefs], check=True)
    try:
        read_only = check_state_dir(state)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", statefs], check=True)
    assert Verdict.fail == read_only.verdict
    assert "remount" in read_only.hint


def test_doctor_reports_a_state_dir_its_user_cannot_reach(tmp_path: Path) -> None:
    """Run as uid 65534, the state-dir check of a dir below a root-only parent fails with a hint instead of raising."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    tmp_path.chmod(0o755)
    code = (
        "from pathlib import Path; from reconciler.doctor import check_state_dir; "
        f"print(check_state_dir(Path({str(private / 'state')!r})))"
    )
    result = subprocess.run(
        [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert 0 == result.returncode, result.stderr
    assert f"{private / 'state'} cannot be reached: Permission denied" in result.stdout
