"""Kept descriptors (reconciler.host.keptfiles): on the real cgroup2 mount and real processes, a
kept descriptor reads what is there now, and what it named being gone is never read as another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.loop import KEPT_MARGIN, kept_capacity
from reconciler.host import procfs
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.keptfiles import KeptFiles, OwnerFiles
from reconciler.model.observed import Need
from reconciler.observe.usage import Sampler


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Started processes, killed after the test."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill()
            process.wait()


@pytest.fixture
def fs(cgroup_root: Path) -> CgroupFS:
    """The test's root with one slot cgroup, `slot.a`, made."""
    made = CgroupFS(cgroup_root)
    made.mkdir("")
    made.mkdir("slot.a")
    return made


def sleep_in(fs: CgroupFS, rel: str, started: list[subprocess.Popen[bytes]]) -> int:
    """A `sleep` this test started, moved into the cgroup."""
    process = subprocess.Popen(["sleep", "600"])
    started.append(process)
    fs.write(rel, "cgroup.procs", str(process.pid))
    return process.pid


def test_a_kept_cgroup_procs_reads_who_is_there_now(
    fs: CgroupFS, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """A kept cgroup.procs shows a process that joined after it was opened, and not one that left."""
    kept = KeptFiles(capacity=8)
    first = sleep_in(fs, "slot.a", sleepers)
    assert (first,) == fs.procs("slot.a", OwnerFiles(kept, "a"))
    assert 1 == len(kept)
    second = sleep_in(fs, "slot.a", sleepers)
    assert (first, second) == fs.procs("slot.a", OwnerFiles(kept, "a"))
    fs.write("", "cgroup.procs", str(first))
    assert (second,) == fs.procs("slot.a", OwnerFiles(kept, "a"))
    assert 1 == len(kept)  # the same descriptor all along


def test_a_removed_cgroup_is_not_read_through_its_old_descriptor(
    fs: CgroupFS, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """rmdir works with the descriptor open; the path then reads as absent, and a cgroup made anew under the name is read afresh."""
    kept = KeptFiles(capacity=8)
    assert () == fs.procs("slot.a", OwnerFiles(kept, "a"))
    fs.rmdir("slot.a")
    assert fs.read("slot.a", "cgroup.procs", OwnerFiles(kept, "a")) is None
    assert 0 == len(kept)
    fs.mkdir("slot.a")
    pid = sleep_in(fs, "slot.a", sleepers)
    assert (pid,) == fs.procs("slot.a", OwnerFiles(kept, "a"))


def test_a_kept_proc_file_of_an_ended_process_reads_as_gone(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    """A process's kept statm reads empty once the process has ended, and the descriptor is closed."""
    kept = KeptFiles(capacity=8)
    process = subprocess.Popen(["sleep", "600"])
    sleepers.append(process)
    assert b"" != procfs.read(process.pid, "statm", OwnerFiles(kept, "a"))
    assert 1 == len(kept)
    process.kill()
    process.wait()
    assert b"" == procfs.read(process.pid, "statm", OwnerFiles(kept, "a"))
    assert 0 == len(kept)


def test_a_long_thread_list_reads_whole_through_a_kept_descriptor(
    fs: CgroupFS, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """cgroup.threads of 1,500 threads (several pages, handed out a page per read) reads the same kept as opened afresh."""
    script = (
        "import threading, time\n"
        "for _ in range(1499): threading.Thread(target=time.sleep, args=(600,), daemon=True)"
        ".start()\n"
        "print(1, flush=True); time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    sleepers.append(process)
    fs.write("slot.a", "cgroup.procs", str(process.pid))
    assert process.stdout is not None
    assert b"1\n" == process.stdout.readline()
    process.stdout.close()
    kept = KeptFiles(capacity=8)
    fs.read("slot.a", "cgroup.threads", OwnerFiles(kept, "a"))
    fresh = fs.read("slot.a", "cgroup.threads")
    assert fresh is not None
    assert 1500 == len(fresh.split())
    assert fresh == fs.read("slot.a", "cgroup.threads", OwnerFiles(kept, "a"))


def test_descriptors_are_kept_up_to_the_capacity_and_released_with_their_owner(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    """Past the capacity files are read and closed; a lowered capacity closes the excess; an owner's release closes what it did not read again."""
    pids = [subprocess.Popen(["sleep", "600"]) for _ in range(3)]
    sleepers.extend(pids)
    kept = KeptFiles(capacity=2)
    files = OwnerFiles(kept, "a")
    assert all(procfs.read(p.pid, "statm", files) for p in pids)
    assert 2 == len(kept)
    files.done()
    assert 2 == len(kept)
    again = OwnerFiles(kept, "a")
    procfs.read(pids[0].pid, "statm", again)
    again.done()
    assert 1 == len(kept)
    procfs.read(pids[1].pid, "statm", OwnerFiles(kept, "b"))
    kept.capacity = 1
    kept.shrink()
    assert 1 == len(kept)
    kept.release("a")
    assert 0 == len(kept)


def test_the_sampler_closes_a_jobs_descriptors_when_it_is_no_longer_sampled(
    fs: CgroupFS, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """A job's limit samples keep its cgroup.procs, cgroup.threads and statm open; once the job is no longer sampled they are closed."""
    fs.mkdir("slot.a/job.j")
    sleep_in(fs, "slot.a/job.j", sleepers)
    sampler = Sampler()
    sampler.files.capacity = 16
    need = Need(rel="slot.a/job.j", memory_over=1 << 30, tasks=True, interval=5.0)
    usage = sampler.sample(fs, {"j": need}, 100.0)["j"]
    assert 1 == usage.tasks
    assert 3 == len(sampler.files)
    sampler.sample(fs, {}, 105.0)
    assert 0 == len(sampler.files)


def test_the_daemon_lends_the_sampler_only_what_waking_cannot_need() -> None:
    """Kept files get the waking budget less a pidfd and a cgroup.events per wrapper the specs can start, and nothing when that leaves none."""
    assert 10_000 - 2 * 300 - KEPT_MARGIN == kept_capacity(10_000, 300)
    assert 0 == kept_capacity(1_000, 600)


def test_descriptors_of_a_job_never_sampled_whole_are_closed_too(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    """Descriptors kept for a job that has no sample (its first one raised after keeping some) are closed once it is not sampled."""
    process = subprocess.Popen(["sleep", "600"])
    sleepers.append(process)
    sampler = Sampler()
    sampler.files.capacity = 4
    procfs.read(process.pid, "statm", OwnerFiles(sampler.files, "j"))
    assert 1 == len(sampler.files)
    sampler.sample(CgroupFS(Path("/nonexistent")), {}, 100.0)
    assert 0 == len(sampler.files)


RUN_OUT_OF_DESCRIPTORS = """
import json, os, resource, sys
from reconciler.host.keptfiles import KeptFiles
paths = sys.argv[1:]
kept = KeptFiles(capacity=1000)
open_now = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
read = [kept.read(p, "job").decode() for p in paths]
after = kept.capacity
kept.capacity = 1000  # what the daemon's next pass would set again
print(json.dumps({"read": read, "kept": len(kept), "capacity": after, "again": kept.capacity}))
"""


def test_a_process_out_of_descriptors_gives_back_kept_ones_and_reads_on(tmp_path: Path) -> None:
    """Where the process runs out of descriptors (EMFILE), reads go on: half the kept descriptors are closed and no more than those left are kept, though the capacity is set higher again."""
    paths = []
    for index in range(20):
        path = tmp_path / f"file-{index}"
        path.write_text(str(index))
        paths.append(str(path))

    result = subprocess.run(
        [sys.executable, "-c", RUN_OUT_OF_DESCRIPTORS, *paths],
        capture_output=True,
        text=True,
        check=True,
    )

    figures = json.loads(result.stdout)
    assert [str(i) for i in range(20)] == figures["read"]
    assert figures["kept"] <= figures["capacity"] < 8
    assert figures["capacity"] == figures["again"]
