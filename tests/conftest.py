"""Shared fixtures: a uniquely named cgroup root on the real cgroup2 mount, removed even on failure."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.host.process import WRAPPER
from reconciler.observe.mounts import cgroup2_mounts
from tests.helpers import DaemonProcess

# The daemon's members of a record, as apply passes them to the wrapper.
WRAPPER_BASE = '"gpus": ["0"], "spawnedAt": 100.5'


def _mount() -> Path:
    mounts = cgroup2_mounts()
    if not mounts:
        pytest.fail("no cgroup2 mount on this machine: the real-cgroup tests cannot run")
    return mounts[-1]


def remove_tree(root: Path) -> None:
    """Kill everything under a test root, then rmdir it bottom-up (children first)."""
    if not root.exists():
        return
    kill = root / "cgroup.kill"
    if kill.exists():
        kill.write_text("1")
    deadline = time.monotonic() + 5.0
    while True:
        dirs = sorted(
            (Path(d) for d, _, _ in os.walk(root)), key=lambda p: len(p.parts), reverse=True
        )
        busy = False
        for directory in dirs:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                busy = True
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if root.exists():
        raise RuntimeError(f"could not remove test cgroup {root}")


def make_cgroup_root() -> Path:
    """A unique path for wnr's root under the cgroup2 mount, not yet created; the caller
    removes it with `remove_tree`."""
    if os.geteuid() != 0:
        pytest.fail("the real-cgroup tests need root (they create cgroups under the cgroup2 mount)")
    return _mount() / f"wnr-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cgroup_root() -> Iterator[Path]:
    """A path for wnr's root under the cgroup2 mount, unique to this test, not yet created."""
    root = make_cgroup_root()
    try:
        yield root
    finally:
        remove_tree(root)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A private state dir for one test."""
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def daemon(cgroup_root: Path, state_dir: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon on a fresh spec dir, killed after the test (before the cgroup root is removed)."""
    specs = tmp_path / "specs"
    specs.mkdir()
    process = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def wrapper_job(cgroup_root: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """For running the wrapper by hand: a job cgroup's cgroup.procs, a record path and a
    working directory."""
    cgroup_root.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    return cgroup_root / "cgroup.procs", tmp_path / "attempt-1.json", workdir


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs of the test's own under tmp_path, unmounted at the end."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def write_forever(fd: int) -> None:
    """Write zeros to a file until the write fails."""
    while True:
        os.write(fd, b"\0" * 4096)


def fill(directory: Path) -> Path:
    """Write a file until its file system is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left"):
            write_forever(fd)
    finally:
        os.close(fd)
    return filler


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `predicate()` until it is true; fail the test with its description otherwise."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if predicate():
                return
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {getattr(predicate, '__doc__', predicate)}")


def run_wrapper(
    record: Path,
    procs: Path,
    workdir: Path,
    *argv: str,
    base: str = WRAPPER_BASE,
    log: Path | None = None,
    max_size: int = 10 * 2**20,
    max_files: int = 2,
    wrapper: str = WRAPPER,
    credentials: str = "-",
    nofile: str = "-",
) -> subprocess.Popen[bytes]:
    """The wrapper as apply spawns it from the daemon: its own session, the signal
    dispositions of a Python process (SIGPIPE and SIGXFSZ ignored), /dev/null for its own
    output, and its log beside the record unless told otherwise."""
    log = log if log is not None else record.with_suffix(".log")
    limits = [str(log), str(max_size), str(max_files)]
    args = [wrapper, str(record), str(procs), str(workdir), base, *limits, credentials, nofile]
    args += ["--", *argv]
    return subprocess.Popen(
        args,
        start_new_session=True,
        restore_signals=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def load_record(record: Path) -> dict[str, Any]:
    """A record the wrapper wrote, which must always be valid JSON."""
    data = json.loads(record.read_bytes())
    assert isinstance(data, dict)
    return data
