"""The process layer: the only code that spawns or signals processes (apply calls it).

Job wrappers are spawned with posix_spawn in a new session, so they survive
the daemon and need no preexec hook (safe while watcher threads run). Signals
go only to PIDs read from cgroups wnr owns.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

WRAPPER = str(Path(__file__).with_name("wrapper.py"))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@functools.cache
def wrapper_interpreter() -> str:
    """The Python that runs the wrapper: wnr's own, unless this user may not execute it
    (an interpreter under another user's home), then the system's python3."""
    if os.access(sys.executable, os.X_OK):
        return sys.executable
    return shutil.which("python3", path=DEFAULT_PATH) or sys.executable


def job_environment(spec_env: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """A job's environment: a sane PATH, wnr's variables, then the spec's own (which win)."""
    env = {"PATH": os.environ.get("PATH", DEFAULT_PATH)}
    env.update(extra)
    env.update(spec_env)
    return env


def spawn_wrapper(
    *,
    record: Path,
    cgroup_procs: Path,
    workdir: str,
    log: Path,
    argv: Iterable[str],
    env: Mapping[str, str],
) -> int:
    """Start the wrapper for one attempt; returns its PID. It enters the cgroup itself."""
    python = wrapper_interpreter()
    args = [python, "-I", "-S", WRAPPER, str(record), str(cgroup_procs), workdir, "--"]
    args.extend(argv)
    out_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return os.posix_spawn(
        python,
        args,
        dict(env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), out_flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )


def signal_pids(pids: Iterable[int], signum: signal.Signals) -> int:
    """Send a signal to each PID (read from an owned cgroup); returns how many got it."""
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
            sent += 1
    return sent


def reap() -> None:
    """Collect exited children (wrappers of this daemon) so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
