"""Hostile and careless spec files against a running daemon: it stays up, its jobs stay, the file gets its error.

One daemon (on the real cgroup2 mount) runs two long jobs for the whole module;
each test drops one bad path into its spec directory and checks that the
daemon logs that path's error with its position, keeps running and keeps both
jobs (same PIDs), and that `wnr validate` on the same directory exits 1 with
the same line, in bounded memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_cgroup_root, remove_tree, wait_for
from tests.helpers import REPO, DaemonProcess, procs, record, write_job, write_slot
from tests.hostile import Case, cases, job

# `wnr validate` of any file stays below this peak RSS (it is ~60 MiB for a good file).
VALIDATE_RSS_LIMIT = 256 * 2**20


@dataclass
class Node:
    """The module's daemon, its directories and the PIDs of its two long jobs."""

    daemon: DaemonProcess
    specs: Path
    root: Path
    state: Path
    log: Path
    payloads: dict[str, int]

    def log_text(self) -> str:
        """Everything the daemon logged so far."""
        return self.log.read_text(errors="replace")

    def assert_untouched(self) -> None:
        """The daemon runs and both jobs run with the PIDs they started with."""
        assert self.daemon.proc is not None
        assert self.daemon.proc.poll() is None, self.log_text()[-3000:]
        now = {name: int(str(record(self.state, name)["pid"])) for name in self.payloads}
        assert self.payloads == now
        for name, pid in self.payloads.items():
            assert pid in procs(self.root / "slot.s" / f"job.{name}")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A daemon with slot `s` and two `sleep` jobs, passing every second, for the module."""
    base = tmp_path_factory.mktemp("hostile")
    specs, state = base / "specs", base / "state"
    specs.mkdir()
    state.mkdir()
    root = make_cgroup_root()
    daemon = DaemonProcess(specs, root, state, base / "daemon.log")
    daemon.args += ["--resync", "1"]
    try:
        write_slot(specs, "s")
        for name in ("keep-a", "keep-b"):
            write_job(specs, name, "s", ["sleep", "3600"])
        daemon.start()
        for name in ("keep-a", "keep-b"):
            wait_for(lambda name=name: record(state, name).get("phase") == "running")
        payloads = {n: int(str(record(state, n)["pid"])) for n in ("keep-a", "keep-b")}
        yield Node(daemon, specs, root, state, base / "daemon.log", payloads)
    finally:
        daemon.kill()
        remove_tree(root)


# Runs a command and writes its peak RSS (KiB) to the fd in argv[1]. Measured from a small
# parent, since a child's ru_maxrss starts at the size of whatever forked it (here, pytest).
PEAK = (
    "import os, subprocess, sys; child = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(child.pid, 0); "
    "os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode()); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def validate(path: Path) -> tuple[int, str, int]:
    """`wnr validate PATH` in a fresh interpreter: exit code, stdout and peak RSS in bytes."""
    read, write = os.pipe()
    command = [sys.executable, "-c", PEAK, str(write)]
    command += [sys.executable, "-m", "reconciler", "validate", str(path)]
    try:
        # A validate that blocks (on a FIFO, say) times out and fails the test.
        result = subprocess.run(
            command,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            pass_fds=(write,),
        )
        os.close(write)
        write = -1
        peak = int(os.read(read, 64) or b"0") * 1024
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    return result.returncode, result.stdout, peak


def expect_error(node: Node, path: Path, error: str) -> None:
    """The daemon logs `path:error`, stays up with both jobs; validate says the same."""
    line = f"{path}:{error}"
    wait_for(lambda: line in node.log_text(), timeout=30)
    node.assert_untouched()
    code, out, peak = validate(node.specs)
    assert 1 == code
    assert any(o.startswith(line) for o in out.splitlines()), out[-2000:]
    assert peak < VALIDATE_RSS_LIMIT


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_a_bad_file_is_an_error_and_nothing_else(node: Node, case: Case) -> None:
    """Each class of bad file gets its positioned error from the daemon and from validate; the daemon and its jobs go on."""
    path = node.specs / f"zz-{case.name}.yaml"
    path.write_bytes(case.data)
    try:
        expect_error(node, path, case.error)
    finally:
        path.unlink()


def test_errors_are_logged_once_while_they_last(node: Node) -> None:
    """A file with 500 bad documents logs its 20 errors and a summary once, however many passes see it."""
    path = node.specs / "zz-repeated.yaml"
    replace_with(
        path,
        lambda tmp: tmp.write_text(
            "".join(job(f"r{i}", "  bogus: 1\n") + "---\n" for i in range(500))
        ),
    )
    try:
        wait_for(lambda: f"{path}:" in node.log_text(), timeout=30)
        time.sleep(3.5)  # three more passes at --resync 1 see the same file
        lines = [line for line in node.log_text().splitlines() if f"{path}:" in line]
        assert 21 == len(lines)
        assert any(line.endswith("... and 480 more errors in this file") for line in lines)
    finally:
        path.unlink()
    node.assert_untouched()


def special_paths(base: Path) -> list[tuple[str, str]]:
    """Make each kind of path that is not a trusted regular file; with its expected error."""
    fifo = base / "zz-fifo.yaml"
    os.mkfifo(fifo)
    (base / "zz-dir.yaml").mkdir()
    (base / "zz-dangling.yaml").symlink_to("/nonexistent/spec.yaml")
    (base / "zz-zero.yaml").symlink_to("/dev/zero")
    writable = base / "zz-writable.yaml"
    writable.write_text(job("writable"))
    writable.chmod(0o666)
    foreign = base / "zz-foreign.yaml"
    foreign.write_text(job("foreign"))
    os.chown(foreign, 65534, 65534)
    regular = "only regular files are read"
    return [
        ("zz-fifo.yaml", f"1:1: not a regular file but a FIFO: {regular}"),
        ("zz-dir.yaml", f"1:1: not a regular file but a directory: {regular}"),
        ("zz-dangling.yaml", "1:1: a symlink to /nonexistent/spec.yaml, which does not exist"),
        ("zz-zero.yaml", f"1:1: not a regular file but a character device: {regular}"),
        (
            "zz-writable.yaml",
            "1:1: refusing spec file: writable by group or others (mode -rw-rw-rw-)",
        ),
        (
            "zz-foreign.yaml",
            "1:1: refusing spec file: owned by uid 65534, not by wnr's user (uid 0) or root",
        ),
    ]


def test_paths_that_are_not_trusted_regular_files(node: Node) -> None:
    """A FIFO, a directory, dangling and device symlinks, writable and foreign files: each is its path's error, in the daemon and in validate, and nothing blocks."""
    made = special_paths(node.specs)
    try:
        for name, error in made:
            expect_error(node, node.specs / name, error)
    finally:
        for name, _ in made:
            path = node.specs / name
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


