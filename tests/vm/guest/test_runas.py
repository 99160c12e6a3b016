"""Jobs run as the slot's user on the real kernel, with every controller (issue 14): a root wnr's
payload as nobody cannot raise its own limits or leave its cgroup, and dies whole on OOM."""

from __future__ import annotations

from tests.vm.guest.harness import Wnr, wait_for

NOBODY = 65534


def test_a_payload_run_as_nobody_cannot_raise_its_limits_or_leave_its_cgroup(wnr: Wnr) -> None:
    """Every write to its own memory/pids/cpu files or to its slot's cgroup.procs is refused; the limits stay."""
    wnr.slot("s", {"memory": "256Mi", "pids": 50}, user=None)
    tries = [
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
        ("memory.oom.group", "0"),
        ("pids.max", "max"),
        ("cpu.max", "max"),
        ("../cgroup.procs", "$$"),
        ("cgroup.subtree_control", "+memory"),
    ]
    job = wnr.cgroup("slot.s/job.j")
    script = "; ".join(
        f"if {{ echo {value} > {job}/{name}; }} 2>/dev/null; then echo wrote {name}; "
        f"else echo refused {name}; fi"
        for name, value in tries
    )
    wnr.job(
        "j", "s", ["sh", "-c", f"id -u; {script}; grep ^0:: /proc/self/cgroup"], {"memory": "64Mi"}
    )
    wnr.apply()
    log = (wnr.state / "jobs" / "j" / "attempt-1.log").read_text().splitlines()
    cgroup = f"0::/{wnr.root.name}/slot.s/job.j"
    assert [str(NOBODY), *(f"refused {name}" for name, _ in tries), cgroup] == log
    assert ("exited", 0, NOBODY) == tuple(wnr.record("j")[k] for k in ("phase", "exitCode", "uid"))


def test_a_job_run_as_nobody_past_its_limit_dies_whole_and_its_wrapper_records_it(
    wnr: Wnr,
) -> None:
    """As nobody, 200 MB under a 64Mi limit: the group kill takes the payload; the root wrapper (exempt) records OOMKilled."""
    wnr.slot("s", {"memory": "256Mi"}, user=None)
    # The system's python: the daemon's PATH starts with the test venv, in root's home.
    hog = "sleep 600 & exec /usr/bin/python3 -c 'data = b\"x\" * (200 * 1024 * 1024)'"
    wnr.job("hog", "s", ["sh", "-c", hog], {"memory": "64Mi"})
    wnr.apply()
    wait_for("the hog's record to say exited", lambda: wnr.record("hog")["phase"] == "exited")
    record = wnr.record("hog")
    assert (NOBODY, "exited", "job") == (
        record["uid"],
        record["phase"],
        record.get("oomLevel"),
    ), record
    assert record["oomKills"] >= 2, record  # the sleep too: memory.oom.group
    assert "message" not in record, "the wrapper itself recorded the end"
    shown = wnr.run("get", "jobs", "hog", "-o", "json").stdout
    assert '"OOMKilled"' in shown, shown
