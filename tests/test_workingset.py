"""The working set (issue 14): page cache is not a job's memory; anonymous and shared memory are.

Real processes: one maps a file it read (file-backed pages, which the kernel
reclaims), one allocates anonymous memory, one fills a shared-memory mapping.
The sampled path (no memory controller, as on this host) must count the last two
and not the first; the kernel path is proven in the VM tier's memory.stat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.observe.workingset import (
    ProportionalCache,
    sampled_working_set,
    working_set_within,
)
from tests.conftest import wait_for

MiB = 1 << 20
TOUCH = "sum(m[i] for i in range(0, len(m), 4096))"


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Three processes holding 64 MiB each: of a mapped file, anonymous, shared (/dev/shm)."""
    data = tmp_path / "data"
    data.write_bytes(b"x" * (64 * MiB))
    shm = Path("/dev/shm") / f"wnr-test-{tmp_path.name}"
    scripts = {
        "file": f"import mmap, time; f = open({str(data)!r}, 'rb'); "
        f"m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); {TOUCH}; print(1, flush=True); "
        "time.sleep(600)",
        "anon": "import time; b = bytearray(64 << 20); print(1, flush=True); time.sleep(600)",
        "shared": f"import mmap, time; f = open({str(shm)!r}, 'w+b'); f.truncate(64 << 20); "
        "m = mmap.mmap(f.fileno(), 0); m[:] = b'x' * len(m); print(1, flush=True); "
        "time.sleep(600)",
    }
    started = {
        name: subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        for name, script in scripts.items()
    }
    try:
        for process in started.values():
            assert process.stdout is not None
            assert b"1\n" == process.stdout.readline()
        yield started
    finally:
        for process in started.values():
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        shm.unlink(missing_ok=True)


def rss(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_mapped_file_pages_are_resident_but_not_in_the_working_set(
    holders: dict[str, subprocess.Popen[bytes]],
) -> None:
    """A process that mapped and read a 64 MiB file has it resident, yet its working set is its interpreter's alone."""
    pid = holders["file"].pid
    wait_for(lambda: rss(pid) > 64 * MiB)
    assert sampled_working_set((pid,)) < 32 * MiB
    assert sampled_working_set((pid,), over=1 << 40) < 32 * MiB  # the bound, too


@pytest.mark.parametrize("kind", ["anon", "shared"])
def test_anonymous_and_shared_memory_are_in_the_working_set(
    holders: dict[str, subprocess.Popen[bytes]], kind: str
) -> None:
    """64 MiB of anonymous memory, or of a filled shared-memory mapping, is counted whole."""
    pid = holders[kind].pid
    assert 64 * MiB <= sampled_working_set((pid,)) < 96 * MiB
    assert sampled_working_set((pid,), over=1 << 40) + MiB >= sampled_working_set((pid,))


def test_the_cheapest_bound_that_stays_under_the_limit_is_taken(
    holders: dict[str, subprocess.Popen[bytes]],
) -> None:
    """Without swap statm's resident pages decide far below the limit; near it status, then smaps_rollup do, each never below the working set."""
    mapped, anon = holders["file"].pid, holders["anon"].pid
    exact = sampled_working_set((mapped,))
    resident, bounds = working_set_within((mapped,), 1 << 40, swap=False)
    assert bounds is None  # status was not read
    assert resident >= rss(mapped) - MiB  # the mapped file's pages count in this bound
    # Between the working set and the resident pages: status's bound decides (file pages out).
    under, bounds = working_set_within((mapped,), 48 * MiB, swap=False)
    assert bounds is not None
    assert under == sum(bounds) <= 48 * MiB
    assert exact <= under + MiB  # the counters behind a bound lag the page walk a little
    # Below the working set: the exact figure, whose excess the planner kills for.
    assert 64 * MiB <= working_set_within((anon,), 8 * MiB, swap=False)[0] < 96 * MiB
    # With swap configured statm cannot bound it (it has no swap): status is read first.
    assert working_set_within((anon,), 1 << 40, swap=True)[1] is not None


FORKER = (
    "import os, sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); "
    "print(1, flush=True); sys.stdin.readline(); pid = os.fork(); "
    "time.sleep(600) if pid == 0 else (print(pid, flush=True), time.sleep(600))"
)


def test_a_walked_figure_is_reused_while_the_counters_hold_and_until_it_is_old() -> None:
    """A process whose COW pages a fork starts sharing keeps its RSS but halves its PSS: the
    cache reuses the first figure until max_age, then walks again."""
    argv = [sys.executable, "-c", FORKER]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as parent:
        child = 0
        try:
            assert parent.stdin is not None
            assert parent.stdout is not None
            assert b"1\n" == parent.stdout.readline()
            cache = ProportionalCache(max_age=60.0)
            cache.start(1000.0)
            alone = cache.proportional(parent.pid, swap=True)
            assert alone > 64 * MiB
            parent.stdin.write(b"go\n")
            parent.stdin.flush()
            child = int(parent.stdout.readline())
            shared = sampled_working_set((parent.pid,))
            assert shared < alone - 24 * MiB  # the 64 MiB now count half in each
            cache.start(1059.0)
            assert alone == cache.proportional(parent.pid, swap=True)
            cache.start(1060.0)
            assert shared - MiB <= cache.proportional(parent.pid, swap=True) <= shared + MiB
        finally:
            if child:
                os.kill(child, signal.SIGKILL)
            parent.kill()
