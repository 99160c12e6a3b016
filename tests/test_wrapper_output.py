"""The C job wrapper's output pipe and its retried records: rotation, prompt exits, full and vanished state dirs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.host.process import WRAPPER
from tests.conftest import fill, load_record, run_wrapper, wait_for

ROTATED = b"wnr-wrapper: log rotated"
# A payload that waits for `go` in its working directory, so a test can act before it ends.
WAIT_FOR_GO = "while [ ! -e go ]; do sleep 0.02; done"


def log_files(log: Path) -> list[Path]:
    """The log and its rotated files, oldest first."""
    rotated = sorted(log.parent.glob(f"{log.name}.*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, log] if log.exists() else rotated


def without_marker(data: bytes) -> bytes:
    """A log file's payload output: the rotation marker the wrapper puts first taken off."""
    if data.startswith(ROTATED):
        return data.split(b"\n", 1)[1]
    return data


def alive(pid: int) -> bool:
    """Whether a process exists (the wrapper reaps its payload at once, so no zombie lingers)."""
    return Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module", params=["pidfd", "sigchld"])
def wrapper_binary(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The installed wrapper (pidfd), and one built without pidfd_open (the SIGCHLD self-pipe of kernels before 5.3)."""
    if request.param == "pidfd":
        return WRAPPER
    binary = tmp_path_factory.mktemp("wrapper") / "wnr-wrapper"
    wrapper_dir = Path(__file__).resolve().parent.parent / "reconciler" / "host" / "wrapper"
    sources = [str(source) for source in sorted(wrapper_dir.glob("*.c"))]
    command = ["cc", "-O2", "-std=gnu99", "-DWNR_NO_PIDFD", "-o", str(binary), *sources]
    subprocess.run(command, check=True)
    return str(binary)


def stop(wrapper: subprocess.Popen[bytes]) -> None:
    """SIGKILL a wrapper this test started, if it still runs, so its file system can be unmounted."""
    if wrapper.poll() is None:
        wrapper.kill()
        wrapper.wait(timeout=10)


def test_output_far_beyond_max_size_keeps_max_files_files_ending_with_the_last_output(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """1.3 MB of output with maxSize 16Ki and maxFiles 3 leaves 3 files of at most 16Ki that hold the stream's tail."""
    procs, record, workdir = wrapper_job
    log = record.with_suffix(".log")
    wrapper = run_wrapper(record, procs, workdir, "seq", "1", "200000", max_size=16384, max_files=3)
    assert 0 == wrapper.wait(timeout=30)
    files = log_files(log)
    assert [f"{log.name}.2", f"{log.name}.1", log.name] == [p.name for p in files]
    assert all(p.stat().st_size <= 16384 for p in files), [p.stat().st_size for p in files]
    assert all(p.read_bytes().startswith(ROTATED) for p in files)
    kept = b"".join(without_marker(p.read_bytes()) for p in files)
    stream = "".join(f"{i}\n" for i in range(1, 200001)).encode()
    assert len(kept) > 2 * (16384 - 100)  # two full files and the current one
    assert stream[-len(kept) :] == kept
    assert 0 == load_record(record)["exitCode"]


def test_one_file_is_emptied_when_full_and_says_so(wrapper_job: tuple[Path, Path, Path]) -> None:
    """With maxFiles 1 the log is started afresh at maxSize, with a line saying earlier output was discarded."""
    procs, record, workdir = wrapper_job
    log = record.with_suffix(".log")
    script = "seq 1 50000; echo the-end"
    assert 0 == run_wrapper(
        record, procs, workdir, "sh", "-c", script, max_files=1, max_size=8192
    ).wait(timeout=30)
    assert [log] == log_files(log)
    data = log.read_bytes()
    assert len(data) <= 8192
    assert data.startswith(b"wnr-wrapper: log rotated; earlier output was discarded (maxFiles 1)\n")
    assert data.endswith(b"49999\n50000\nthe-end\n")


def test_a_grandchild_holding_the_pipe_open_does_not_delay_the_recorded_end(
    wrapper_job: tuple[Path, Path, Path], wrapper_binary: str
) -> None:
    """A payload that exits leaving a setsid grandchild with its stdout is recorded within a second, output kept."""
    procs, record, workdir = wrapper_job
    script = "(setsid sh -c 'echo $$ > grandchild.pid; exec sleep 60' &); echo parent-done; exit 4"
    began = time.monotonic()
    wrapper = run_wrapper(record, procs, workdir, "sh", "-c", script, wrapper=wrapper_binary)
    try:
        assert 0 == wrapper.wait(timeout=30)
        elapsed = time.monotonic() - began
        wait_for(lambda: (workdir / "grandchild.pid").read_text().strip())
        assert alive(int((workdir / "grandchild.pid").read_text()))
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((workdir / "grandchild.pid").read_text()), signal.SIGKILL)
    assert elapsed < 1.0
    assert 4 == load_record(record)["exitCode"]
    assert b"parent-done\n" == record.with_suffix(".log").read_bytes()


