"""The C job wrapper run directly: it enters its cgroup, runs the payload and records how it ended."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import load_record as load
from tests.conftest import run_wrapper, wait_for


def test_records_running_then_the_exit_code_keeping_the_daemons_members(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """The payload runs in the cgroup; the records keep spawnedAt and gpus, then hold the exit code and CPU time."""
    procs, record, workdir = wrapper_job
    wrapper = run_wrapper(record, procs, workdir, "sh", "-c", "sleep 0.3; exit 7")
    wait_for(lambda: load(record)["phase"] == "running")
    running = load(record)
    assert {wrapper.pid, running["pid"]} <= {int(p) for p in procs.read_text().split()}
    assert 0 == wrapper.wait(timeout=30)
    ended = load(record)
    assert "exited" == ended["phase"]
    assert (7, None, False) == (ended["exitCode"], ended["signal"], ended["coreDumped"])
    assert (100.5, ["0"]) == (ended["spawnedAt"], ended["gpus"])
    assert (running["pid"], wrapper.pid) == (ended["pid"], ended["wrapperPid"])
    assert ended["startedAt"] <= ended["finishedAt"] <= time.time()
    assert ended["cpuSeconds"] >= 0
    assert ended["peakMemoryBytes"] > 0
    assert (None, []) == (ended["terminatedBy"], ended["coreFiles"])


def test_sigterm_is_recorded_and_the_wrapper_outlives_its_payload(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """SIGTERM to every process in the cgroup ends the payload; the wrapper stays to record it."""
    procs, record, workdir = wrapper_job
    wrapper = run_wrapper(record, procs, workdir, "sleep", "600")
    wait_for(lambda: load(record)["phase"] == "running")
    for pid in procs.read_text().split():
        os.kill(int(pid), signal.SIGTERM)
    assert 0 == wrapper.wait(timeout=30)
    ended = load(record)
    assert (None, signal.SIGTERM, signal.SIGTERM) == (
        ended["exitCode"],
        ended["signal"],
        ended["terminatedBy"],
    )


def test_core_files_left_in_the_working_directory_are_listed(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """Files named core and core.<pid> in the working directory are recorded, sorted; others are not."""
    procs, record, workdir = wrapper_job
    script = "touch core.12 core notcore core.x core."
    assert 0 == run_wrapper(record, procs, workdir, "sh", "-c", script).wait(timeout=30)
    assert ["core", "core.12"] == load(record)["coreFiles"]


def test_a_program_that_cannot_run_is_a_failed_start(wrapper_job: tuple[Path, Path, Path]) -> None:
    """A payload that cannot be executed is recorded as failed-start with the reason."""
    procs, record, workdir = wrapper_job
    assert 122 == run_wrapper(record, procs, workdir, "/nonexistent/program").wait(timeout=30)
    data = load(record)
    assert "failed-start" == data["phase"]
    expected = f"cannot run '/nonexistent/program' in {workdir}: No such file or directory"
    assert expected == data["message"]
    assert 100.5 == data["spawnedAt"]


def test_a_cgroup_it_cannot_enter_is_a_failed_start(tmp_path: Path) -> None:
    """A cgroup.procs the wrapper cannot write to stops it before the payload runs."""
    record, marker = tmp_path / "attempt-1.json", tmp_path / "ran"
    procs = tmp_path / "no-such-cgroup" / "cgroup.procs"
    wrapper = run_wrapper(record, procs, tmp_path, "touch", str(marker), base="")
    assert 121 == wrapper.wait(timeout=30)
    data = load(record)
    assert "failed-start" == data["phase"]
    assert data["message"].startswith(f"cannot enter cgroup {procs}: [Errno 2]")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b'\xff"quoted"\\', '\ufffd"quoted"\\'),
        (b"\xe0\x80\x80", "\ufffd\ufffd\ufffd"),  # overlong
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # a surrogate
        (b"\xf5\x80\x80\x80", "\ufffd" * 4),  # above U+10FFFF
        (b"caf\xc3\xa9 \xf0\x9f\x90\x8d", "caf\u00e9 \U0001f40d"),  # well-formed
    ],
)
def test_bytes_that_are_not_utf8_still_give_valid_json(
    wrapper_job: tuple[Path, Path, Path], raw: bytes, shown: str
) -> None:
    """A command name that is not well-formed UTF-8 (or has quotes) is recorded as valid JSON."""
    procs, record, workdir = wrapper_job
    name = os.fsdecode(b"/nonexistent/" + raw)
    assert 122 == run_wrapper(record, procs, workdir, name).wait(timeout=30)
    assert f"cannot run '/nonexistent/{shown}' in" in load(record)["message"]


def test_the_payload_starts_with_default_signal_dispositions(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """Signals the daemon's Python ignores (SIGPIPE, SIGXFSZ) and the wrapper's SIGHUP are at their defaults in the payload."""
    procs, record, workdir = wrapper_job
    command = ("sh", "-c", "cat /proc/self/status > status")
    assert 0 == run_wrapper(record, procs, workdir, *command).wait(timeout=30)
    fields = dict(
        line.split(":\t", 1)
        for line in (workdir / "status").read_text().splitlines()
        if ":\t" in line
    )
    # glibc's posix_spawn leaves its two internal real-time signals (32, 33) ignored.
    standard = (1 << 31) - 1
    assert (0, 0) == (int(fields["SigIgn"], 16) & standard, int(fields["SigBlk"], 16))


def test_hundreds_of_core_files_are_all_listed(wrapper_job: tuple[Path, Path, Path]) -> None:
    """Every core file is recorded, however many there are."""
    procs, record, workdir = wrapper_job
    script = "i=0; while [ $i -lt 300 ]; do : > core.$i; i=$((i+1)); done"
    assert 0 == run_wrapper(record, procs, workdir, "sh", "-c", script).wait(timeout=30)
    assert sorted(f"core.{i}" for i in range(300)) == load(record)["coreFiles"]


def test_the_wrapper_is_spared_by_the_oom_killer_and_its_payload_is_not(
    wrapper_job: tuple[Path, Path, Path],
) -> None:
    """The wrapper runs at oom_score_adj -1000 (memory.oom.group spares it) where it may lower
    its score (CAP_SYS_RESOURCE; this host's sandbox lacks it: the VM tier checks -1000), else
    as it was; its payload at 0 either way."""
    procs, record, workdir = wrapper_job
    wrapper = run_wrapper(record, procs, workdir, "sleep", "600")
    wait_for(lambda: load(record)["phase"] == "running")
    payload = load(record)["pid"]
    scores = {
        who: Path(f"/proc/{pid}/oom_score_adj").read_text().strip()
        for who, pid in (("wrapper", wrapper.pid), ("payload", payload))
    }
    spared = "-1000" if may_lower_oom_score() else "0"
    assert {"wrapper": spared, "payload": "0"} == scores
    os.kill(payload, signal.SIGKILL)
    assert 0 == wrapper.wait(timeout=30)


def may_lower_oom_score() -> bool:
    """Whether this process has CAP_SYS_RESOURCE (bit 24), which lowering oom_score_adj needs."""
    status = Path("/proc/self/status").read_text()
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(effective, 16) >> 24 & 1)
