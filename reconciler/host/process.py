"""The process layer: the only code that spawns or signals processes (apply calls it).

Job wrappers are spawned with posix_spawn in a new session, so they survive
the daemon and need no preexec hook (safe while watcher threads run). Signals
go only to PIDs read from cgroups wnr owns, and to a job's escapees that
observe tied to the job (reconciler.observe.membership), through a pidfd checked
against the start time observe saw, so a reused PID is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.host.procfs import is_same
from reconciler.model.accounts import Account

# The job wrapper (reconciler/host/wrapper/*.c), compiled by the package's build step (setup.py).
WRAPPER = str(Path(__file__).with_name("_bin") / "wnr-wrapper")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def wrapper_missing() -> str | None:
    """Why jobs cannot be started here: the wrapper binary is absent or not executable."""
    if os.access(WRAPPER, os.X_OK):
        return None
    return (
        f"the job wrapper {WRAPPER} is missing or not executable: install wnr with pip, "
        "which compiles it (reconciler/host/wrapper/; needs a C compiler)"
    )


def is_wrapper(pid: int) -> bool:
    """Whether the process is a job wrapper (its PID may have been reused since a record
    named it; a zombie has no command line)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().startswith(WRAPPER.encode() + b"\0")
    except OSError:
        return False


def job_environment(spec_env: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """A job's environment: a sane PATH, wnr's variables, then the spec's own (which win)."""
    env = {"PATH": os.environ.get("PATH", DEFAULT_PATH)}
    env.update(extra)
    env.update(spec_env)
    return env


@dataclass(frozen=True)
class LogFiles:
    """Where an attempt's output goes and its bound: `path` is rotated to path.1, path.2, ...
    at `max_size` bytes, keeping `max_files` files in all (policies.logs)."""

    path: Path
    max_size: int
    max_files: int


@dataclass
class _Descriptors:
    """The soft RLIMIT_NOFILE this process started with, once it raised its own (None: not
    raised, payloads keep what they inherit). A fact of the process, as its limits are."""

    payload_soft: int | None = None


_DESCRIPTORS = _Descriptors()


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (the daemon's waker holds a
    pidfd per wrapper; systemd's unit gives 1024:524288) and remember the soft limit it had,
    which every wrapper spawned from now on gives its payload back. Returns (old, new)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _DESCRIPTORS.payload_soft is None:
        _DESCRIPTORS.payload_soft = soft
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def nofile_argument() -> str:
    """The wrapper's NOFILE argument: the payload's soft RLIMIT_NOFILE, or `-` to keep it."""
    soft = _DESCRIPTORS.payload_soft
    return "-" if soft is None or soft == resource.RLIM_INFINITY else str(soft)


def credentials_argument(credentials: Account | None) -> str:
    """The wrapper's CREDENTIALS argument: `UID:GID:G1,G2,...`, or `-` to keep its own."""
    if credentials is None:
        return "-"
    groups = ",".join(str(g) for g in credentials.groups)
    return f"{credentials.uid}:{credentials.gid}:{groups}"


def spawn_wrapper(
    *,
    record: Path,
    cgroup_procs: Path,
    workdir: str,
    log: LogFiles,
    argv: Iterable[str],
    env: Mapping[str, str],
    base: Mapping[str, object],
    credentials: Account | None = None,
) -> int:
    """Start the wrapper for one attempt; returns its PID. It enters the cgroup itself.

    `base` is what the daemon recorded before the spawn; the wrapper keeps it in every
    record it writes (the record is the wrapper's from now on). The payload's output goes
    through a pipe to the wrapper, which writes and rotates `log`; the wrapper's own
    stdout and stderr are /dev/null (it writes its messages into the log). With
    `credentials` the wrapper runs the payload as that user (its groups, gid, uid), switched
    after it entered the cgroup; the wrapper itself stays wnr's to keep the records.
    """
    members = json.dumps({k: v for k, v in base.items() if k != "phase"}, sort_keys=True)
    args = [
        WRAPPER,
        str(record),
        str(cgroup_procs),
        workdir,
        members[1:-1],
        str(log.path),
        str(log.max_size),
        str(log.max_files),
        credentials_argument(credentials),
        nofile_argument(),
        "--",
        *argv,
    ]
    return os.posix_spawn(
        WRAPPER,
        args,
        dict(env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
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


def kill_processes(pids: Iterable[tuple[int, int]]) -> int:
    """SIGKILL each (PID, start time) that still names the same process; returns how many.

    The pidfd is opened first and the start time checked after: the pidfd holds the
    process, so the one checked is the one signalled."""
    sent = 0
    for pid, start in pids:
        if pid <= 1 or pid == os.getpid():
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # gone already
        try:
            if is_same(pid, start):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                sent += 1
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)
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