def test_a_full_state_dir_holds_the_end_record_until_space_returns(
    wrapper_job: tuple[Path, Path, Path], small_fs: Path
) -> None:
    """On a full state dir the payload still exits (its output counted), the wrapper waits alive, and the end record lands once space is freed."""
    procs, _, workdir = wrapper_job
    record = small_fs / "jobs" / "x" / "attempt-1.json"
    record.parent.mkdir(parents=True)
    script = f"{WAIT_FOR_GO}; head -c 1000000 /dev/zero; echo last-line; exit 3"
    wrapper = run_wrapper(record, procs, workdir, "sh", "-c", script)
    try:
        wait_for(lambda: load_record(record)["phase"] == "running")
        payload = load_record(record)["pid"]
        filler = fill(small_fs)
        (workdir / "go").touch()
        wait_for(lambda: not alive(payload))
        time.sleep(0.5)
        assert ("running", None) == (load_record(record)["phase"], wrapper.poll())
        filler.unlink()
        assert 0 == wrapper.wait(timeout=30)
    finally:
        stop(wrapper)
    ended = load_record(record)
    assert ("exited", 3) == (ended["phase"], ended["exitCode"])
    lines = record.with_suffix(".log").read_text().splitlines()
    assert "wnr-wrapper: 1000010 bytes of output dropped: No space left on device" == lines[0]
    assert [] == [p.name for p in record.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_payload_waits_at_its_gate_until_running_is_recorded(
    wrapper_job: tuple[Path, Path, Path], small_fs: Path
) -> None:
    """While the running record cannot be written the payload does not run and the wrapper waits alive; then both go ahead."""
    procs, _, workdir = wrapper_job
    record = small_fs / "attempt-1.json"
    filler = fill(small_fs)
    wrapper = run_wrapper(record, procs, workdir, "touch", "ran")
    try:
        time.sleep(0.5)
        assert (False, False, None) == (record.exists(), (workdir / "ran").exists(), wrapper.poll())
        assert 2 == len(procs.read_text().split())  # the wrapper and its gated child
        filler.unlink()
        assert 0 == wrapper.wait(timeout=30)
    finally:
        stop(wrapper)
    assert ("exited", 0) == (load_record(record)["phase"], load_record(record)["exitCode"])
    assert (workdir / "ran").exists()


def test_a_record_directory_deleted_under_a_running_wrapper_is_recreated(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """Deleting the state dir's job directory while the payload runs does not lose its end record."""
    procs, record, workdir = wrapper_job
    record = record.parent / "state" / "jobs" / "x" / "attempt-1.json"
    record.parent.mkdir(parents=True)
    wrapper = run_wrapper(record, procs, workdir, "sh", "-c", f"{WAIT_FOR_GO}; exit 5")
    wait_for(lambda: load_record(record)["phase"] == "running")
    shutil.rmtree(record.parent.parent.parent)
    (workdir / "go").touch()
    assert 0 == wrapper.wait(timeout=30)
    ended = load_record(record)
    assert ("exited", 5, 100.5) == (ended["phase"], ended["exitCode"], ended["spawnedAt"])
