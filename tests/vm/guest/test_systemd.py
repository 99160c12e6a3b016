"""wnr under real systemd (the host's 252 as the guest's PID 1: tests/vm/run with VM_INIT=systemd).

manifests/wnr.service and wnr-slots.service are installed as they ship, with a
drop-in only for a short watchdog and restart delay, and ExecStart's
/usr/local/bin/wnr linked to this checkout's venv. Skipped unless PID 1 is
systemd. Each scenario starts from nothing (`fresh`): wnr.service stopped, the
jobs below wnr-slots.service's cgroup killed and removed, an empty state dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.guest.harness import MOUNT, REPO, alive, wait_for

pytestmark = pytest.mark.skipif(
    not Path("/run/systemd/system").is_dir() or Path("/proc/1/comm").read_text() != "systemd\n",
    reason="needs systemd as PID 1 (tests/vm/run with VM_INIT=systemd)",
)

# The delegated cgroup of the slots and jobs (wnr's root), and the daemon's own.
SLOTS = MOUNT / "system.slice" / "wnr-slots.service"
DAEMON = "0::/system.slice/wnr.service\n"
SPECS = Path("/etc/wnr/specs.d")
STATE = Path("/var/lib/wnr")
DROP_IN = "[Service]\nWatchdogSec=10s\nRestartSec=1\n"
SLOT = """\
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: s}
spec:
  user: root
  resources: {cpus: 1, memory: 256Mi, pids: 100}
"""


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`systemctl ARGS`; its output in the assertion message."""
    result = subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=240, check=False
    )
    if check:
        assert 0 == result.returncode, (
            f"systemctl {' '.join(args)}:\n{result.stdout}{result.stderr}"
        )
    return result


def show(*properties: str) -> dict[str, str]:
    """`systemctl show -p ... wnr` as a dict."""
    out = systemctl("show", "-p", ",".join(properties), "wnr").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def main_pid() -> int:
    """The unit's MainPID (0: none)."""
    return int(show("MainPID")["MainPID"])


