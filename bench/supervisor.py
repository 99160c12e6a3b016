"""The supervisord peer: N programs (`sleep 600`, startsecs=0) from a generated config.

supervisord (PyPI `supervisor`) runs in the foreground as root, in a cgroup of
the sandbox, so its programs inherit that cgroup: "every program running" is
read from the cgroup (`cgroup.procs`, each child's `comm` turning into
`sleep` at exec) without asking supervisord over its socket, which would
cost it CPU inside the measurement. It is ended with SIGKILL by PID, its
programs with `cgroup.kill` on its cgroup.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BenchError, Sandbox, cpu_seconds, pss_kib, status_kib, wait_until


def supervisord_binary() -> str:
    """supervisord next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("supervisord")
    found = str(beside) if beside.exists() else shutil.which("supervisord")
    if found is None:
        raise BenchError("supervisord is not installed: pip install supervisor")
    return found


def config(directory: Path, count: int) -> str:
    """A supervisord.conf for `count` programs, everything under `directory`."""
    lines = [
        "[supervisord]",
        "nodaemon=true",
        "user=root",
        f"logfile={directory}/supervisord.log",
        f"pidfile={directory}/supervisord.pid",
        f"childlogdir={directory}/logs",
        "minfds=4096",
    ]
    for i in range(count):
        lines += [
            f"[program:p{i:04d}]",
            "command=sleep 600",
            "startsecs=0",
            "autorestart=false",
            "redirect_stderr=true",
        ]
    return "\n".join(lines) + "\n"


class Supervisor:
    """One supervisord with N programs."""

    def __init__(self, box: Sandbox, tag: str, count: int) -> None:
        self.box, self.count = box, count
        self.dir = box.tmp / f"supervisord.{tag}"
        (self.dir / "logs").mkdir(parents=True)
        self.conf = self.dir / "supervisord.conf"
        self.conf.write_text(config(self.dir, count))
        self.cgroup = box.cgroup(f"peer.supervisord.{tag}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup = float("nan")

    @property
    def pid(self) -> int:
        """supervisord's PID."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        """Launch supervisord and wait until every program has exec'd `sleep` (`.startup`),
        at most `timeout` seconds."""
        argv = [supervisord_binary(), "-c", str(self.conf)]
        running: set[int] = set()

        def all_running() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"supervisord exited; see {self.dir}/supervisord.log")
            for pid in (self.cgroup / "cgroup.procs").read_text().split():
                if int(pid) in running or int(pid) == self.proc.pid:
                    continue
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if comm == "sleep":
                    running.add(int(pid))
            return len(running) >= self.count

        with open(self.dir / "stdout.log", "ab") as out:
            begin = time.perf_counter()
            self.proc = self.box.popen(argv, self.cgroup, stdout=out, stderr=out)
            wait_until(f"supervisord's {self.count} programs", all_running, timeout, interval=0.005)
            self.startup = time.perf_counter() - begin

    def rss_kib(self) -> int:
        """supervisord's own VmRSS."""
        return status_kib(self.pid)

    def pss_kib(self) -> int:
        """supervisord's own Pss."""
        return pss_kib(self.pid)

    def cpu_seconds(self) -> float:
        """supervisord's own CPU time so far."""
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        """SIGKILL supervisord by PID, then its programs with its cgroup (SIGTERM would have it
        stop them one by one: 16 s for 100 programs here)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.box.remove(self.cgroup)
