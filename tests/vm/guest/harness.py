"""Helpers for the guest suite: write spec files, run `python -m reconciler`, read cgroup files.

Imported by tests/vm/guest/conftest.py and the tests there, which run INSIDE the
real-kernel VM (tests/vm/run); the conftest refuses to run them anywhere that is
not a pure cgroup2 mount with the controllers they exercise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MOUNT = Path("/sys/fs/cgroup")
REPO = Path(__file__).resolve().parents[3]
MiB = 1024 * 1024
# Python runs ~20x slower under TCG: one wnr invocation takes seconds, not milliseconds.
WNR_TIMEOUT = 240
Completed = subprocess.CompletedProcess[str]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ ")


@dataclass(frozen=True)
class Wnr:
    """One test's wnr: a spec dir, a unique cgroup root and a state dir."""

    specs: Path
    root: Path
    state: Path

    def run(self, command: str, *args: str, check: int | None = 0) -> Completed:
        """`python -m reconciler COMMAND --specs .. --root .. --state-dir .. ARGS`, as an admin types it."""
        flags = ("--specs", self.specs, "--root", self.root, "--state-dir", self.state)
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", command, *map(str, flags), *args],
            capture_output=True,
            text=True,
            timeout=WNR_TIMEOUT,
            cwd=REPO,
            check=False,
        )
        if check is not None:
            assert check == result.returncode, f"wnr {command}:\n{result.stdout}{result.stderr}"
        return result

    def apply(self) -> Completed:
        """`wnr apply --wait`, which must exit 0."""
        return self.run("apply", "--wait", "--timeout", "180")

    def slot(self, name: str, resources: dict[str, Any], **spec: Any) -> Path:
        """Write (or rewrite) the spec file of a Slot. Its jobs run as root unless `user` is
        given (None: the Node's default, nobody): their gates and outputs are in the test's
        tmp dir, which only root can enter."""
        spec.setdefault("user", "root")
        if spec["user"] is None:
            del spec["user"]
        return self._write(f"slot-{name}.yaml", "Slot", name, {"resources": resources, **spec})

    def job(
        self, name: str, slot: str, command: list[str], resources: dict[str, Any] | None = None
    ) -> Path:
        """Write the spec file of a Job."""
        spec: dict[str, Any] = {"slot": slot, "command": command}
        if resources:
            spec["resources"] = resources
        return self._write(f"job-{name}.yaml", "Job", name, spec)

    def _write(self, filename: str, kind: str, name: str, spec: dict[str, Any]) -> Path:
        # Block style at the top, JSON (a subset of YAML) flow style for each value.
        lines = ["apiVersion: wnr.dev/v1alpha1", f"kind: {kind}", f"metadata: {{name: {name}}}"]
        lines.append("spec:")
        lines.extend(f"  {key}: {json.dumps(value)}" for key, value in spec.items())
        path = self.specs / filename
        path.write_text("\n".join(lines) + "\n")
        return path

    def cgroup(self, rel: str) -> Path:
        """A cgroup below this test's root (`slot.s`, `slot.s/job.j`)."""
        return self.root / rel

    def read(self, rel: str, name: str) -> str:
        """One interface file of a cgroup below the root, stripped."""
        return (self.cgroup(rel) / name).read_text().strip()

    def keyed(self, rel: str, name: str) -> dict[str, int]:
        """A flat-keyed interface file (`memory.events`, `cpu.stat`) as a dict."""
        return {k: int(v) for k, v in (line.split() for line in self.read(rel, name).splitlines())}

    def procs(self, rel: str) -> list[int]:
        """The PIDs in a cgroup's cgroup.procs."""
        return [int(pid) for pid in self.read(rel, "cgroup.procs").split()]

    def record(self, job: str, attempt: int = 1) -> dict[str, Any]:
        """The attempt record wnr and its wrapper keep in the state dir."""
        data = json.loads((self.state / "jobs" / job / f"attempt-{attempt}.json").read_text())
        assert isinstance(data, dict)
        return data


def brief(result: Completed) -> str:
    """A command's output for an assertion message: timestamps dropped, repeated lines once."""
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(dict.fromkeys(TIMESTAMP.sub("", line) for line in lines))


def alive(pid: int) -> bool:
    """Whether a PID exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or during the read
        return False
    return "\nState:\tZ" not in status


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll until `predicate()` is true; fail the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    pytest.fail(f"not within {timeout:g}s: {what}")


def gate(path: Path, command: str) -> list[str]:
    """A `sh -c` argv that waits for `path` to exist, then runs `command` (the test opens the gate)."""
    return ["sh", "-c", f"while [ ! -e {path} ]; do sleep 0.05; done; {command}"]


def remove_tree(root: Path, timeout: float = 15.0) -> None:
    """cgroup.kill everything below a test root (freeze and SIGKILL each process on a kernel
    without cgroup.kill, before 5.14), then rmdir it bottom-up."""
    if not root.exists():
        return
    if (root / "cgroup.kill").exists():
        (root / "cgroup.kill").write_text("1")
    else:
        kill_frozen(root)
    deadline = time.monotonic() + timeout
    while root.exists():
        for directory in _bottom_up(root):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


def kill_frozen(root: Path) -> None:
    """SIGKILL every process below a cgroup while it is frozen (no fork escapes), then thaw."""
    (root / "cgroup.freeze").write_text("1")
    try:
        for directory in _bottom_up(root):
            for pid in (directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    finally:
        (root / "cgroup.freeze").write_text("0")


def _bottom_up(root: Path) -> Iterable[Path]:
    dirs = [Path(d) for d, _, _ in os.walk(root)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)
