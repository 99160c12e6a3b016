"""wnr as a pilot inside real Slurm 22.05 jobs (cgroup/v2), delegated by each mechanism.

One boot: slurmlab starts munged once and slurmctld/slurmd per mechanism (the SPANK
plugin; prolog.sh with its helper and epilog.sh). A pilot (`sbatch --mem=500M` as uid
2000, see slurmpilot) runs `wnr run --root auto`; the tests check the delegated root,
the kernel limits, a kernel OOM kill of one job only, what Slurm reports, and that
`scancel` leaves no process and no cgroup behind. Also: an srun step, a delegation of
fewer controllers (wnr says which limits the kernel cannot enforce), broken
configurations (logged; the job runs, the node stays idle), and the leak checks
failing when the cleanup hook is left out.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.guest.harness import MOUNT, remove_tree
from tests.vm.guest.slurmlab import (
    HELPER_LOG,
    HOME,
    MANIFESTS,
    NODE,
    RUN,
    SCOPE,
    UID,
    Cluster,
    leaks,
    prepare_guest,
    slurm,
    wait_clean,
    wait_until,
    write_wnr_conf,
)
from tests.vm.guest.slurmpilot import (
    FILES,
    HOG,
    SLEEPER,
    SLOT,
    MiB,
    keyed,
    make_pilot,
    read,
    wnr_daemon,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """munged for the module; slurmctld and slurmd are (re)started by each test."""
    prepare_guest()
    lab = Cluster()
    try:
        lab.start_munge()
        yield lab
    finally:
        lab.close()
        remove_tree(MOUNT / "system.slice")
        (MOUNT / "cgroup.subtree_control").write_text("-cpuset")


def print_time(capsys: pytest.CaptureFixture[str], what: str, started: float) -> None:
    """Each scenario's wall time, shown even when pytest captures output."""
    with capsys.disabled():
        print(f"\n[slurm] {what}: {time.monotonic() - started:.1f}s")


def run_pilot_and_cancel(cluster: Cluster, mechanism: str) -> str:
    """The full scenario under one mechanism with its cleanup; what Slurm recorded for the job."""
    cluster.start(mechanism)
    pilot = make_pilot(mechanism, SLOT, HOG.format(gate=HOME / mechanism / "go"), SLEEPER)
    job = cluster.sbatch(pilot.work / "pilot.sh", pilot.work)
    user = SCOPE / f"job_{job}" / "step_batch" / "user"
    wait_until(
        f"{user} and its delegation files owned by uid {UID}",
        lambda: {UID} == {Path(f"{user}{name}").stat().st_uid for name in FILES},
        120,
        0.5,
    )
    slot = user / "slot.pilot"
    wait_until("wnr's job.hog cgroup under the delegated root", (slot / "job.hog").exists, 300, 1)
    held = json.loads((pilot.work / "state" / "wnr.lock").read_text())  # wnr names its root
    assert (str(user), wnr_daemon()) == (held["root"], held["pid"])
    assert str(400 * MiB) == read(slot / "memory.max")
    assert "64" == read(slot / "pids.max")
    assert "100000 100000" == read(slot / "cpu.max")
    assert str(128 * MiB) == read(slot / "job.hog" / "memory.max")
    sleeper = slot / "job.sleeper" / "cgroup.procs"
    wait_until(
        "the sleeper's wrapper and payload", lambda: 2 == len(read(sleeper).split()), 120, 0.5
    )
    sleeper_pids = read(sleeper).split()
    pilot.gate.touch()
    wait_until(
        "the kernel's oom_kill in slot.pilot/memory.events",
        lambda: keyed(slot / "memory.events")["oom_kill"] >= 1,
        120,
        0.5,
    )
    wait_until("the hog's cgroup removed by wnr", lambda: not (slot / "job.hog").exists(), 120, 1)
    jobs = {j["metadata"]["name"]: j["status"] for j in pilot.wnr_get("jobs", user)}
    assert ("Failed", "OOMKilled") == (jobs["hog"]["phase"], jobs["hog"].get("reason")), jobs
    assert "Running" == jobs["sleeper"]["phase"], jobs
    # memory.oom.group on the job: every process of the hog dies, and nothing else.
    assert 0 == keyed(slot / "job.sleeper" / "memory.events")["oom_kill"]
    assert sleeper_pids == read(sleeper).split()
    assert wnr_daemon() is not None
    assert "RUNNING" == cluster.show_job(job)["JobState"]
    slurm("scancel", str(job))
    wait_until(f"job {job} gone from squeue", lambda: not cluster.listed(job), 120, 1)
    wait_clean(job, 60)
    if mechanism == "prolog":  # what the helper and the Epilog logged (the Prolog: nothing)
        log = HELPER_LOG.read_text()
        delegated = (
            rf"wnr-delegate\[\d+\] job {job}: delegated {re.escape(str(user))} to uid {UID}$"
        )
        removed = rf"epilog\.sh\[\d+\] job {job}: removed {re.escape(str(user.parent.parent))}$"
        assert re.search(delegated, log, re.MULTILINE), log
        assert re.search(removed, log, re.MULTILINE), log
        assert f"job {job}: the helper" not in log, log
    state = cluster.show_job(job)
    assert "0:125" == state["ExitCode"], state
    # memory.oom.group: every process of the hog counts (its shell and python).
    detected = rf"Detected \d+ oom-kill event\(s\) in StepId={job}\.batch"
    logs = {name: path.read_text() for name, path in (
        ("job output", pilot.work / "pilot.out"), ("slurmd.log", RUN / "slurmd.log"))}  # fmt: skip
    found = [name for name, text in logs.items() if re.search(detected, text)]
    assert found, f"{detected!r} in neither log"
    return (
        f"job {job} ended {state['JobState']} ExitCode={state['ExitCode']}, {detected!r} in {found}"
    )


