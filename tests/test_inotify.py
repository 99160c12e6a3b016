"""Spec directory events: real inotify wakes the daemon's wait; watchfiles polling where it cannot."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.inotify import DirWatch
from reconciler.daemon.loop import Daemon
from reconciler.daemon.waker import Waker
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.statedir import StateDir
from reconciler.reconcile import Reconciler
from reconciler.specs.loader import SpecLoader
from tests.conftest import wait_for
from tests.helpers import DaemonProcess, job_text, record, write_slot


@pytest.fixture
def woken(tmp_path: Path) -> Iterator[tuple[DirWatch, Waker]]:
    """A DirWatch in a Waker's poll set, both closed afterwards."""
    dirs, waker = DirWatch(), Waker()
    waker.add_reader(dirs.fd, dirs.drain)
    try:
        yield dirs, waker
    finally:
        dirs.close()
        waker.close()


def test_a_written_spec_file_wakes_the_wait(woken: tuple[DirWatch, Waker], tmp_path: Path) -> None:
    """Closing a file after writing it in a watched directory ends the wait; the events are drained."""
    dirs, waker = woken
    dirs.ensure([str(tmp_path)])
    assert not waker.wait(0.05)
    (tmp_path / "job.yaml").write_text("kind: Job\n")
    assert waker.wait(30.0)
    assert not waker.wait(0.05)


def test_rename_delete_and_chmod_wake_the_wait(
    woken: tuple[DirWatch, Waker], tmp_path: Path
) -> None:
    """An atomic rename into the directory, a deletion and a mode change each end the wait."""
    dirs, waker = woken
    outside = tmp_path / "outside"
    outside.mkdir()
    specs = tmp_path / "specs"
    specs.mkdir()
    (outside / "a.yaml").write_text("{}\n")
    dirs.ensure([str(specs)])
    os.rename(outside / "a.yaml", specs / "a.yaml")
    assert waker.wait(30.0)
    (specs / "a.yaml").chmod(0o600)
    assert waker.wait(30.0)
    (specs / "a.yaml").unlink()
    assert waker.wait(30.0)
    assert not waker.wait(0.05)


def test_a_replaced_directory_is_watched_again(
    woken: tuple[DirWatch, Waker], tmp_path: Path
) -> None:
    """A spec directory deleted and created anew is watched again after the next ensure."""
    dirs, waker = woken
    specs = tmp_path / "specs"
    specs.mkdir()
    dirs.ensure([str(specs)])
    specs.rmdir()
    assert waker.wait(30.0)
    specs.mkdir()
    dirs.ensure([str(specs)])
    (specs / "b.yaml").write_text("{}\n")
    assert waker.wait(30.0)


def test_without_inotify_watchfiles_polling_wakes_the_wait(
    tmp_path: Path, cgroup_root: Path, state_dir: Path
) -> None:
    """The fallback (watchfiles polling the spec directory) also turns a new file into a wake-up."""
    specs = tmp_path / "specs"
    specs.mkdir()
    reconciler = Reconciler(SpecLoader([specs]), CgroupFS(cgroup_root), StateDir(state_dir))
    daemon = Daemon(reconciler, [specs])
    thread = threading.Thread(target=daemon._poll_specs, daemon=True)
    thread.start()
    try:
        assert not daemon.waker.wait(1.0)
        (specs / "c.yaml").write_text("{}\n")
        assert daemon.waker.wait(30.0)
    finally:
        daemon.stop.set()
        thread.join(timeout=10)
        daemon.waker.close()


def test_a_file_being_written_wakes_only_once_closed(
    woken: tuple[DirWatch, Waker], tmp_path: Path
) -> None:
    """Creating a spec file does not end the wait (half a spec would be read); closing it does."""
    dirs, waker = woken
    dirs.ensure([str(tmp_path)])
    fd = os.open(tmp_path / "half.yaml", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"kind: Job\n")
        assert not waker.wait(0.2)
    finally:
        os.close(fd)
    assert waker.wait(30.0)


def test_links_wake_the_wait_and_subdirectories_do_not(
    woken: tuple[DirWatch, Waker], tmp_path: Path
) -> None:
    """A symbolic or hard link arrives whole and ends the wait; a new subdirectory is not a spec."""
    dirs, waker = woken
    specs, outside = tmp_path / "specs", tmp_path / "outside"
    specs.mkdir()
    outside.mkdir()
    (outside / "a.yaml").write_text("{}\n")
    dirs.ensure([str(specs)])
    (specs / "sub").mkdir()
    assert not waker.wait(0.2)
    (specs / "a.yaml").symlink_to(outside / "a.yaml")
    assert waker.wait(30.0)
    os.link(outside / "a.yaml", specs / "b.yaml")
    assert waker.wait(30.0)


def test_a_path_inotify_refuses_is_returned(woken: tuple[DirWatch, Waker], tmp_path: Path) -> None:
    """A path the kernel will not watch as a directory is handed back (the daemon then polls it)."""
    dirs, _waker = woken
    plain = tmp_path / "not-a-directory"
    plain.write_text("")
    assert [str(plain)] == dirs.ensure([str(tmp_path), str(plain), str(tmp_path / "absent")])


def test_take_changed_says_what_a_pass_must_look_at(tmp_path: Path) -> None:
    """take_changed is True at first, after an event that matters and for a directory replaced, absent or refused; False otherwise."""
    dirs = DirWatch()
    try:
        specs = tmp_path / "specs"
        specs.mkdir()
        dirs.ensure([str(specs)])
        assert [True, False] == [dirs.take_changed(), dirs.take_changed()]
        (specs / "sub").mkdir()  # not a spec: no change
        (specs / "a.yaml").write_text("kind: Job\n")  # queued, not yet read: read by the call
        assert [True, False] == [dirs.take_changed(), dirs.take_changed()]
        (specs / "sub").rmdir()
        (specs / "a.yaml").unlink()
        specs.rmdir()
        specs.mkdir()
        dirs.ensure([str(specs)])  # watched anew: what it holds came unwatched
        assert [True, False] == [dirs.take_changed(), dirs.take_changed()]
        plain = tmp_path / "plain"
        plain.write_text("")
        for _ in range(2):  # refused, and absent: every pass must look
            dirs.ensure([str(specs), str(plain), str(tmp_path / "absent")])
            assert dirs.take_changed()
    finally:
        dirs.close()


def test_a_change_inotify_cannot_see_is_loaded_at_the_resync(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A spec symlinked to a file outside the watched directory: the job written into the target runs once the resync relists."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("")
    write_slot(daemon.specs, "s")
    (daemon.specs / "linked.yaml").symlink_to(outside)
    daemon.args += ["--resync", "1"]
    daemon.start()
    wait_for((state_dir / "status").is_dir)
    outside.write_text(job_text("far", "s", ["sleep", "60"]))  # no event in the spec dir
    wait_for((state_dir / "jobs" / "far" / "attempt-1.json").exists, timeout=30)
    wait_for(lambda: "running" == record(state_dir, "far").get("phase"))
