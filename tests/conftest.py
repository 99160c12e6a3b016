"""Shared fixtures: a uniquely named cgroup root on the real cgroup2 mount, removed even on failure."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.mounts import cgroup2_mounts


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
