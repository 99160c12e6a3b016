"""The daemon's sleep: woken by real process exits, a real cgroup emptying, and its pipe."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
from pathlib import Path

from reconciler.daemon.waker import Waker


def test_a_watched_process_exit_ends_the_wait() -> None:
    """The wait ends when a watched process exits, long before its timeout."""
    waker = Waker()
    child = subprocess.Popen(["sleep", "0.2"])
    try:
        waker.watch_exit(child.pid)
        assert waker.wait(30.0)
    finally:
        child.wait()
        waker.close()


def test_exits_seen_in_one_wait_are_all_taken_by_the_next_pass() -> None:
    """Several watched processes ending before one wait wake it once, and the exit watch the pass reads names every one of them."""
    waker = Waker()
    children = [subprocess.Popen(["true"]) for _ in range(3)]
    try:
        for child in children:
            waker.watch_exit(child.pid)
        for child in children:
            child.wait()
        assert waker.wait(30.0)
        assert {c.pid for c in children} == waker.exits.take_exited()
        assert 0 == len(waker.exits)
        assert not waker.wait(0.05)
    finally:
        waker.close()


def test_nothing_watched_times_out() -> None:
    """With no event the wait ends at its timeout and says it was not woken."""
    waker = Waker()
    child = subprocess.Popen(["sleep", "600"])
    try:
        waker.watch_exit(child.pid)
        assert not waker.wait(0.05)
    finally:
        child.kill()
        child.wait()
        waker.close()


def test_a_process_already_gone_wakes_once() -> None:
    """A PID gone before it is watched wakes the next wait, and only that one."""
    waker = Waker()
    child = subprocess.Popen(["true"])
    child.wait()
    try:
        waker.watch_exit(child.pid)
        assert waker.wait(30.0)
        waker.watch_exit(child.pid)
        assert not waker.wait(0.05)
    finally:
        waker.close()


def test_wake_from_another_thread_ends_the_wait() -> None:
    """`wake` from another thread (the spec watcher) ends the wait."""
    waker = Waker()
    timer = threading.Timer(0.1, waker.wake)
    timer.start()
    try:
        assert waker.wait(30.0)
        assert not waker.wait(0.05)  # the pipe was drained
    finally:
        timer.cancel()
        waker.close()


def test_an_emptying_cgroup_ends_the_wait(cgroup_root: Path) -> None:
    """The kernel's cgroup.events notification ends the wait when the cgroup's last process dies."""
    cgroup_root.mkdir()
    child = subprocess.Popen(["sleep", "600"])
    waker = Waker()
    try:
        (cgroup_root / "cgroup.procs").write_text(str(child.pid))
        waker.watch_emptying([str(cgroup_root / "cgroup.events")])
        assert not waker.wait(0.05)
        threading.Timer(0.1, os.kill, (child.pid, signal.SIGKILL)).start()
        assert waker.wait(30.0)
        assert b"populated 0" in (cgroup_root / "cgroup.events").read_bytes()
    finally:
        child.kill()
        child.wait()
        waker.close()


def test_an_already_empty_cgroup_wakes_at_once(cgroup_root: Path) -> None:
    """A cgroup that emptied before it was watched does not wait for a notification."""
    cgroup_root.mkdir()
    waker = Waker()
    try:
        waker.watch_emptying([str(cgroup_root / "cgroup.events")])
        assert waker.wait(30.0)
        waker.watch_emptying([])
    finally:
        waker.close()


def test_descriptors_past_the_budget_are_not_taken() -> None:
    """The waker keeps 256 descriptors free for the daemon's reads: exits past its budget wake nothing."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    children = [subprocess.Popen(["sleep", "600"]) for _ in range(4)]
    resource.setrlimit(resource.RLIMIT_NOFILE, (256 + 2, hard))
    try:
        waker = Waker()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        for child in children:
            waker.watch_exit(child.pid)
        children[3].kill()
        children[3].wait()
        assert not waker.wait(0.2)
        children[0].kill()
        assert waker.wait(30.0)
    finally:
        for child in children:
            child.kill()
            child.wait()
        waker.close()
