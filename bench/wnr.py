"""wnr under test: spec files as a pilot writes them, and `wnr run` as a child of the benchmark.

`WnrDaemon` runs `python -m reconciler run` in a cgroup of the sandbox with
its own spec dir and state dir (in the sandbox's temporary directory) and
its root below the sandbox's cgroup, and reads results back the way an
admin would: attempt records, the event log (`EventTail` follows it as a
pilot would, across rotations), cgroup directories.
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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from bench.common import REPO, BenchError, Sandbox, wait_until
from reconciler.host.eventlog import LOG_NAME
from reconciler.model.event import Event

SLOT = "bench"
# Limits on every benchmark job (the slot has room for 256 of them).
JOB_RESOURCES = "{cpus: 5m, memory: 48Mi, pids: 16}"


def slot_yaml(name: str, *, grace: int = 0, state: str = "Active") -> str:
    """A slot big enough for every benchmark job, with the given grace periods."""
    return (
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        "  resources: {cpus: 2, memory: 16Gi, pids: 8192}\n"
        f"  state: {state}\n"
        f"  drainGracePeriodSeconds: {grace}\n"
        f"  terminationGracePeriodSeconds: {grace}\n"
    )


def job_yaml(
    name: str,
    command: Sequence[str],
    slot: str = SLOT,
    labels: str = "",
    resources: str = JOB_RESOURCES,
) -> str:
    """A job with limits, as a pilot would drop it (one document per file)."""
    meta = f"{{name: {name}, labels: {{{labels}}}}}" if labels else f"{{name: {name}}}"
    return (
        "apiVersion: wnr.dev/v1alpha1\nkind: Job\n"
        f"metadata: {meta}\n"
        "spec:\n"
        f"  slot: {slot}\n"
        f"  command: {json.dumps(list(command))}\n"
        f"  resources: {resources}\n"
    )


def job_names(count: int, prefix: str = "j") -> list[str]:
    """Job names j0000, j0001, ..."""
    return [f"{prefix}{i:04d}" for i in range(count)]


def write_jobs(specs: Path, names: Iterable[str], command: Sequence[str]) -> None:
    """One spec file per job."""
    for name in names:
        (specs / f"job-{name}.yaml").write_text(job_yaml(name, command))


class WnrDaemon:
    """`python -m reconciler run` in a cgroup of its own, with a fresh spec dir and state dir."""

    def __init__(self, box: Sandbox, tag: str) -> None:
        self.box = box
        base = box.tmp / tag
        self.specs, self.state = base / "specs", base / "state"
        self.specs.mkdir(parents=True, mode=0o700)
        self.state.mkdir(mode=0o700)
        self.log = base / "daemon.log"
        self.root = box.root / f"wnr.{tag}"
        self.cgroup = box.cgroup(f"daemon.{tag}")
        self.proc: subprocess.Popen[bytes] | None = None
        self._logged = 0

    @property
    def pid(self) -> int:
        """The daemon's PID (the trampoline exec'd into it)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, settle: bool = True, extra: Sequence[str] = ()) -> None:
        """Start the daemon (with `extra` flags); with `settle`, wait until it has logged
        start-up and done a pass."""
        argv = [sys.executable, "-m", "reconciler", "run", "--specs", str(self.specs)]
        argv += ["--root", str(self.root), "--state-dir", str(self.state), *extra]
        self._logged = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = self.box.popen(argv, self.cgroup, cwd=REPO, stdout=out, stderr=out)
        if settle:
            wait_until("the daemon to start", lambda: b"wnr run:" in self._new_log(), 20)
            time.sleep(0.5)  # its first pass (empty spec dir) and the watcher's start

    def _new_log(self) -> bytes:
        """What this start of the daemon logged."""
        return self.log.read_bytes()[self._logged :]

    def metrics_address(self) -> str:
        """HOST:PORT this start serves metrics on (it logs it before its first pass)."""
        found: list[bytes] = []

        def logged() -> bool:
            found[:] = re.findall(rb"serving metrics on http://([0-9.]+:[0-9]+)/", self._new_log())
            return bool(found)

        wait_until("the daemon to serve metrics", logged, 20)
        return found[0].decode()

    def alive(self) -> bool:
        """Whether the daemon still runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (jobs keep running), SIGKILL if it does not exit within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def teardown(self) -> None:
        """Stop the daemon and remove its root (killing its jobs) and its own cgroup."""
        self.stop()
        self.box.remove(self.root)
        self.box.remove(self.cgroup)

    def record(self, job: str, attempt: int = 1) -> dict[str, Any] | None:
        """An attempt record, or None when there is none (yet)."""
        try:
            data = json.loads((self.state / "jobs" / job / f"attempt-{attempt}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def events(self) -> list[dict[str, Any]]:
        """Every whole event in the current event log."""
        try:
            lines = (self.state / "events.jsonl").read_bytes().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return [e for e in events if isinstance(e, dict)]

    def wait_running(
        self, names: Iterable[str], timeout: float = 60.0, interval: float = 0.05
    ) -> dict[str, float]:
        """Wait until every job's payload runs; returns each one's `startedAt` (wall clock).
        Thousands of jobs want a longer `interval`: reading their records takes CPU from the
        daemon, though the clock stops at the records' times, not at the poll."""
        pending, started = set(names), {}

        def check() -> bool:
            for name in list(pending):
                record = self.record(name)
                if record is not None and record.get("phase") == "running":
                    started[name] = float(record["startedAt"])
                    pending.discard(name)
                elif record is not None and record.get("phase") in ("exited", "failed-start"):
                    raise BenchError(f"job {name} ended early: {record}")
            if not self.alive():
                raise BenchError(f"the daemon exited; see {self.log}")
            return not pending

        wait_until(f"{len(pending)} jobs to run", check, timeout, interval=interval)
        return started

    def wait_forgotten(self, names: Iterable[str], timeout: float = 30.0) -> None:
        """Wait until removed jobs' cgroups and records are gone."""
        slot = self.root / f"slot.{SLOT}"
        wanted = list(names)
        wait_until(
            "removed jobs to be forgotten",
            lambda: (
                not any(
                    (slot / f"job.{n}").exists() or (self.state / "jobs" / n).exists()
                    for n in wanted
                )
            ),
            timeout,
        )


class EventTail:
    """The events appended to `<state>/events.jsonl` since the last read, across rotations.

    The file is held open: once it is rotated (renamed to `.1`) the rest of it
    is still read through the open descriptor before the new file is opened,
    so no event written around a rotation is missed.
    """

    def __init__(self, state: Path) -> None:
        self.path = state / LOG_NAME
        self.handle: BinaryIO | None = None
        self.partial = b""

    def read(self) -> list[Event]:
        """Whole events appended since the previous call, oldest first."""
        data = b""
        if self.handle is None:
            try:
                self.handle = open(self.path, "rb")  # noqa: SIM115 (held across calls)
            except FileNotFoundError:
                return []
        data += self.handle.read()
        try:
            rotated = os.stat(self.path).st_ino != os.fstat(self.handle.fileno()).st_ino
        except FileNotFoundError:
            rotated = False  # between the rename and the next append: nothing new yet
        if rotated:
            data += self.handle.read()
            self.handle.close()
            self.handle = open(self.path, "rb")  # noqa: SIM115
            data += self.handle.read()
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = Event.from_json(json.loads(line))
                if event is not None:
                    events.append(event)
        return events

    def close(self) -> None:
        """Close the held file."""
        if self.handle is not None:
            self.handle.close()
