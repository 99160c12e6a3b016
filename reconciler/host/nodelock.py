"""One wnr at a time per state dir and per cgroup root: exclusive flocks held for a process's life.

Host layer, taken by the CLI before `wnr run` or `wnr apply` changes anything
(reconciler.cli). Two daemons on one state dir would each start every new job
(each records its own attempt 1), and two on one cgroup root would fight over
its cgroups, so both are locked, without waiting:

- `<state>/wnr.lock`, which also holds the holder's PID and command, for the
  error of the one refused;
- the cgroup root's own directory: flock works on cgroupfs (tested on this
  kernel), a lock there follows the cgroup itself whatever path names it, and
  needs nothing but read access, so a delegated, unprivileged wnr locks it as
  well as root does. The root is created first when it does not exist yet
  (the first pass would create it anyway). Its holder is found in /proc/locks.

The descriptors are close-on-exec, so wrappers, which outlive the daemon, never
inherit a lock. `wnr plan`, `get` and `describe` only read and take none.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path

from reconciler.model.errors import WnrError

log = logging.getLogger("wnr.lock")

LOCK_NAME = "wnr.lock"


class LockBusyError(WnrError):
    """Another wnr holds the state dir or the cgroup root."""


class NodeLock:
    """The two locks of one `wnr run` or `wnr apply`; released by `release` or at exit."""

    def __init__(self, state_root: Path, cgroup_root: Path, command: str) -> None:
        self.state_root = Path(state_root)
        self.cgroup_root = Path(cgroup_root)
        self.command = command
        self.state_fd: int | None = None
        self.root_fd: int | None = None

    @property
    def path(self) -> Path:
        """The lock file in the state dir."""
        return self.state_root / LOCK_NAME

    def acquire(self) -> NodeLock:
        """Take both locks or neither; raises LockBusyError naming the holder."""
        try:
            self.state_fd = self._lock_state()
            self.root_fd = _lock_root(self.cgroup_root)
        except BaseException:
            self.release()
            raise
        return self

    def _lock_state(self, quiet: bool = False) -> int | None:
        """Lock (creating) `<state>/wnr.lock` and write this process into it. The descriptor
        held is read-only, so the lock never keeps the file system from being remounted
        read-only. A state dir that cannot take the file (read-only, full) is reported by
        the passes; the root lock alone still keeps a second daemon out then."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if not quiet:
                log.warning("cannot create %s (%s): only the root is locked", self.path, exc)
            return None
        if not _try_lock(fd):
            holder = _read_holder(fd) or holder_pid(fd)
            os.close(fd)
            raise LockBusyError(
                f"another wnr ({_who(holder)}) holds the state dir {self.state_root} "
                f"(lock {self.path}); stop it first"
            )
        info = {"pid": os.getpid(), "command": self.command, "root": str(self.cgroup_root)}
        with contextlib.suppress(OSError):  # the PID is for messages only; the lock holds
            out = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                os.write(out, json.dumps(info).encode() + b"\n")
            finally:
                os.close(out)
        return fd

    def ensure(self) -> None:
        """Lock the state dir's lock file again if it was deleted with the state dir (the
        daemon creates the directory again; a lock on the deleted file keeps nobody out)."""
        if self.state_fd is not None:
            try:
                held, now = os.fstat(self.state_fd), os.stat(self.path)
                if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                    return
            except FileNotFoundError:
                pass
            except OSError:
                return
            os.close(self.state_fd)
            self.state_fd = None
        if not self.state_root.is_dir():
            return
        try:
            self.state_fd = self._lock_state(quiet=True)  # tried again after every pass
        except LockBusyError as exc:
            log.error("%s", exc)

    def release(self) -> None:
        """Drop both locks."""
        for fd in (self.state_fd, self.root_fd):
            if fd is not None:
                os.close(fd)
        self.state_fd = self.root_fd = None


def _lock_root(root: Path) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkdir(root)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise WnrError(f"cannot open the cgroup root {root} to lock it: {exc}") from exc
    if not _try_lock(fd):
        holder = holder_pid(fd)
        os.close(fd)
        raise LockBusyError(
            f"another wnr ({_who(holder)}) manages the cgroup root {root}; stop it first"
        )
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> int | None:
    """The PID the holder wrote into the lock file (None while it is still writing)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    return pid if isinstance(pid, int) else None


def holder_pid(fd: int) -> int | None:
    """The PID holding a flock on the file of `fd`, from /proc/locks."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == where:
                    return int(fields[4]) if fields[4].isdigit() else None
    except OSError:
        return None
    return None


def _who(pid: int | None) -> str:
    return f"pid {pid}" if pid is not None else "pid unknown"


def state_lock_holder(state_root: Path) -> int | None:
    """The PID holding `<state>/wnr.lock`, without taking it (a look, never a race with a
    daemon starting: `wnr get` must not keep one from taking the lock)."""
    try:
        fd = os.open(Path(state_root) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return holder_pid(fd)
    finally:
        os.close(fd)
