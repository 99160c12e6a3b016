"""Live usage on the real cgroup2 mount: `live_usage` of real jobs' cgroups, `wnr top`, and
the usage `get jobs -o wide` and `describe` show."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.observed import Need
from reconciler.model.usage import KERNEL, SAMPLED, LiveUsage, cores_between
from reconciler.observe.liveusage import (
    kernel_pids,
    live_usage,
    live_usages,
    parse_counter,
)
from reconciler.observe.usage import Sampler
from reconciler.observe.workingset import kernel_working_set
from reconciler.top import by_usage
from tests.conftest import make_cgroup_root, remove_tree
from tests.helpers import common, wnr

MiB = 2**20
SPECS = """\
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: s}
spec:
  resources: {cpus: 2, memory: 1Gi, pids: 100}
  terminationGracePeriodSeconds: 1
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: burner}
spec: {slot: s, command: [python3, -c, "while True: pass"]}
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: hog}
spec: {slot: s, command: [python3, -c, "import time; b = b'x' * (64 * 2**20); time.sleep(600)"]}
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: forker}
spec: {slot: s, command: [sh, -c, "sleep 600 & sleep 600 & wait"]}
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: done}
spec: {slot: s, command: ["true"]}
"""


class Node:
    """The jobs of SPECS started by `wnr apply --wait` under a unique root, still running."""

    def __init__(self, root: Path, specs: Path, state: Path) -> None:
        self.root = root
        self.fs = CgroupFS(root)
        self.flags = common(specs, root, state)

    def wnr(self, *args: str, check: int | None = 0) -> str:
        """A `wnr` command with this node's flags; its stdout."""
        return wnr(*args, *self.flags, check=check).stdout


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One apply for the whole module (the jobs run for minutes); the tree is removed after."""
    root = make_cgroup_root()
    base = tmp_path_factory.mktemp("liveusage")
    specs, state = base / "specs", base / "state"
    specs.mkdir()
    state.mkdir()
    (specs / "specs.yaml").write_text(SPECS)
    try:
        running = Node(root, specs, state)
        running.wnr("apply", "--wait", "--timeout", "30")
        # The hog's 64 MiB take a moment to be written; the forker's sleeps to be forked.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _settled(running.fs):
            time.sleep(0.05)
        yield running
    finally:
        remove_tree(root)


def _settled(fs: CgroupFS) -> bool:
    hog, forker = live_usage(fs, "slot.s/job.hog"), live_usage(fs, "slot.s/job.forker")
    return (
        hog is not None and hog.memory_bytes > 64 * MiB and forker is not None and forker.pids == 4
    )


def rows(text: str) -> list[list[str]]:
    """A table's rows below its header, split into cells."""
    return [line.split() for line in text.splitlines()[1:]]


def test_cpu_seconds_of_a_busy_job_are_positive_and_grow(node: Node) -> None:
    """A job that burns CPU shows CPU seconds above 0, and more half a second later."""
    first = live_usage(node.fs, "slot.s/job.burner")
    time.sleep(0.5)
    second = live_usage(node.fs, "slot.s/job.burner")
    assert first is not None
    assert second is not None
    assert 0 < first.cpu_seconds < second.cpu_seconds


def test_memory_of_a_job_holding_64_mib_is_within_reason(node: Node) -> None:
    """A job holding 64 MiB shows between 64 and 96 MiB (its interpreter and the wrapper on top), sampled where the memory controller is off."""
    usage = live_usage(node.fs, "slot.s/job.hog")
    assert usage is not None
    assert 64 * MiB < usage.memory_bytes < 96 * MiB
    kernel = (node.root / "slot.s" / "job.hog" / "memory.current").exists()
    assert (KERNEL if kernel else SAMPLED) == usage.source


def test_pids_count_the_tasks_a_job_forks(node: Node) -> None:
    """`sh -c 'sleep & sleep & wait'` counts 4 tasks (the wrapper, sh and two sleeps); a job that forks nothing counts 2."""
    forker = live_usage(node.fs, "slot.s/job.forker")
    burner = live_usage(node.fs, "slot.s/job.burner")
    assert forker is not None
    assert burner is not None
    assert (4, 2) == (forker.pids, burner.pids)


