"""Slot limits through the real kernel: what wnr writes is what cgroup v2 reads back, also live."""

from __future__ import annotations

from tests.vm.guest.harness import MiB, Wnr, alive, wait_for


def test_slot_limits_land_as_the_kernel_reads_them_back(wnr: Wnr) -> None:
    """Every Slot resource lands in its cgroup file as the kernel reads it back, and `plan` then exits 0."""
    wnr.slot(
        "s",
        {
            "cpus": 1.5,
            "memory": "300Mi",
            "memoryHigh": "250Mi",
            "swap": "64Mi",
            "pids": 50,
            "ioWeight": 200,
        },
    )
    wnr.apply()
    expected = {
        "cpu.max": "150000 100000",
        "memory.max": str(300 * MiB),
        "memory.high": str(250 * MiB),
        "memory.swap.max": str(64 * MiB),
        "pids.max": "50",
        "io.weight": "default 200",
    }
    assert expected == {name: wnr.read("slot.s", name) for name in expected}
    wnr.run("plan", check=0)


def test_slot_memory_changes_live_under_a_running_job(wnr: Wnr) -> None:
    """Raising a Slot's memory in its spec rewrites memory.max while its job keeps running, same PIDs."""
    wnr.slot("s", {"memory": "300Mi"})
    wnr.job("sleeper", "s", ["sleep", "600"])
    wnr.apply()
    pids = wnr.procs("slot.s/job.sleeper")
    assert 2 == len(pids), "the wrapper and its payload"
    assert str(300 * MiB) == wnr.read("slot.s", "memory.max")
    wnr.slot("s", {"memory": "400Mi"})
    wnr.apply()
    assert str(400 * MiB) == wnr.read("slot.s", "memory.max")
    assert pids == wnr.procs("slot.s/job.sleeper")
    assert [True, True] == [alive(pid) for pid in pids]


def test_live_usage_is_the_kernels_where_the_controllers_are_on(wnr: Wnr) -> None:
    """With memory and pids controllers on, `describe job` takes the working set from memory.stat (beside memory.current) and `top jobs` shows it and pids.current."""
    wnr.slot("s", {"memory": "300Mi", "pids": 50})
    hold = "import time; b = b'x' * (64 * 2**20); time.sleep(600)"
    wnr.job("hog", "s", ["python3", "-c", hold])
    wnr.apply()
    rel = "slot.s/job.hog"
    wait_for("the hog's 64 MiB", lambda: wnr.keyed(rel, "memory.stat")["anon"] > 64 * MiB)
    described = wnr.run("describe", "job", "hog").stdout
    assert "working set (kernel: memory.stat anon+shmem+kernel_stack, +swap)" in described
    assert "(memory.current, cache too)" in described
    [header, row] = wnr.run("top", "jobs", "--interval", "0").stdout.splitlines()
    cells = row.split()
    assert ["MEMORY", "PIDS"] == header.split()[4:]
    assert ["hog", wnr.read(rel, "pids.current")] == [cells[0], cells[5]]
    stat = wnr.keyed(rel, "memory.stat")
    working = (stat["anon"] + stat["shmem"] + stat["kernel_stack"]) / MiB
    # The working set moves between the two reads (a starting interpreter's heap).
    assert abs(working - float(cells[4].removesuffix("Mi"))) < 8
