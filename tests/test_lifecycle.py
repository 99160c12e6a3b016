"""Job lifecycle on real processes and the real cgroup2 mount: phases, reasons, retries, scheduling, drain."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import wait_for
from tests.helpers import alive, common, procs, wnr


def specs_dir(tmp_path: Path, text: str) -> Path:
    """A spec directory holding one file with the given documents."""
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "specs.yaml").write_text(textwrap.dedent(text))
    return specs


def jobs(specs: Path, root: Path, state: Path) -> dict[str, Any]:
    """The job views `wnr plan -o json` reports."""
    result = wnr("plan", *common(specs, root, state), "-o", "json")
    data = json.loads(result.stdout)
    assert isinstance(data, dict), result.stderr
    views = data["jobs"]
    assert isinstance(views, dict)
    return views


SLOT = """\
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: s}
spec:
  resources: {cpus: 2, memory: 1Gi}
  terminationGracePeriodSeconds: 1
  drainGracePeriodSeconds: 1
"""


def job(name: str, command: list[str], extra: str = "") -> str:
    """One Job document in slot s."""
    body = textwrap.indent(textwrap.dedent(extra), "  ") if extra else ""
    return f"---\napiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  slot: s\n  command: {json.dumps(command)}\n{body}"


def test_exit_codes_signals_and_deadlines_end_in_their_reasons(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Exit 0, exit 3, a signal, an expired activeDeadlineSeconds and a core file each end in the right phase and reason."""
    specs = specs_dir(
        tmp_path,
        SLOT
        + job("ok", ["true"])
        + job("three", ["sh", "-c", "exit 3"])
        + job("killed", ["sh", "-c", "kill -KILL $$"])
        + job("late", ["sleep", "600"], "activeDeadlineSeconds: 1\n")
        + job("dumped", ["sh", "-c", "echo x > core.4242"])
        + job("dumped-ok", ["sh", "-c", "echo x > core.4242"], "coreFiles: ignore\n"),
    )
    wnr("apply", *common(specs, cgroup_root, state_dir), "--wait", "--timeout", "30", check=0)
    views = jobs(specs, cgroup_root, state_dir)
    summary = {name: (v["phase"], v["reason"]) for name, v in views.items()}
    assert {
        "ok": ("Succeeded", "Completed"),
        "three": ("Failed", "Error"),
        "killed": ("Failed", "Error"),
        "late": ("Failed", "DeadlineExceeded"),
        "dumped": ("Failed", "CoreDumped"),
        "dumped-ok": ("Succeeded", "Completed"),
    } == summary
    assert "killed by SIGKILL" == views["killed"]["message"]
    assert not (cgroup_root / "slot.s" / "job.late").exists()
    record = json.loads((state_dir / "jobs" / "three" / "attempt-1.json").read_text())
    assert 3 == record["exitCode"]
    assert isinstance(record["cpuSeconds"], float)