def test_a_slot_totals_its_jobs(node: Node) -> None:
    """The slot's memory and pids are at least those of its jobs together, its CPU seconds at least the burner's."""
    jobs = [live_usage(node.fs, f"slot.s/job.{n}") for n in ("burner", "hog", "forker")]
    slot = live_usage(node.fs, "slot.s")
    assert slot is not None
    present = [u for u in jobs if u is not None]
    assert 3 == len(present)
    assert sum(u.pids for u in present) == slot.pids
    assert slot.memory_bytes >= 0.9 * sum(u.memory_bytes for u in present)
    assert slot.cpu_seconds >= present[0].cpu_seconds


def test_a_cgroup_that_is_gone_reads_as_none(node: Node) -> None:
    """A job that ended (its cgroup removed) and one that never ran give None, not an error."""
    assert not (node.root / "slot.s" / "job.done").exists()
    assert (None, None) == (
        live_usage(node.fs, "slot.s/job.done"),
        live_usage(node.fs, "slot.s/job.never"),
    )
    assert {} == live_usages(node.fs, {"done": "slot.s/job.done"}, interval=0)


def test_kernel_counters_parse_what_the_kernel_writes(node: Node) -> None:
    """pids.current and the working set from memory.stat read as the kernel writes them where the controllers are on, as None where they are off."""
    job = node.root / "slot.s" / "job.hog"
    pids = job / "pids.current"
    assert (int(pids.read_text()) if pids.exists() else None) == kernel_pids(
        node.fs, "slot.s/job.hog"
    )
    stat = job / "memory.stat"
    working = kernel_working_set(node.fs, "slot.s/job.hog")
    if not stat.exists():
        assert working is None
    else:
        counters = dict(line.split() for line in stat.read_text().splitlines())
        expected = sum(int(counters[k]) for k in ("anon", "shmem", "kernel_stack"))
        assert working is not None
        assert abs(expected - working) < 8 * MiB  # it moves between the two reads
    assert (None, None, 42) == (parse_counter(None), parse_counter("max"), parse_counter("42"))


def test_detail_reads_swap_throttling_and_pressure_where_the_kernel_has_them(node: Node) -> None:
    """With detail (the metrics sample), swap, throttled time and PSI totals match the burner's files, and are None where a file is missing (no memory or cpu controller here)."""
    job = node.root / "slot.s" / "job.burner"
    usage = live_usage(node.fs, "slot.s/job.burner", detail=True)
    assert usage is not None
    swap = job / "memory.swap.current"
    assert (int(swap.read_text()) if swap.exists() else None) == usage.swap_bytes
    stat = dict(line.split() for line in (job / "cpu.stat").read_text().splitlines())
    throttled = int(stat["throttled_usec"]) / 1e6 if "throttled_usec" in stat else None
    assert throttled == usage.throttled_seconds
    if not (job / "cpu.pressure").exists():
        assert usage.stall_seconds is None
    else:
        assert usage.stall_seconds is not None
        cpu_stall = usage.stall_seconds[0]
        line = (job / "cpu.pressure").read_text().splitlines()[0]
        later = int(line.rpartition("total=")[2]) / 1e6
        assert 0 <= cpu_stall <= later
    plain = live_usage(node.fs, "slot.s/job.burner")
    assert plain is not None
    assert (None, None, None) == (plain.swap_bytes, plain.throttled_seconds, plain.stall_seconds)


def test_the_metrics_sample_is_taken_at_most_every_metrics_interval(node: Node) -> None:
    """The sampler takes a job's live usage on its first sample and again only once metrics_interval passed (samples due between keep it); without metrics_interval it takes none."""
    sampler = Sampler()
    need = Need(rel="slot.s/job.burner", busy_cpus=0.1, interval=5.0, metrics_interval=15.0)
    taken = [
        sampler.sample(node.fs, {"burner": need}, at)["burner"] for at in (100.0, 105.0, 115.0)
    ]
    assert [100.0, 100.0, 115.0] == [u.live_at for u in taken]
    assert taken[0].live is taken[1].live
    assert taken[2].live is not None
    psi = (node.root / "slot.s" / "job.burner" / "cpu.pressure").exists()
    assert psi == (taken[2].live.stall_seconds is not None)  # read with detail
    plain = Sampler().sample(node.fs, {"burner": Need(rel="slot.s/job.burner")}, 100.0)["burner"]
    assert (None, None) == (plain.live, plain.live_at)


