"""Reading /proc for the membership check (reconciler.observe.membership) and the working set
(reconciler.observe.workingset), part of observe; and the identity check apply makes before
it signals a process outside the owned cgroups.

A process is named by its PID and its start time (field 22 of /proc/<pid>/stat,
clock ticks since boot): a PID may be reused, the pair never is. The session
id tells a job's processes: apply spawns each wrapper with setsid, so the
payload and whatever it forks share the wrapper's PID as their session id
unless they call setsid themselves; the parent PID catches those that do while
their parent lives. Every reader here costs one small read per process; the
walk over every process (`every_process`) is done only when a job ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.host.keptfiles import OwnerFiles

_HZ = os.sysconf("SC_CLK_TCK")
_boot_time: float | None = None


@dataclass(frozen=True)
class ProcInfo:
    """What /proc/<pid>/stat says of one live process."""

    pid: int
    ppid: int
    sid: int
    start: int  # clock ticks after boot: with the PID, one process and never another
    comm: str

    @property
    def started_at(self) -> float:
        """The start as a wall-clock time (to 1/HZ), to compare with recorded spawn times."""
        return boot_time() + self.start / _HZ


def boot_time() -> float:
    """The `btime` of /proc/stat (the boot, in seconds since the epoch); read once."""
    global _boot_time  # noqa: PLW0603 - a fact of the boot, cached for the process's life
    if _boot_time is None:
        _boot_time = 0.0
        with open("/proc/stat", "rb") as handle:
            for line in handle:
                if line.startswith(b"btime "):
                    _boot_time = float(line.split()[1])
                    break
    return _boot_time


def read(pid: int, name: str, files: OwnerFiles | None = None) -> bytes:
    """`/proc/<pid>/<name>` in one read(2); b"" for a process that is gone. With `files`,
    through a descriptor kept open between reads (a sampler's).

    The files read here (stat, statm, status, smaps_rollup, cgroup) are a few KiB at most
    and produced whole by the kernel at the first read: one read(2) of 16 KiB takes all of
    it, at a third of what a Python file object's open, read and close cost."""
    if files is not None:
        try:
            return files.read(f"/proc/{pid}/{name}") or b""
        except OSError:
            return b""  # as below: any failure to read a process's file is the process gone
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 16384)
    except OSError:
        return b""
    finally:
        os.close(fd)


def stat(pid: int) -> ProcInfo | None:
    """The process as /proc shows it now; None when it is gone or a zombie (dead already)."""
    data = read(pid, "stat")
    # comm may hold spaces and parentheses: the fields start after the last ')'.
    close = data.rfind(b")")
    fields = data[close + 2 :].split()
    if close < 0 or len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    comm = data[data.find(b"(") + 1 : close].decode(errors="replace")
    return ProcInfo(pid, int(fields[1]), int(fields[3]), int(fields[19]), comm)


def cgroup_of(pid: int) -> str | None:
    """The process's cgroup2 path as /proc/<pid>/cgroup shows it (relative to the mount)."""
    for line in read(pid, "cgroup").splitlines():
        if line.startswith(b"0::"):
            return line[3:].decode(errors="replace")
    return None


def every_process() -> Iterator[ProcInfo]:
    """Every live process on the host (of this PID namespace): the bounded scan at a job's end."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = stat(int(name))
            if info is not None:
                yield info


def is_same(pid: int, start: int) -> bool:
    """Whether the PID still names the process that started at `start`."""
    info = stat(pid)
    return info is not None and info.start == start


def within(path: str, ancestor: str) -> bool:
    """Whether a cgroup path (as /proc shows it) is `ancestor` or below it."""
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")