def test_spank_plugin_delegates_the_batch_step_and_cleans_up_at_its_end(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """With wnr_spank.so: wnr enforces slot and job limits in step_batch/user, only the hog is OOM-killed, and scancel leaves nothing."""
    started = time.monotonic()
    ended = run_pilot_and_cancel(cluster, "plugin")
    print_time(capsys, f"SPANK plugin scenario ({ended})", started)


ESCAPE_IN_SRUN = """\
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
user=/sys/fs/cgroup${own%/task_*}
echo "job $SLURM_JOB_ID"
stat -c '%u %n' "$user" "$user/cgroup.procs" "$user/cgroup.subtree_control" "$user/cgroup.threads"
mkdir "$user/escape"
sleep 600 </dev/null >/dev/null 2>&1 &
echo $! >"$user/escape/cgroup.procs" && echo "escaped $!"
"""


def test_spank_plugin_delegates_an_srun_step_and_kills_what_escaped_from_it(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """An srun step's user cgroup is delegated too; a process the task moved into a cgroup of its own is killed and removed when the step ends."""
    started = time.monotonic()
    cluster.start("plugin")
    out = cluster.srun(ESCAPE_IN_SRUN)
    job = int(out.split()[1])
    user = SCOPE / f"job_{job}" / "step_0" / "user"
    owned = [f"{UID} {user}{name}" for name in FILES]
    assert owned == out.splitlines()[1:5], out
    assert "escaped " in out, out
    wait_clean(job, 60)
    print_time(capsys, f"SPANK plugin, an srun step (job {job})", started)


def test_prolog_helper_delegates_the_batch_step_and_epilog_cleans_up(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """With prolog.sh, its detached helper and epilog.sh: the same limits, OOM kill and a clean scancel."""
    started = time.monotonic()
    ended = run_pilot_and_cancel(cluster, "prolog")
    print_time(capsys, f"Prolog/helper/Epilog scenario ({ended})", started)


SRUN_IN_BATCH = """\
#!/bin/bash
srun --mem=50M bash -c '
own=$(sed -n "s/^0:://p" /proc/self/cgroup)
user=/sys/fs/cgroup${own%/task_*}
for _ in $(seq 200); do [ -O "$user/cgroup.procs" ] && break; sleep 0.2; done
stat -c "%u %n" "$user" "$user/cgroup.procs" "$user/cgroup.subtree_control" "$user/cgroup.threads"
'
"""


def test_prolog_helper_delegates_an_srun_step_inside_a_batch_job(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under the Prolog's helper an srun step of a batch job gets its own user cgroup delegated too, and the job leaves nothing."""
    started = time.monotonic()
    cluster.start("prolog")
    work = HOME / "prolog-srun"
    work.mkdir()
    script = work / "job.sh"
    script.write_text(SRUN_IN_BATCH)
    script.chmod(0o755)
    for path in (work, script):
        os.chown(path, UID, UID)
    job = cluster.sbatch(script, work)
    wait_until(f"job {job} gone from squeue", lambda: not cluster.listed(job), 180, 1)
    user = SCOPE / f"job_{job}" / "step_0" / "user"
    owned = [f"{UID} {user}{name}" for name in FILES]
    out = (work / "pilot.out").read_text()
    assert owned == [line for line in out.splitlines() if str(user) in line], out
    log = HELPER_LOG.read_text()
    for step in ("step_batch", "step_0"):
        delegated = rf"wnr-delegate\[\d+\] job {job}: delegated {re.escape(str(user.parent.parent / step / 'user'))} to uid {UID}$"
        assert re.search(delegated, log, re.MULTILINE), log
    wait_clean(job, 60)
    print_time(capsys, f"Prolog/helper/Epilog, an srun step in a batch job (job {job})", started)


def test_with_fewer_controllers_wnr_reports_unenforced_limits_and_a_pilot_that_ends_is_cleaned(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `controllers=cpu,memory` wnr writes no pids.max and says LimitsEnforced=False naming pids; when the pilot ends by itself after a job's OOM kill, Slurm says OUT_OF_MEMORY and the plugin leaves nothing."""
    started = time.monotonic()
    cluster.start("plugin-cpu-memory")
    pilot = make_pilot("cpu-memory", SLOT, HOG.format(gate=HOME / "cpu-memory" / "go"), SLEEPER)
    pilot.gate.touch()
    job = cluster.sbatch(pilot.work / "pilot.sh", pilot.work)
    user = SCOPE / f"job_{job}" / "step_batch" / "user"
    slot = user / "slot.pilot"
    wait_until("the sleeper running", lambda: read(slot / "job.sleeper" / "cgroup.procs"), 300, 1)
    assert {"cpu", "memory"} <= set(read(user / "cgroup.controllers").split())
    assert "pids" not in read(user / "cgroup.controllers").split()
    assert not (slot / "pids.max").exists()
    assert str(400 * MiB) == read(slot / "memory.max")
    [status] = [item["status"] for item in pilot.wnr_get("slots", user)]
    limits = {c["type"]: c for c in status["conditions"]}["LimitsEnforced"]
    assert ("False", "ControllersMissing") == (limits["status"], limits["reason"]), limits
    assert "the kernel has no pids controller" in limits["message"], limits
    wait_until("the hog's OOM kill", lambda: keyed(slot / "memory.events")["oom_kill"] >= 1, 120, 1)
    daemon = wnr_daemon()
    assert daemon is not None
    os.kill(daemon, signal.SIGTERM)  # the pilot's batch script (wnr, exec'd) ends by itself
    wait_until(f"job {job} gone from squeue", lambda: not cluster.listed(job), 120, 1)
    wait_clean(job, 60)
    state = cluster.show_job(job)
    assert ("OUT_OF_MEMORY", "0:125") == (state["JobState"], state["ExitCode"]), state
    print_time(capsys, f"SPANK plugin, controllers=cpu,memory, pilot ends (job {job})", started)


UNDELEGATED_SRUN = """\
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "job $SLURM_JOB_ID owner $(stat -c %u "/sys/fs/cgroup${own%/task_*}/cgroup.procs")"
sleep 3
"""
BAD_CONF = "scope = /sys/fs/cgroup/nope\nwait = 2\ncontrollers = cpu; rm -rf /\nbogus = 1\n"


@pytest.mark.parametrize(
    ("mechanism", "logged"),
    [
        ("plugin-bad-args", "wnr_spank: ignoring unknown argument 'x=1'"),
        ("prolog", "no step with user/task_0 in /sys/fs/cgroup/nope/job_"),
    ],
)
def test_a_broken_configuration_never_fails_a_job_or_drains_the_node(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], mechanism: str, logged: str
) -> None:
    """A wrong scope and bad arguments (plugin) or a bad wnr.conf (helper, Epilog) are logged; the job runs undelegated and the node stays idle."""
    started = time.monotonic()
    cluster.start(mechanism)
    write_wnr_conf(BAD_CONF)
    try:
        out = cluster.srun(UNDELEGATED_SRUN)
        job = int(out.split()[1])
        assert f"job {job} owner 0" == out.strip(), out
        wait_until("the node idle again", lambda: "idle" == cluster.node_state(), 60, 1)
        wait_clean(job, 60)
    finally:
        write_wnr_conf("")
    logs = (RUN / "slurmd.log").read_text() + (
        HELPER_LOG.read_text() if HELPER_LOG.exists() else ""
    )
    assert logged in logs
    assert "drain" not in cluster.node_state()
    print_time(capsys, f"broken configuration, {mechanism} (job {job})", started)


def test_without_the_cleanup_hook_a_cancelled_pilot_leaks(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Delegation without the Epilog: after scancel wnr's payload and the job's cgroups outlive the job, until epilog.sh runs."""
    started = time.monotonic()
    cluster.start("prolog-without-epilog")
    pilot = make_pilot("no-epilog", SLOT, SLEEPER)
    job = cluster.sbatch(pilot.work / "pilot.sh", pilot.work)
    sleeper = SCOPE / f"job_{job}" / "step_batch" / "user" / "slot.pilot" / "job.sleeper"
    wait_until("the sleeper running", lambda: read(sleeper / "cgroup.procs"), 300, 1)
    slurm("scancel", str(job))
    wait_until(f"job {job} gone from squeue", lambda: not cluster.listed(job), 120, 1)
    stepd = SCOPE / f"job_{job}" / "step_batch" / "slurm"
    wait_until(
        "slurmstepd gone", lambda: not stepd.exists() or not read(stepd / "cgroup.procs"), 60, 1
    )
    time.sleep(2)
    left = leaks(job)
    assert any(line.endswith(" sleep") for line in left), left
    assert f"cgroup {sleeper}" in left, left
    env = {"SLURM_JOB_ID": str(job), "SLURM_JOB_UID": str(UID), "SLURMD_NODENAME": NODE}
    subprocess.run([str(MANIFESTS / "epilog.sh")], env=env, check=True, timeout=120)
    wait_clean(job, 60)
    print_time(capsys, "no-cleanup scenario (leaks, then epilog.sh by hand)", started)