def test_the_rate_in_cores_is_the_cpu_seconds_over_the_clock_between_reads(node: Node) -> None:
    """With a fake clock that says 10 s passed during a real 0.5 s sleep, the burner's rate is its CPU seconds over 10 s; the sleep is asked for the interval."""
    ticks = iter([0.0, 0.0, 10.0, 10.0])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    cgroups = {"burner": "slot.s/job.burner", "forker": "slot.s/job.forker"}
    start = live_usage(node.fs, "slot.s/job.burner")
    usage = live_usages(node.fs, cgroups, 0.5, clock=lambda: next(ticks), sleep=sleep)
    assert start is not None
    assert usage["burner"].cores is not None
    assert [0.5] == slept
    # Its own first read comes after `start`, so its CPU seconds between are no more.
    used = usage["burner"].cpu_seconds - start.cpu_seconds
    assert 0.001 < usage["burner"].cores <= used / 10
    assert 0.0 == usage["forker"].cores


def test_cores_between_and_ordering_are_plain_arithmetic() -> None:
    """The rate is the CPU seconds over the time between reads (0 without time); top orders by the key asked for, ties by name."""
    assert (0.25, 0.0, 0.0) == (
        cores_between(1.0, 10.0, 1.5, 12.0),
        cores_between(1.0, 10.0, 2.0, 10.0),
        cores_between(2.0, 10.0, 1.0, 11.0),
    )
    usage = {
        "a": LiveUsage(5.0, 10 * MiB, SAMPLED, 1, 0.1),
        "b": LiveUsage(1.0, 90 * MiB, SAMPLED, 3, 0.9),
        "c": LiveUsage(9.0, 90 * MiB, SAMPLED, 7, None),
    }
    assert (["c", "b", "a"], ["b", "a", "c"], ["c", "b", "a"]) == (
        by_usage(usage, "memory"),
        by_usage(usage, "cpu"),
        by_usage(usage, "pids"),
    )


def test_wnr_top_jobs_orders_by_memory_cpu_or_pids(node: Node) -> None:
    """`wnr top jobs` lists the running jobs by memory (the hog first), `--sort-by cpu` puts the burner first at up to a core, `--sort-by pids` the forker."""
    by_memory = node.wnr("top", "jobs", "--interval", "0.5")
    assert ["NAME", "SLOT", "CPU(cores)", "CPU(s)", "MEMORY", "PIDS"] == by_memory.split("\n")[
        0
    ].split()
    assert ["hog", "burner", "forker"] == [row[0] for row in rows(by_memory)]
    by_cpu = rows(node.wnr("top", "jobs", "--sort-by", "cpu", "--interval", "0.5"))
    assert "burner" == by_cpu[0][0]
    # One busy thread: up to a core, less on a loaded machine, but never nothing.
    assert 50 < int(by_cpu[0][2].removesuffix("m")) <= 1100
    by_pids = rows(node.wnr("top", "jobs", "--sort-by", "pids", "--interval", "0"))
    assert ["forker", "4"] == [by_pids[0][0], by_pids[0][5]]
    assert "<none>" == by_pids[0][2]  # no interval, no rate


def test_wnr_top_slots_shows_usage_beside_the_limits(node: Node) -> None:
    """`wnr top slots` shows each amount over the slot's limit, and `wnr top` both tables."""
    [slot] = rows(node.wnr("top", "slots", "--interval", "0.2"))
    assert ("s", "2", "1Gi", "8/100", "3/4") == (
        slot[0],
        slot[1].split("/")[1],
        slot[3].split("/")[1],
        slot[4],
        slot[5],
    )
    both = node.wnr("top", "--interval", "0").split("\n\n")
    assert [["s"], ["hog", "burner", "forker"]] == [[r[0] for r in rows(t)] for t in both]


def test_get_jobs_wide_shows_usage_of_running_jobs_only(node: Node) -> None:
    """`get jobs -o wide` has CPU(S), MEMORY and PIDS: figures for running jobs, <none> for the job that ended."""
    text = node.wnr("get", "jobs", "-o", "wide")
    headers = text.split("\n")[0].split()
    assert ["CPU(S)", "MEMORY", "PIDS", "MESSAGE"] == headers[9:]
    cells = {row[0]: row[9:12] for row in rows(text)}
    assert ["<none>"] * 3 == cells["done"]
    assert "4" == cells["forker"][2]
    assert cells["hog"][1].endswith("Mi")
    assert 64 < float(cells["hog"][1][:-2]) < 96
    assert float(cells["burner"][0]) > 0


