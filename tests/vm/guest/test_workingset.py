"""The working set on the real kernel (issue 14): page cache a job reads is in memory.current,
not in the working set wnr reports (memory.stat anon + shmem + kernel_stack)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.vm.guest.harness import MiB, Wnr, wait_for

# The host's root is shared into the guest with the page cache on (9p cache=loose): reading
# one of its big files fills the reading job's cache.
SEARCHED = ("/usr/lib", "/usr/share", "/usr/bin")


def big_file(least: int = 40 * MiB) -> Path:
    """Some file of the host's root of at least `least` bytes."""
    for top in SEARCHED:
        for directory, _, names in os.walk(top):
            for name in names:
                path = Path(directory) / name
                if path.is_file() and not path.is_symlink() and path.stat().st_size >= least:
                    return path
    raise AssertionError(f"no file of {least} bytes under {SEARCHED}")


def test_page_cache_is_in_memory_current_but_not_in_the_working_set(wnr: Wnr) -> None:
    """A job that read a 40+ MiB file holds it as cache: memory.current counts it, describe's working set does not."""
    source = big_file()
    size = source.stat().st_size
    wnr.slot("s", {"memory": "1Gi"})
    wnr.job("reader", "s", ["sh", "-c", f"cat {source} > /dev/null; exec sleep 600"])
    wnr.run("apply")

    def cached() -> int:
        return wnr.keyed("slot.s/job.reader", "memory.stat").get("file", 0)

    wait_for("the file in the job's page cache", lambda: cached() >= size // 2, 180)
    stat = wnr.keyed("slot.s/job.reader", "memory.stat")
    working = stat["anon"] + stat["shmem"] + stat["kernel_stack"]
    assert int(wnr.read("slot.s/job.reader", "memory.current")) >= size // 2
    assert working < 32 * MiB, stat
    shown = wnr.run("describe", "job", "reader").stdout
    lines = {
        k.strip(): v.strip() for k, _, v in (line.partition(":") for line in shown.splitlines())
    }
    assert lines["Memory"].endswith(
        "working set (kernel: memory.stat anon+shmem+kernel_stack, +swap)"
    )
    assert lines["Memory Current"].endswith("(memory.current, cache too)"), lines
    assert lines["Memory Peak"].endswith("(memory.peak, cache too)"), lines
