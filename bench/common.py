"""Shared pieces of the benchmark: the sandbox of cgroups and processes, the daemon, specs, /proc.

Every benchmark run lives in one `Sandbox`: a uniquely named cgroup
`<cgroup2 mount>/wnr-bench-<random>` and a temporary directory. Everything the
benchmark starts (the wnr daemon, supervisord, a JVM, floor `sleep`s) is put
in a cgroup below it before it runs its own code (a `sh` trampoline writes its
own PID, then `exec`s), so `Sandbox.close()` can end all of it with
`cgroup.kill` and remove every cgroup bottom-up, even after a failure or
Ctrl-C. The daemon's jobs are below its root, which is below the sandbox too.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from reconciler.observe.mounts import cgroup2_mounts

REPO = Path(__file__).resolve().parent.parent
# Enter the cgroup named by $0, then become the command: the PID written is the trampoline's own.
TRAMPOLINE = 'echo $$ > "$0/cgroup.procs" && exec "$@"'


class BenchError(RuntimeError):
    """A scenario could not be measured (a timeout, a process that died)."""


def wait_until(
    what: str, predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.02
) -> None:
    """Poll until `predicate()` is true; raise BenchError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Sandbox:
    """One benchmark invocation's cgroup subtree, temporary directory and child processes."""

    def __init__(self) -> None:
        mounts = cgroup2_mounts()
        if not mounts:
            raise BenchError("no cgroup2 mount on this machine")
        if os.geteuid() != 0:
            raise BenchError("the benchmark needs root (it creates cgroups on the cgroup2 mount)")
        self.root = mounts[-1] / f"wnr-bench-{uuid.uuid4().hex[:12]}"
        os.mkdir(self.root)
        self.tmp = Path(tempfile.mkdtemp(prefix="wnr-bench-"))
        self.children: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []

    def cgroup(self, rel: str) -> Path:
        """Create (if needed) and return a cgroup below the sandbox root."""
        path = self.root / rel
        path.mkdir(parents=True, exist_ok=True)
        return path

    def popen(self, argv: Sequence[str], cgroup: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a command inside `cgroup` (it enters before running its own code)."""
        proc = subprocess.Popen(["sh", "-c", TRAMPOLINE, str(cgroup), *argv], **kwargs)
        self.children.append(proc)
        return proc

    def spawn(self, argv: Sequence[str], cgroup: Path) -> int:
        """posix_spawn a command and move it into `cgroup` (the floor: no trampoline)."""
        pid = os.posix_spawnp(argv[0], list(argv), os.environ)
        self.pids.append(pid)
        write(cgroup / "cgroup.procs", str(pid))
        return pid

    def remove(self, cgroup: Path) -> None:
        """Kill everything in a cgroup subtree of the sandbox and remove it bottom-up."""
        if self.root not in (cgroup, *cgroup.parents) or not cgroup.exists():
            return
        with contextlib.suppress(OSError):
            write(cgroup / "cgroup.kill", "1")
        deadline = time.monotonic() + 10.0
        while True:
            self._reap()
            busy = False
            dirs = sorted((Path(d) for d, _, _ in os.walk(cgroup)), key=lambda p: -len(p.parts))
            for directory in dirs:
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    busy = True
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if cgroup.exists():
            raise BenchError(f"could not remove cgroup {cgroup}")

    def _reap(self) -> None:
        for pid in list(self.pids):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.pids.remove(pid)
        for proc in list(self.children):
            if proc.poll() is not None:
                self.children.remove(proc)

    def close(self) -> None:
        """End every process started here (by PID, then cgroup.kill) and remove everything."""
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for proc in self.children:
                if proc.poll() is None:
                    proc.kill()
            self.remove(self.root)
            for proc in self.children:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            for signum, handler in old.items():
                signal.signal(signum, handler)


def write(path: Path, value: str) -> None:
    """One write(2) of a value, as cgroupfs wants it."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def populated(cgroup: Path) -> bool:
    """`populated` from cgroup.events (False once the cgroup is gone)."""
    try:
        text = (cgroup / "cgroup.events").read_text()
    except FileNotFoundError:
        return False
    return "populated 1" in text


def until_empty(cgroup: Path, action: Callable[[], object]) -> float:
    """Seconds from `action()` to cgroup.events reading `populated 0`, woken by poll(2)."""
    fd = os.open(cgroup / "cgroup.events", os.O_RDONLY)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        os.pread(fd, 4096, 0)
        start = time.perf_counter()
        action()
        while b"populated 1" in os.pread(fd, 4096, 0):
            poller.poll(1000)
        return time.perf_counter() - start
    finally:
        os.close(fd)


# --- /proc ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, from schedstat (nanoseconds, unlike stat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total / 1e9


def status_kib(pid: int, field: str = "VmRSS") -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, RssAnon, RssFile, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {field} in /proc/{pid}/status")


def pss_kib(pid: int) -> int:
    """Proportional set size from smaps_rollup."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise BenchError(f"no Pss in /proc/{pid}/smaps_rollup")


# --- statistics -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else float("nan")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def open_sandbox(prog: str) -> Sandbox | None:
    """A sandbox for a run that SIGTERM and SIGHUP interrupt as Ctrl-C does (the caller's
    KeyboardInterrupt handler closes it); None, the reason printed, where there is none."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        return Sandbox()
    except BenchError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