def test_describe_shows_a_jobs_usage_and_the_slots_totals(node: Node) -> None:
    """`describe job` has a Usage block naming how the working set was taken, `<none>` for a job that ended; `describe slot` the slot's totals."""
    hog = node.wnr("describe", "job", "hog").split("Usage:", 1)[1].split("Conditions:")[0]
    fields = dict(line.strip().split(":", 1) for line in hog.strip().splitlines())
    kernel = (node.root / "slot.s" / "job.hog" / "memory.current").exists()
    # The kernel's memory.current and memory.peak (cache too), <none> where it has none.
    assert ["CPU Seconds", "Memory", "Memory Current", "Memory Peak", "Pids"] == list(fields)
    assert "2" == fields["Pids"].strip()
    assert (
        fields["Memory"]
        .strip()
        .endswith(
            "working set (kernel: memory.stat anon+shmem+kernel_stack, +swap)"
            if kernel
            else "working set (sampled: Pss_Anon+Pss_Shmem+SwapPss of its processes, "
            "no memory controller)"
        )
    )
    done = node.wnr("describe", "job", "done")
    assert "Usage:  <none> (not running)" in done.splitlines()
    slot = node.wnr("describe", "slot", "s").split("Usage:", 1)[1].split("Conditions:")[0]
    assert "  Pids:           8" in slot.splitlines()


def test_bad_top_arguments_are_refused_by_name(node: Node) -> None:
    """An unknown --sort-by and a negative --interval exit non-zero naming the flag."""
    result = wnr("top", "jobs", "--sort-by", "disk", *node.flags, check=2)
    assert "--sort-by" in result.stderr
    result = wnr("top", "--interval", "-1", *node.flags, check=1)
    assert "wnr: error: --interval must not be negative, not -1\n" == result.stderr


def test_usage_counts_processes_in_cgroups_nested_below_a_job(cgroup_root: Path) -> None:
    """A process in a cgroup a payload nested inside its job's (a container runtime's) counts in the job's and the slot's memory and pids."""
    fs = CgroupFS(cgroup_root)
    cgroup_root.mkdir()
    fs.mkdir("slot.n")
    fs.mkdir("slot.n/job.c")
    inner = fs.path("slot.n/job.c") / "inner"
    inner.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (inner / "cgroup.procs").write_text(str(sleeper.pid))
        job, slot = live_usage(fs, "slot.n/job.c"), live_usage(fs, "slot.n")
        assert job is not None
        assert slot is not None
        assert (1, 1) == (job.pids, slot.pids)
        assert 0 < job.memory_bytes
    finally:
        sleeper.kill()
        sleeper.wait()
    emptied = live_usage(fs, "slot.n/job.c")
    assert emptied is not None
    assert (0, 0) == (emptied.pids, emptied.memory_bytes)


def test_top_before_anything_runs_says_so_and_creates_nothing(tmp_path: Path) -> None:
    """`wnr top` on a node where nothing was applied yet says there are no slots and no running jobs, exits 0 and creates neither root nor state dir."""
    root = make_cgroup_root()
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(SPECS)
    state = tmp_path / "state"
    try:
        result = wnr("top", "--interval", "0", *common(specs, root, state), check=0)
        created = (root.exists(), state.exists())
    finally:
        remove_tree(root)  # were it created after all
    lines = result.stderr.splitlines()
    assert "" == result.stdout
    assert "wnr: no daemon runs on this state dir: showing a dry pass" == lines[0]
    assert ["No slots found.", "No running jobs found."] == lines[-2:]
    assert (False, False) == created


def test_the_metrics_sample_reuses_what_enforcement_read_and_matches_a_fresh_read(
    node: Node,
) -> None:
    """A sample that enforces memory and pids and takes metrics gives the forker's and the
    hog's live usage as a fresh read does (the same tasks; memory within what moves)."""
    sampler = Sampler()
    needs = {
        name: Need(
            rel=f"slot.s/job.{name}",
            memory_over=1 << 40,
            tasks=True,
            metrics_interval=15.0,
            controllers=frozenset(),
        )
        for name in ("forker", "hog")
    }
    sampled = sampler.sample(node.fs, needs, 100.0)
    for name in needs:
        live, fresh = sampled[name].live, live_usage(node.fs, f"slot.s/job.{name}")
        assert live is not None
        assert fresh is not None
        assert (fresh.pids, SAMPLED) == (live.pids, live.source)
        assert abs(fresh.memory_bytes - live.memory_bytes) < 8 * MiB