def replace_with(path: Path, make: Callable[[Path], object]) -> None:
    """Make the new path beside `path` under a name the loader ignores, then rename it over
    `path`: the daemon never sees the spec missing (which would mean deleted)."""
    tmp = path.with_name(f".{path.name}.tmp")
    make(tmp)
    tmp.rename(path)


@pytest.mark.parametrize("kind", ["dangling", "fifo"])
def test_a_spec_that_stops_being_a_regular_file_keeps_its_job(node: Node, kind: str) -> None:
    """keep-a's spec replaced by a dangling symlink (an NFS outage) or a FIFO: an error, and keep-a runs on with its records."""
    path = node.specs / "job-keep-a.yaml"
    saved = path.read_bytes()
    if kind == "dangling":
        replace_with(path, lambda tmp: tmp.symlink_to("/nonexistent/job-keep-a.yaml"))
    else:
        replace_with(path, os.mkfifo)
    try:
        wait_for(lambda: f"{path}:1:1: " in node.log_text(), timeout=30)
        time.sleep(2.5)  # passes that would have stopped the job
        node.assert_untouched()
        assert (node.state / "jobs" / "keep-a" / "attempt-1.json").exists()
    finally:
        replace_with(path, lambda tmp: tmp.write_bytes(saved))
    wait_for(lambda: f"resolved: {path}:1:1: " in node.log_text(), timeout=30)
    node.assert_untouched()