def test_wrapper_that_cannot_start_is_retried_then_fails_errorvn(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A payload that cannot be executed is tried exactly maxStartAttempts times, then fails with ErrorVN."""
    specs = specs_dir(
        tmp_path, SLOT + job("broken", ["/nonexistent/program"], "maxStartAttempts: 2\n")
    )
    flags = common(specs, cgroup_root, state_dir)

    def finished() -> bool:
        """`apply --wait` converges on a Running job, and the wrapper records `running` at
        its gate, before the exec that fails: apply again until the job has an end."""
        wnr("apply", *flags, "--wait", "--timeout", "30")
        return jobs(specs, cgroup_root, state_dir)["broken"]["phase"] == "Failed"

    wait_for(finished, timeout=90, interval=0.1)
    view = jobs(specs, cgroup_root, state_dir)["broken"]
    assert ("Failed", "ErrorVN", 2) == (view["phase"], view["reason"], view["attempts"])
    attempts = sorted(p.name for p in (state_dir / "jobs" / "broken").glob("attempt-*.json"))
    assert ["attempt-1.json", "attempt-2.json"] == attempts
    assert "cannot run '/nonexistent/program'" in view["message"]


def test_jobs_that_do_not_fit_wait_and_start_in_spec_order(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Jobs beyond the slot's CPUs wait as Unschedulable and start in spec order once room frees up."""
    docs = (
        SLOT
        + job("first", ["sleep", "600"], "resources: {cpus: 2}\n")
        + job("second", ["sleep", "600"], "resources: {cpus: 1}\n")
        + job("third", ["sleep", "600"], "resources: {cpus: 1}\n")
        + job("huge", ["true"], "resources: {cpus: 4}\n")
    )
    specs = specs_dir(tmp_path, docs)
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    views = jobs(specs, cgroup_root, state_dir)
    assert ("Running", "") == (views["first"]["phase"], views["first"]["reason"])
    assert ("Pending", "Unschedulable") == (views["second"]["phase"], views["second"]["reason"])
    assert "waiting for 1 CPUs (0 free) in slot s" == views["second"]["message"]
    assert "queued behind Job/second in slot s" == views["third"]["message"]
    assert "requests 4 CPUs; slot s has 2" == views["huge"]["message"]
    (specs / "specs.yaml").write_text(
        textwrap.dedent(docs.replace(job("first", ["sleep", "600"], "resources: {cpus: 2}\n"), ""))
    )
    wnr("apply", *flags, "--wait", check=0)
    views = jobs(specs, cgroup_root, state_dir)
    assert ["Running", "Running"] == [views["second"]["phase"], views["third"]["phase"]]
    assert not (cgroup_root / "slot.s" / "job.first").exists()


def test_draining_slot_starts_nothing_and_stops_jobs_after_the_grace(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A Draining slot starts no new job, TERMs running ones after drainGracePeriodSeconds, kills those ignoring it; deleting it then leaves nothing."""
    running = (
        SLOT
        + job("polite", ["sleep", "600"])
        + job("stubborn", ["sh", "-c", "trap '' TERM; sleep 600 & wait"])
    )
    specs = specs_dir(tmp_path, running)
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    pids = procs(cgroup_root / "slot.s" / "job.stubborn")
    draining = running.replace(
        "  drainGracePeriodSeconds: 1\n", "  drainGracePeriodSeconds: 1\n  state: Draining\n"
    )
    (specs / "specs.yaml").write_text(draining + job("newcomer", ["true"]))
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    views = jobs(specs, cgroup_root, state_dir)
    summary = {name: (v["phase"], v["reason"]) for name, v in views.items()}
    assert {
        "polite": ("Failed", "Drained"),
        "stubborn": ("Failed", "Drained"),
        "newcomer": ("Pending", ""),
    } == summary
    assert ["slot.s"] == sorted(p.name for p in cgroup_root.iterdir() if p.is_dir())
    assert [] == sorted(p.name for p in (cgroup_root / "slot.s").iterdir() if p.is_dir())
    wait_for(lambda: not any(alive(pid) for pid in pids))
    (specs / "specs.yaml").unlink()
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    assert [] == [p.name for p in cgroup_root.iterdir() if p.is_dir()]
    assert [] == [p.name for p in (state_dir / "jobs").iterdir()]
    assert [] == [p.name for p in (state_dir / "slots").iterdir()]


def test_output_beyond_the_log_bound_is_rotated_and_the_job_succeeds(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A job writing 2 MB under policies.logs {maxSize: 64Ki, maxFiles: 2} Succeeds, leaving two files of at most 64Ki that end with its last output."""
    node = textwrap.dedent(
        """\
        apiVersion: wnr.dev/v1alpha1
        kind: Node
        metadata: {name: n}
        spec:
          policies:
            logs: {maxSize: 64Ki, maxFiles: 2}
        ---
        """
    )
    chatty = job("chatty", ["sh", "-c", "seq 1 300000; echo the-end"])
    specs = specs_dir(tmp_path, node + SLOT + chatty)
    wnr("apply", *common(specs, cgroup_root, state_dir), "--wait", "--timeout", "30", check=0)
    view = jobs(specs, cgroup_root, state_dir)["chatty"]
    assert ("Succeeded", "Completed") == (view["phase"], view["reason"])
    directory = state_dir / "jobs" / "chatty"
    logs = {p.name: p.stat().st_size for p in directory.glob("attempt-1.log*")}
    assert ["attempt-1.log", "attempt-1.log.1"] == sorted(logs)
    assert all(size <= 64 * 1024 for size in logs.values()), logs
    assert (directory / "attempt-1.log").read_bytes().endswith(b"299999\n300000\nthe-end\n")
