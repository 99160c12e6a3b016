"""`wnr get` and `wnr describe` on the real cgroup2 mount, and the event log they read."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.host.eventlog import EventLog
from reconciler.model.event import Event
from reconciler.status.events import unenforced_events
from tests.conftest import wait_for
from tests.helpers import DaemonProcess, common, wnr

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
metadata: {name: ok}
spec: {slot: s, command: ["true"]}
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: three}
spec: {slot: s, command: [sh, -c, "exit 3"]}
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: sleeper}
spec:
  slot: s
  command: [sleep, "600"]
  resources: {cpus: 500m, memory: 256Mi}
"""


def spec_dir(tmp_path: Path, text: str) -> Path:
    """A spec directory holding one file."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(textwrap.dedent(text))
    return specs


def get(kind: str, flags: list[str | Path], *extra: str) -> dict[str, Any]:
    """`wnr get KIND -o json` as a dict."""
    result = wnr("get", kind, *flags, "-o", "json", *extra, check=0)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def events_section(text: str) -> list[list[str]]:
    """The rows of the Events table of `wnr describe`: type, reason, age, message words."""
    lines = text.split("Events:", 1)[1].strip().splitlines()
    return [line.split() for line in lines[2:]]


def missing_controllers(root: Path) -> list[str]:
    """Of cpu, memory and pids, those the cgroup2 mount does not hand down to wnr's root."""
    offered = set((root.parent / "cgroup.subtree_control").read_text().split())
    offered |= set((root.parent / "cgroup.controllers").read_text().split())
    return [c for c in ("cpu", "memory", "pids") if c not in offered]


