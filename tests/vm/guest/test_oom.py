"""OOM and swap semantics per level on the real kernel: a job dies whole, its slot's agent and
siblings live on, and jobs get no swap unless they ask for it (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.vm.guest.harness import MiB, Wnr, alive, gate, wait_for

# A job whose shell keeps a second process (sleep) beside the one that touches 200 MB: only
# memory.oom.group ends the sleep too.
TWO_PROCESSES_ONE_HOG = "sleep 600 & exec python3 -c 'data = b\"x\" * (200 * 1024 * 1024)'"
AGENT = {"replicas": 1, "command": ["sleep", "600"]}


def test_jobs_get_no_swap_and_oom_group_and_their_slot_and_agent_neither(wnr: Wnr) -> None:
    """memory.swap.max is 0 for a job without swap and 1Gi for one asking; oom.group is 1 on jobs only."""
    wnr.slot("s", {"memory": "512Mi"}, agents=AGENT)
    wnr.job("plain", "s", ["sleep", "600"])
    wnr.job("swapper", "s", ["sleep", "600"], {"swap": "1Gi"})
    wnr.apply()
    assert "0" == wnr.read("slot.s/job.plain", "memory.swap.max")
    assert str(1024 * MiB) == wnr.read("slot.s/job.swapper", "memory.swap.max")
    groups = [
        wnr.read(rel, "memory.oom.group") for rel in ("slot.s/job.plain", "slot.s/job.swapper")
    ]
    assert ["1", "1"] == groups
    assert ["0", "0"] == [wnr.read(rel, "memory.oom.group") for rel in ("slot.s", "slot.s/agent.0")]
    wrapper = wnr.record("plain")["wrapperPid"]
    assert "-1000" == Path(f"/proc/{wrapper}/oom_score_adj").read_text().strip()
    payload = wnr.record("plain")["pid"]
    assert "0" == Path(f"/proc/{payload}/oom_score_adj").read_text().strip()
    wnr.run("plan", check=0)


def test_a_job_past_its_limit_dies_whole_and_its_agent_and_sibling_live_on(
    wnr: Wnr, tmp_path: Path
) -> None:
    """The OOM kills every process of the job (oom_group_kill), the wrapper records it, and
    the slot's agent and a sibling job keep their processes."""
    go = tmp_path / "go"
    wnr.slot("s", {"memory": "512Mi"}, agents=AGENT)
    wnr.job("hog", "s", gate(go, TWO_PROCESSES_ONE_HOG), {"memory": "64Mi"})
    wnr.job("sibling", "s", ["sleep", "600"])
    wnr.apply()
    agent, sibling = wnr.procs("slot.s/agent.0"), wnr.procs("slot.s/job.sibling")
    go.touch()
    wait_for(
        "oom_group_kill in job.hog's memory.events",
        lambda: wnr.keyed("slot.s/job.hog", "memory.events").get("oom_group_kill", 0) >= 1,
    )
    wait_for("the hog's record to say exited", lambda: wnr.record("hog")["phase"] == "exited")
    wait_for(
        "job.hog to empty (its sleep died with it)",
        lambda: wnr.keyed("slot.s/job.hog", "cgroup.events")["populated"] == 0,
    )
    assert (9, "job") == (wnr.record("hog")["signal"], wnr.record("hog")["oomLevel"])
    shown = json.loads(wnr.run("get", "jobs", "hog", "-o", "json").stdout)["status"]
    assert ("Failed", "OOMKilled") == (shown["phase"], shown["reason"])
    assert shown["message"].endswith("it reached its own memory limit")
    assert agent == wnr.procs("slot.s/agent.0")
    assert sibling == wnr.procs("slot.s/job.sibling")
    assert all(alive(pid) for pid in agent + sibling)


def test_a_slot_past_its_limit_kills_one_job_whole_and_says_it_was_the_slots_limit(
    wnr: Wnr, tmp_path: Path
) -> None:
    """Jobs with no limit of their own pass their slot's 128Mi: the OOM takes the hog's job whole,
    its record says the slot's limit, and the other job and the agent live on."""
    go = tmp_path / "go"
    wnr.slot("s", {"memory": "128Mi"}, agents=AGENT)
    wnr.job("hog", "s", gate(go, TWO_PROCESSES_ONE_HOG))
    wnr.job("sibling", "s", ["sleep", "600"])
    wnr.apply()
    agent, sibling = wnr.procs("slot.s/agent.0"), wnr.procs("slot.s/job.sibling")
    go.touch()
    wait_for("the hog's record to say exited", lambda: wnr.record("hog")["phase"] == "exited")
    assert ("slot", 9) == (wnr.record("hog")["oomLevel"], wnr.record("hog")["signal"])
    assert wnr.keyed("slot.s", "memory.events.local")["oom"] >= 1
    shown = json.loads(wnr.run("get", "jobs", "hog", "-o", "json").stdout)["status"]
    assert "OOMKilled" == shown["reason"]
    assert "its slot reached the slot's memory limit" in shown["message"]
    slot = json.loads(wnr.run("get", "slots", "s", "-o", "json").stdout)["status"]
    reached = {c["type"]: c for c in slot["conditions"]}["MemoryLimitReached"]
    assert ("True", "SlotOOM") == (reached["status"], reached["reason"])
    assert reached["message"].endswith("the kernel OOM-killed job(s) hog"), reached
    assert agent == wnr.procs("slot.s/agent.0")
    assert sibling == wnr.procs("slot.s/job.sibling")
    assert all(alive(pid) for pid in agent + sibling)
