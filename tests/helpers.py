"""Shared test helpers: the real CLI in a fresh interpreter, spec files, processes, the daemon.

For the tests that run real processes on the real cgroup2 mount; the planner's
plain-data builders are in tests/builders.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wnr(*args: str | Path, check: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh interpreter, as an admin would."""
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    if check is not None:
        assert check == result.returncode, result.stdout + result.stderr
    return result


def common(specs: Path, root: Path, state: Path) -> list[str | Path]:
    """The flags every command in these tests shares."""
    return ["--specs", specs, "--root", root, "--state-dir", state]


# A Node whose user-space enforcement samples every 0.2 s, and slot s with a 1 s grace
# whose jobs run as root (write_slot says why).
USER_SPACE_NODE = """\
apiVersion: wnr.dev/v1alpha1
kind: Node
metadata: {name: node}
spec:
  policies:
    userSpace: {intervalSeconds: 0.2}
---
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: s}
spec:
  terminationGracePeriodSeconds: 1
  user: root
"""


def job_document(name: str, command: list[str], extra: str) -> str:
    """One Job document in slot s."""
    body = textwrap.indent(textwrap.dedent(extra), "  ")
    return f"---\napiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  slot: s\n  command: {json.dumps(command)}\n{body}"


def write_slot(specs: Path, name: str, grace: int = 5, user: str | None = "root") -> None:
    """A slot spec in its own file. Its jobs run as root unless `user` says otherwise: the
    payloads of these tests write into the test's own tmp dir, which only root can enter."""
    run_as = f"\n  user: {user}" if user is not None else ""
    (specs / f"slot-{name}.yaml").write_text(
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  resources: {{cpus: 1, memory: 1Gi, pids: 100}}\n"
        f"  terminationGracePeriodSeconds: {grace}{run_as}\n"
    )


def job_text(name: str, slot: str, command: list[str]) -> str:
    """One Job document."""
    return textwrap.dedent(
        f"""\
        apiVersion: wnr.dev/v1alpha1
        kind: Job
        metadata: {{name: {name}}}
        spec:
          slot: {slot}
          command: {json.dumps(command)}
        """
    )


def write_job(specs: Path, name: str, slot: str, command: list[str]) -> Path:
    """A job spec in its own file."""
    path = specs / f"job-{name}.yaml"
    path.write_text(job_text(name, slot, command))
    return path


def procs(cgroup: Path) -> list[int]:
    """PIDs listed in a cgroup's cgroup.procs."""
    return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]


def cgroup_of(pid: int) -> str:
    """The cgroup v2 path of a process, from /proc."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError(f"no cgroup2 line for {pid}")


def alive(pid: int) -> bool:
    """Whether a PID exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or during the read
        return False
    return "\nState:\tZ" not in status


class DaemonProcess:
    """A `wnr run` child process with the flags of one test."""

    def __init__(self, specs: Path, root: Path, state: Path, log: Path) -> None:
        self.specs = specs
        self.args = [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            "--specs",
            str(specs),
            "--root",
            str(root),
            "--state-dir",
            str(state),
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str] | None = None, prefix: Sequence[str] = ()) -> None:
        """Start the daemon, logging to a file the test can show on failure; `env` is added to
        the environment, `prefix` runs before it (`prlimit --nofile=... --`)."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*prefix, *self.args],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def terminate(self) -> int:
        """SIGTERM the daemon and return its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the daemon if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def record(state: Path, job: str, attempt: int = 1) -> dict[str, object]:
    """An attempt record from the state dir."""
    data = json.loads((state / "jobs" / job / f"attempt-{attempt}.json").read_text())
    assert isinstance(data, dict)
    return data