def journal(*args: str) -> str:
    """wnr.service's journal since boot (`journalctl -u wnr -b ARGS`)."""
    out = subprocess.run(
        ["journalctl", "-u", "wnr", "--no-pager", "-b", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.stdout


def published() -> bool:
    """Whether daemon.json names the unit's current main process (the new daemon's first pass)."""
    return bool(json.loads((STATE / "daemon.json").read_text())["pid"] == main_pid())


def job_pids(job: str) -> list[int]:
    """The PIDs in a job's cgroup below the unit (its wrapper and payload)."""
    return [int(p) for p in (SLOTS / "slot.s" / f"job.{job}" / "cgroup.procs").read_text().split()]


def attempts(job: str) -> list[str]:
    """The attempt records the state dir holds for a job."""
    return sorted(p.name for p in (STATE / "jobs" / job).glob("attempt-*.json"))


def write_job(name: str, command: list[str]) -> None:
    """A Job spec in slot s."""
    text = f"apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\n"
    text += f"spec:\n  slot: s\n  command: {json.dumps(command)}\n"
    (SPECS / f"job-{name}.yaml").write_text(text)


def clear(root: Path) -> None:
    """cgroup.kill each cgroup below `root`, then remove them bottom-up (not `root` itself)."""
    for child in (d for d in root.iterdir() if d.is_dir()):
        (child / "cgroup.kill").write_text("1")
    for directory, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
        if Path(directory) != root:
            wait_for(f"{directory} removed", lambda d=Path(directory): rmdir(d), timeout=30)


def rmdir(directory: Path) -> bool:
    """Try to remove an empty cgroup; whether it is gone."""
    with contextlib.suppress(OSError):
        directory.rmdir()
    return not directory.exists()


@pytest.fixture(scope="module", autouse=True)
def installed() -> Iterator[None]:
    """manifests/wnr*.service in /etc/systemd/system, wnr at /usr/local/bin, the specs dir."""
    Path("/usr/local/bin/wnr").unlink(missing_ok=True)
    Path("/usr/local/bin/wnr").symlink_to(REPO / ".venv" / "bin" / "wnr")
    for unit in ("wnr.service", "wnr-slots.service"):
        shutil.copyfile(REPO / "manifests" / unit, f"/etc/systemd/system/{unit}")
    drop_in = Path("/etc/systemd/system/wnr.service.d")
    drop_in.mkdir(parents=True, exist_ok=True)
    (drop_in / "test.conf").write_text(DROP_IN)
    SPECS.mkdir(parents=True, exist_ok=True)
    systemctl("daemon-reload")
    yield
    systemctl("stop", "wnr", check=False)


@pytest.fixture
def fresh() -> Iterator[None]:
    """Slot s and job `long` (sleep) in the specs and an empty state dir; afterwards the daemon
    stopped, its failures reset, the jobs killed and their cgroups removed (wnr-slots.service
    stays active: stopping it would leave them running and its cgroup in place)."""
    for path in SPECS.iterdir():
        path.unlink()
    (SPECS / "slot-s.yaml").write_text(SLOT)
    write_job("long", ["sleep", "3600"])
    shutil.rmtree(STATE, ignore_errors=True)
    yield
    systemctl("stop", "wnr", check=False)
    systemctl("reset-failed", "wnr", check=False)
    clear(SLOTS)


def started() -> int:
    """`systemctl start wnr` (it returns once the unit is active), then `long` running; its MainPID."""
    systemctl("start", "wnr")
    assert "active" == show("ActiveState")["ActiveState"]
    wait_for("job long running", lambda: len(job_pids("long")) >= 2, timeout=120)
    return main_pid()


def test_start_reaches_active_only_once_the_first_pass_is_done(fresh: None) -> None:
    """While wnr starts the unit is `activating`; whenever it is `active`, daemon.json (written
    by the first pass, before READY=1) exists already, and StatusText is wnr's summary."""
    systemctl("start", "--no-block", "wnr")
    seen: list[tuple[str, bool]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = show("ActiveState", "MainPID")
        # Read after the state: if the unit was active then, READY=1 was sent, so the pass
        # that precedes it had published daemon.json already.
        published = (STATE / "daemon.json").exists()
        seen.append((state["ActiveState"], state["MainPID"] != "0"))
        if state["ActiveState"] == "active":
            assert published, f"active before daemon.json was written: {seen}"
            break
        assert state["ActiveState"] in ("inactive", "activating"), f"{seen}\n{journal()}"
        time.sleep(0.05)
    else:
        pytest.fail(f"not active within 180s: {seen}\n{journal()}")
    assert ("activating", True) in seen, f"never seen starting with its main process: {seen}"
    wait_for("long running", lambda: "(1 Running)" in show("StatusText")["StatusText"])
    assert "1 slot, 1 job (1 Running)" == show("StatusText")["StatusText"]
    record = json.loads((STATE / "daemon.json").read_text())
    assert main_pid() == record["pid"]


def test_jobs_run_in_the_units_cgroup_with_the_usual_open_files_limit(fresh: None) -> None:
    """The daemon stays in system.slice/wnr.service, jobs run in wnr-slots.service/slot.s/job.*;
    the daemon has LimitNOFILE's hard limit as its soft one, payloads get 1024."""
    daemon = started()
    assert DAEMON == Path(f"/proc/{daemon}/cgroup").read_text()
    wrapper, payload = sorted(job_pids("long"))
    job = "0::/system.slice/wnr-slots.service/slot.s/job.long\n"
    assert job == Path(f"/proc/{payload}/cgroup").read_text()

    def nofile(pid: int) -> list[str]:
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
        return next(line.split()[3:5] for line in limits if line.startswith("Max open files"))

    assert ["524288", "524288"] == nofile(daemon)
    assert ["1024", "524288"] == nofile(payload)
    assert alive(wrapper)


def test_the_journal_holds_wnrs_lines_at_their_priorities(fresh: None) -> None:
    """`journalctl -o json`: an info line (an event) has PRIORITY 6, a warning (a job whose image
    is missing, logged by apply) 4, an error (a spec file that does not parse) 3: the daemon's
    sd-daemon prefixes under systemd (reconciler.render.logrecords)."""
    started()
    text = "apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {name: noimage}\nspec:\n"
    text += '  slot: s\n  command: ["true"]\n  image: /nonexistent/image\n'
    (SPECS / "job-noimage.yaml").write_text(text)
    (SPECS / "job-broken.yaml").write_text("apiVersion: wnr.dev/v1alpha1\nkind: Job\nspec: [\n")
    warning = "Job/noimage: image /nonexistent/image does not exist"
    priorities: dict[str, str] = {}

    def logged() -> bool:
        entries = [json.loads(line) for line in journal("-o", "json").splitlines() if line]
        priorities.update({str(e.get("MESSAGE", "")): str(e.get("PRIORITY")) for e in entries})
        return any(warning in t for t in priorities) and any(
            "job-broken.yaml" in t for t in priorities
        )

    wait_for("the warning and the spec error in the journal", logged, timeout=120)

    def priority(part: str) -> str:
        return next(p for t, p in priorities.items() if part in t)

    found = (priority("Job/long Normal Started"), priority(warning), priority("job-broken.yaml"))
    assert ("6", "4", "3") == found, priorities


def test_stop_leaves_the_jobs_running_and_a_later_start_adopts_them(fresh: None) -> None:
    """`systemctl stop wnr` (KillMode=process) stops only the daemon, the job lives on; `systemctl
    start wnr` runs a new daemon that adopts it: same PIDs, one attempt."""
    daemon = started()
    pids = job_pids("long")
    systemctl("stop", "wnr")
    assert "inactive" == show("ActiveState")["ActiveState"]
    assert not alive(daemon)
    assert pids == job_pids("long")
    assert all(alive(pid) for pid in pids)
    systemctl("start", "wnr")
    wait_for("the new daemon published", published)
    assert pids == job_pids("long")
    assert ["attempt-1.json"] == attempts("long")


def test_restart_keeps_the_jobs_and_the_new_daemon_adopts_them(fresh: None) -> None:
    """`systemctl restart wnr`: a new MainPID, the job's PIDs unchanged, no second attempt."""
    daemon = started()
    pids = job_pids("long")
    systemctl("restart", "wnr")
    assert daemon != main_pid()
    wait_for("the new daemon published", published)
    assert pids == job_pids("long")
    assert ["attempt-1.json"] == attempts("long")


def test_the_watchdog_restarts_a_frozen_daemon_and_the_new_one_adopts_the_jobs(fresh: None) -> None:
    """A daemon stopped with SIGSTOP sends no WATCHDOG=1: within WatchdogSec (10 s) systemd kills
    it (`Watchdog timeout` in the journal) and restarts it (NRestarts 1, a new MainPID), which
    adopts the job: same PIDs, one attempt."""
    daemon = started()
    pids = job_pids("long")
    os.kill(daemon, signal.SIGSTOP)
    frozen = time.monotonic()
    wait_for("the frozen daemon killed", lambda: not alive(daemon), timeout=60)
    killed = time.monotonic() - frozen
    assert killed < 30, f"killed after {killed:.1f}s"
    wait_for("a restart counted", lambda: int(show("NRestarts")["NRestarts"]) >= 1, timeout=60)
    # Active again, or failed for good (the start limit): whichever comes first.
    settled = ("active", "failed")
    wait_for("settled", lambda: show("ActiveState")["ActiveState"] in settled, timeout=120)
    assert "active" == show("ActiveState")["ActiveState"], journal()
    assert daemon != main_pid()
    assert "Watchdog timeout" in journal()
    wait_for("the new daemon published", published)
    assert pids == job_pids("long")
    assert ["attempt-1.json"] == attempts("long")