def test_get_jobs_reports_phases_exit_codes_and_usage(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """After `apply --wait`, `get jobs -o json` shows a Succeeded job with exit code 0 and CPU seconds, a Failed one with exit code 3 and a Running one with its cgroup."""
    specs = spec_dir(tmp_path, SPECS)
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    data = get("jobs", flags)
    assert ("wnr.dev/v1alpha1", "JobList") == (data["apiVersion"], data["kind"])
    items = {item["metadata"]["name"]: item for item in data["items"]}
    assert ["ok", "sleeper", "three"] == sorted(items)
    ok, three, sleeper = (items[n]["status"] for n in ("ok", "three", "sleeper"))
    assert ("Succeeded", "Completed", 0, 1) == (
        ok["phase"],
        ok["reason"],
        ok["exitCode"],
        ok["attempts"],
    )
    assert isinstance(ok["cpuSeconds"], float)
    assert isinstance(ok["peakMemoryBytes"], int)
    assert ok["startTime"] <= ok["finishTime"]
    assert ("Failed", "Error", 3, "exit code 3") == (
        three["phase"],
        three["reason"],
        three["exitCode"],
        three["message"],
    )
    assert ("Running", 1) == (sleeper["phase"], sleeper["attempts"])
    assert str(cgroup_root / "slot.s" / "job.sleeper") == sleeper["cgroup"]
    assert "exitCode" not in sleeper
    assert {
        "slot": "s",
        "command": ["sleep", "600"],
        "resources": {"cpus": "500m", "memory": "256Mi"},
    } == items["sleeper"]["spec"]
    single = get("job", flags, "three")
    assert ("Job", "three", 3) == (
        single["kind"],
        single["metadata"]["name"],
        single["status"]["exitCode"],
    )


def test_get_tables_describe_and_events(cgroup_root: Path, state_dir: Path, tmp_path: Path) -> None:
    """The tables have kubectl's columns, `describe job` shows Started then Completed from the log, `get slots` names the controllers the kernel lacks, and a second apply adds no duplicate events."""
    specs = spec_dir(tmp_path, SPECS)
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    table = wnr("get", "jobs", *flags, check=0).stdout.splitlines()
    assert ["NAME", "SLOT", "PHASE", "REASON", "ATTEMPTS", "AGE"] == table[0].split()
    rows = [line.split()[:5] for line in table[1:]]
    assert [
        ["ok", "s", "Succeeded", "Completed", "1"],
        ["sleeper", "s", "Running", "<none>", "1"],
        ["three", "s", "Failed", "Error", "1"],
    ] == rows
    wide = wnr("get", "jobs", *flags, "-o", "wide", check=0).stdout.splitlines()
    assert ["EXIT", "CPU-SECONDS", "PEAK-MEMORY", "CPU(S)", "MEMORY", "PIDS", "MESSAGE"] == wide[
        0
    ].split()[6:]
    slots = wnr("get", "slots", *flags, check=0).stdout.splitlines()
    assert ["NAME", "PHASE", "CPUS", "MEMORY", "JOBS", "CONDITIONS"] == slots[0].split()
    missing = missing_controllers(cgroup_root)
    limits = "LimitsEnforced=False" if missing else "LimitsEnforced"
    assert [
        [
            "s",
            "Ready",
            "500m/2",
            "256Mi/1Gi",
            "1/3",
            f"CgroupReady,{limits},AgentsReady=Unknown,RunAsUser",
        ]
    ] == [line.split() for line in slots[1:]]
    slot = get("slot", flags, "s")["status"]
    conditions = {c["type"]: c for c in slot["conditions"]}
    assert ("Ready", "True", "Unknown") == (
        slot["phase"],
        conditions["CgroupReady"]["status"],
        conditions["AgentsReady"]["status"],
    )
    assert ({"cpus": "500m", "memory": "256Mi"}, {"cpus": "1500m", "memory": "768Mi"}) == (
        slot["allocated"],
        slot["free"],
    )
    enforced = conditions["LimitsEnforced"]
    assert ("False" if missing else "True") == enforced["status"]
    for controller in missing:
        assert f"no {controller} controller" in enforced["message"]
    if {"memory", "pids"} & set(missing):
        assert "by sampling every 5s" in enforced["message"]
    described = wnr("describe", "job", "ok", *flags, check=0).stdout
    assert ["Phase:", "Succeeded"] in [line.split() for line in described.splitlines()]
    rows = events_section(described)
    # Between Completed and Removed a Killed may come: the wrapper can still be exiting.
    assert [["Normal", "Started"], ["Normal", "Completed"]] == [row[:2] for row in rows[:2]]
    assert ["Normal", "Removed"] == rows[-1][:2]
    three = events_section(wnr("describe", "job", "three", *flags, check=0).stdout)
    assert ["Warning", "Error"] == three[1][:2]
    assert "exit code 3" == " ".join(three[1][3:])
    before = (state_dir / "events.jsonl").read_text()
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    assert before == (state_dir / "events.jsonl").read_text()
    described_slot = wnr("describe", "slot", "s", *flags, check=0).stdout
    # A root lacking controllers is said once, as a Warning, beside the slot's phases.
    expected = [["Normal", "Created"], ["Normal", "Ready"]]
    expected += [["Warning", "LimitsNotEnforced"]] if missing else []
    assert sorted(expected) == sorted(row[:2] for row in events_section(described_slot))


def test_unknown_names_fail_and_reading_creates_nothing(cgroup_root: Path, tmp_path: Path) -> None:
    """`get` and `describe` of unknown names exit 1 with a clear error, and neither creates the root or the state dir."""
    specs = spec_dir(tmp_path, SPECS)
    state = tmp_path / "absent-state"
    flags = common(specs, cgroup_root, state)
    for args in (("get", "jobs", "nope"), ("describe", "slot", "nope")):
        result = wnr(*args, *flags, check=1)
        kind = args[1].removesuffix("s")
        assert f'wnr: error: {kind} "nope" not found' in result.stderr
    listed = get("jobs", flags)
    assert {"ok": "Pending", "three": "Pending", "sleeper": "Pending"} == {
        i["metadata"]["name"]: i["status"]["phase"] for i in listed["items"]
    }
    assert "Pending" == get("slot", flags, "s")["status"]["phase"]
    wnr("describe", "job", "ok", *flags, check=0)
    assert (False, False) == (cgroup_root.exists(), state.exists())


def test_a_logged_failure_the_plan_still_retries_shows_the_slot_failed(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A slot whose last event is a failed action still planned is Failed with that error; once nothing is planned for it, it is not."""
    specs = spec_dir(tmp_path, SPECS)
    flags = common(specs, cgroup_root, state_dir)
    error = "create-cgroup Slot/s: mkdir: Permission denied"
    EventLog(state_dir).append([Event(1.0, "Slot/s", "Warning", "FailedCreate", error)])
    assert ("Failed", error) == tuple(
        get("slot", flags, "s")["status"][k] for k in ("phase", "message")
    )
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    EventLog(state_dir).append([Event(2.0, "Slot/s", "Warning", "FailedCreate", error)])
    assert "Ready" == get("slot", flags, "s")["status"]["phase"]


def test_daemon_logs_a_user_space_oom_kill(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A job killed by wnr for its memory gets the events Started, Stopping and OOMKilled with the view's message."""
    if "memory" not in missing_controllers(cgroup_root):
        pytest.skip("the kernel has a memory controller here: it, not wnr, kills the job")
    hog = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(600)"
    specs = spec_dir(
        tmp_path,
        f"""\
        apiVersion: wnr.dev/v1alpha1
        kind: Node
        metadata: {{name: node}}
        spec:
          policies:
            userSpace: {{intervalSeconds: 0.2}}
        ---
        apiVersion: wnr.dev/v1alpha1
        kind: Slot
        metadata: {{name: s}}
        spec: {{terminationGracePeriodSeconds: 1}}
        ---
        apiVersion: wnr.dev/v1alpha1
        kind: Job
        metadata: {{name: hog}}
        spec:
          slot: s
          command: {json.dumps(["python3", "-c", hog])}
          resources: {{memory: 64Mi}}
          idle: {{windowSeconds: 600}}
        """,
    )
    flags = common(specs, cgroup_root, state_dir)
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.start()
    try:

        def oom_logged() -> bool:
            """The hog's OOMKilled event is in the log."""
            return any(e.reason == "OOMKilled" for e in EventLog(state_dir).recent("Job/hog"))

        wait_for(oom_logged, timeout=30)
    finally:
        daemon.kill()
    events = EventLog(state_dir).recent("Job/hog")
    reasons = [(e.type, e.reason) for e in events]
    assert [("Normal", "Started"), ("Normal", "Stopping")] == reasons[:2]
    assert ("Warning", "OOMKilled") in reasons
    oom = next(e for e in events if e.reason == "OOMKilled")
    status = get("job", flags, "hog")["status"]
    assert ("Failed", "OOMKilled", oom.message) == (
        status["phase"],
        status["reason"],
        status["message"],
    )
    assert "working set" in oom.message


def event(number: int, obj: str = "Job/a") -> Event:
    """A numbered event."""
    return Event(float(number), obj, "Normal", "Started", f"event {number}")


def test_event_log_rotates_keeping_three_generations(tmp_path: Path) -> None:
    """Past its size limit the log becomes events.jsonl.1, older files shift up to .3, and reading spans them."""
    log = EventLog(tmp_path, max_bytes=400)
    for number in range(60):
        log.append([event(number)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"events.jsonl.1", "events.jsonl.2", "events.jsonl.3"} <= set(names)
    assert set() == set(names) - {
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.2",
        "events.jsonl.3",
    }
    for index in (1, 2, 3):
        assert 400 <= (tmp_path / f"events.jsonl.{index}").stat().st_size < 400 + 100
    kept = [e.time for e in log.recent(None, 1000)]
    assert [float(n) for n in range(60 - len(kept), 60)] == kept
    assert [57.0, 58.0, 59.0] == [e.time for e in log.recent("Job/a", 3)]


def test_event_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    """A line torn by a crash mid-append is skipped on read, and the next append starts on a fresh line."""
    log = EventLog(tmp_path)
    log.append([event(1), event(2, "Slot/s")])
    with open(tmp_path / "events.jsonl", "ab") as handle:
        handle.write(b'{"time": 3.0, "object": "Job/a", "type": "Nor')
    assert [1.0, 2.0] == [e.time for e in log.recent()]
    log.append([event(4)])
    assert [1.0, 4.0] == [e.time for e in log.recent("Job/a")]
    assert [2.0] == [e.time for e in log.recent("Slot/s")]
    assert 4 == len((tmp_path / "events.jsonl").read_bytes().splitlines())


def test_event_log_writes_nothing_for_no_events(tmp_path: Path) -> None:
    """Appending no events creates no file, and reading a missing log gives no events."""
    log = EventLog(tmp_path / "state")
    log.append([])
    assert (False, []) == (os.path.exists(tmp_path / "state"), log.recent())


def test_event_log_remembers_reported_phases(tmp_path: Path) -> None:
    """The phases last reported survive a new EventLog on the same state dir."""
    EventLog(tmp_path).save_phases({"Job/a": "Running//1", "Slot/s": "Ready"})
    assert {"Job/a": "Running//1", "Slot/s": "Ready"} == EventLog(tmp_path).load_phases()
    assert {} == EventLog(tmp_path / "none").load_phases()


def test_unenforced_limits_are_one_warning_until_the_reason_changes() -> None:
    """A slot whose limits the kernel cannot enforce gets one LimitsNotEnforced Warning per distinct reason, none while it is already reported."""
    first = {"Slot/s": "the kernel has no pids controller"}
    marks, events = unenforced_events(first, {}, 5.0)
    assert {"Limits/Slot/s": "the kernel has no pids controller"} == marks
    assert [Event(5.0, "Slot/s", "Warning", "LimitsNotEnforced", first["Slot/s"])] == events
    assert [] == unenforced_events(first, marks, 6.0)[1]
    changed = {"Slot/s": "the kernel has no io or pids controller"}
    assert ["the kernel has no io or pids controller"] == [
        e.message for e in unenforced_events(changed, marks, 7.0)[1]
    ]
    assert ({}, []) == unenforced_events({}, marks, 8.0)
