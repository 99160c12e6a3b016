"""The job wrapper: one per attempt, the last step of apply's StartJob and the payload's parent.

Started by the process layer as `python -I -S wrapper.py RECORD PROCS WORKDIR -- ARGV...`
in a session of its own, so it outlives the daemon. It moves itself into the
job cgroup before anything else, so the payload and everything it forks are
in the cgroup from their first instruction; then it records `running`, runs
the payload, waits for it, and records how it ended (exit code or signal, CPU
seconds, peak RSS) atomically. Standard library only: it must stay light.
"""

from __future__ import annotations

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reconciler.atomicfile import read_json, write_json

# Exit codes of the wrapper itself when it never got to run the payload.
EXIT_CGROUP = 121
EXIT_SPAWN = 122


def _record(path: str, **fields: object) -> None:
    record = read_json(path) or {}
    record.update(fields)
    write_json(path, record)


def main(argv: list[str]) -> int:
    """Enter the cgroup, run the payload, record its end; returns the wrapper's exit code."""
    record_path, procs_path, workdir, separator, *command = argv
    if separator != "--" or not command:
        sys.stderr.write("usage: wrapper.py RECORD CGROUP_PROCS WORKDIR -- ARGV...\n")
        return 2
    try:
        fd = os.open(procs_path, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    except OSError as exc:
        _record(
            record_path, phase="failed-start", message=f"cannot enter cgroup {procs_path}: {exc}"
        )
        return EXIT_CGROUP

    terminating = []

    def forward(signum: int, _frame: object) -> None:
        # The daemon signals every process in the cgroup; the wrapper stays to record the end.
        terminating.append(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    try:
        os.chdir(workdir)
        pid = os.posix_spawnp(command[0], command, dict(os.environ), setsigdef=(signal.SIGHUP,))
    except OSError as exc:
        _record(
            record_path,
            phase="failed-start",
            message=f"cannot run {command[0]!r} in {workdir}: {exc.strerror}",
            finishedAt=time.time(),
        )
        return EXIT_SPAWN
    _record(record_path, phase="running", pid=pid, wrapperPid=os.getpid(), startedAt=time.time())

    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except ChildProcessError:  # pragma: no cover - only if something else reaped it
            status, usage = 0, None
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
    code = os.waitstatus_to_exitcode(status)
    _record(
        record_path,
        phase="exited",
        exitCode=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        coreDumped=os.WCOREDUMP(status) if os.WIFSIGNALED(status) else False,
        cpuSeconds=round(usage.ru_utime + usage.ru_stime, 3) if usage else None,
        peakMemoryBytes=usage.ru_maxrss * 1024 if usage else None,
        finishedAt=time.time(),
        terminatedBy=terminating[0] if terminating else None,
        oomKills=_oom_kills(os.path.dirname(procs_path)),
        coreFiles=_core_files(workdir),
    )
    return 0


def _core_files(workdir: str) -> list[str]:
    """Core dumps the payload left in its working directory (`core`, `core.<pid>`)."""
    try:
        names = os.listdir(workdir)
    except OSError:
        return []
    return sorted(n for n in names if n == "core" or (n.startswith("core.") and n[5:].isdigit()))


def _oom_kills(cgroup_dir: str) -> int | None:
    """The kernel's count of OOM kills in the job cgroup, None without the memory controller."""
    try:
        with open(os.path.join(cgroup_dir, "memory.events"), "rb") as handle:
            for line in handle.read().decode().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
