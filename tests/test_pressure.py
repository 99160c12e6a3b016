"""Pressure in the idle policy (issue 14): a job stalled on I/O is `Stalled`, not idle.

The pure part reads the kernel's pressure files and turns two samples into
shares of the time; the real part runs the daemon against jobs on this host's
cgroup2 (which has PSI in every cgroup, controller or not): one that waits on
synchronous disk writes, one that sleeps, both below their CPU threshold.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.api import IdlePolicy
from reconciler.model.observed import Need, Stall, Usage
from reconciler.observe.pressure import some_total, stall_between
from reconciler.observe.usage import Sampler
from reconciler.plan.samples import active_at
from reconciler.status.conditions import stall_condition
from tests.conftest import wait_for
from tests.helpers import USER_SPACE_NODE, DaemonProcess, common, job_document, wnr

PRESSURE = "some avg10=1.50 avg60=0.40 avg300=0.10 total=2500000\nfull avg10=0.00 total=900\n"


def test_the_some_total_is_read_and_two_samples_give_shares_of_the_time() -> None:
    """`some total=` in microseconds; 2.5 s of memory stall over 10 s is 25 %, capped at 100 %."""
    assert (2_500_000, None, None) == (some_total(PRESSURE), some_total(""), some_total(None))
    stall = stall_between((0.0, (0, 0, 0)), (10.0, (1_000_000, 2_500_000, 20_000_000)))
    assert Stall(0.1, 0.25, 1.0) == stall
    assert stall_between((5.0, (0, 0, 0)), (5.0, (1, 1, 1))) is None


def test_a_recent_stall_keeps_a_job_from_counting_as_idle() -> None:
    """The idle clock runs from the later of the last busy and the last stalled sample."""
    assert 50.0 == active_at(Usage(sampled_at=60.0, busy_at=10.0, stalled_at=50.0))
    assert 10.0 == active_at(Usage(sampled_at=60.0, busy_at=10.0))
    assert active_at(Usage(sampled_at=60.0, stalled_at=50.0)) is None


def test_the_stalled_condition_gives_the_figures_and_needs_them() -> None:
    """Stalled=True past minStallFraction, False below it, absent without PSI figures."""
    policy = IdlePolicy()
    stalled = Usage(sampled_at=1.0, stall=Stall(0.0, 0.05, 0.6))
    [condition] = stall_condition(stalled, policy)
    assert ("Stalled", "True", "PressureStall") == (
        condition.type,
        condition.status,
        condition.reason,
    )
    assert condition.message.startswith("memory 5%, io 60%, cpu 0% of the last sample stalled")
    [calm] = stall_condition(Usage(sampled_at=1.0, stall=Stall(0.0, 0.01, 0.02)), policy)
    assert ("False", "NoPressure") == (calm.status, calm.reason)
    assert () == stall_condition(Usage(sampled_at=1.0), policy)


def test_a_job_waiting_on_disk_writes_is_stalled_while_a_sleeping_one_times_out(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Both below 90 % of a CPU for a 3 s window: the sleeper ends IdleTimeout; the synchronous writer is Stalled (io) and runs to its end."""
    specs = tmp_path / "specs"
    specs.mkdir()
    # 90 % of a CPU: far above what dd's 4 KiB synchronous writes use.
    idle = "idle: {windowSeconds: 3, minCpuFraction: 0.9}\nresources: {cpus: 1}\n"
    writer = "timeout 9 dd if=/dev/zero of=data bs=4k count=1000000 oflag=direct,dsync; true"
    (specs / "specs.yaml").write_text(
        USER_SPACE_NODE
        + job_document("writer", ["sh", "-c", writer], idle)
        + job_document("sleeper", ["sleep", "600"], idle)
    )
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.start()
    flags = common(specs, cgroup_root, state_dir)

    def status(name: str) -> dict[str, object]:
        shown = wnr("get", "jobs", name, *flags, "-o", "json", check=None).stdout
        return dict(json.loads(shown)["status"]) if shown else {}

    def stalled() -> dict[str, str]:
        conditions = status("writer").get("conditions", [])
        assert isinstance(conditions, list)
        return next((c for c in conditions if c["type"] == "Stalled"), {})

    try:
        wait_for(lambda: stalled().get("status") == "True", timeout=20)
        assert "io " in stalled()["message"], stalled()
        wait_for(lambda: status("sleeper").get("reason") == "IdleTimeout", timeout=20)
        assert "Running" == status("writer")["phase"]
        wait_for(lambda: status("writer").get("phase") == "Succeeded", timeout=30)
    finally:
        daemon.kill()


def test_a_first_sample_takes_its_stall_since_the_jobs_first_spawn(cgroup_root: Path) -> None:
    """With the first attempt's spawn time the first sample already has stall figures (over the time since, as the kernel's totals are); without it, none until the second."""
    fs = CgroupFS(cgroup_root)
    fs.mkdir("")
    fs.mkdir("slot.a")
    fs.mkdir("slot.a/job.j")
    need = Need(rel="slot.a/job.j", stall_fraction=0.1, busy_cpus=0.5, since=90.0)
    first = Sampler().sample(fs, {"j": need}, 100.0)["j"]
    assert Stall(0.0, 0.0, 0.0) == first.stall
    unknown = Sampler().sample(fs, {"j": replace(need, since=None)}, 100.0)["j"]
    assert unknown.stall is None
