"""Planner step: a slot's agents, `agents.replicas` long-running processes in `agent.<n>`.

An agent that exits is started again after a delay that doubles with each
quick crash (the kubelet's CrashLoopBackOff: 10 s doubling to 300 s, reset
once a run lasted 600 s; `policies.agentBackoff` changes the numbers). A
draining, deleted or scaled-down slot stops its surplus agents (SIGTERM,
then cgroup.kill after the termination grace) and removes them.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.actions import (
    CreateCgroup,
    ForgetAgent,
    KillCgroup,
    RemoveCgroup,
    Signal,
    StartAgent,
)
from reconciler.model.api import AgentSpec
from reconciler.model.layout import agent_cgroup
from reconciler.model.limits import Limits
from reconciler.model.records import AgentRecords, AttemptPhase
from reconciler.plan.builder import Builder
from reconciler.plan.jobphase import START_TIMEOUT_SECONDS
from reconciler.plan.jobs import state_wait
from reconciler.plan.launch import account_environment
from reconciler.plan.tree import plan_limits


def plan_agents(
    out: Builder, slot: str, spec: AgentSpec | None, grace: float, running: bool
) -> set[str]:
    """Keep `spec.replicas` agents of a slot running (none unless `running`); stop the rest.
    Returns the agent cgroups this plan removes."""
    replicas = spec.replicas if spec is not None and running else 0
    known = {n for (s, n) in out.observed.agents if s == slot}
    known |= {n for (s, n) in out.observed.agent_records if s == slot}
    for index in range(replicas):
        assert spec is not None
        _plan_replica(out, slot, index, spec)
    removed: set[str] = set()
    for index in sorted(known - set(range(replicas))):
        if _plan_agent_removal(out, slot, index, grace):
            removed.add(f"agent.{index}")
    return removed


def _plan_replica(out: Builder, slot: str, index: int, spec: AgentSpec) -> None:
    obj, rel = f"Slot/{slot}", agent_cgroup(slot, index)
    cgroup = out.observed.agents.get((slot, index))
    records = out.observed.agent_records.get((slot, index), AgentRecords())
    r = spec.resources
    limits = Limits(r.cpus, r.memory, r.memory_high, r.swap, r.pids, r.io_weight)
    if cgroup is not None and cgroup.populated:
        plan_limits(out, obj, rel, limits, cgroup)
        return
    run = records.run
    restarts = 0
    start_at = out.now
    if run is not None:
        if run.phase == AttemptPhase.STARTING and out.now < run.spawned_at + START_TIMEOUT_SECONDS:
            out.requeue_at(run.spawned_at + START_TIMEOUT_SECONDS)
            return
        began = run.started_at or run.spawned_at
        ended = max(run.finished_at or 0.0, began)
        backoff = out.node.policies.agent_backoff
        if ended - began >= backoff.reset_after_seconds:
            restarts = 0
        else:
            restarts = records.restarts + 1
            delay = min(backoff.initial_seconds * 2 ** (restarts - 1), backoff.max_seconds)
            start_at = ended + delay
    if out.now < start_at:
        out.note(
            obj,
            "waiting",
            f"agent {index} crashed; restart {restarts} in {start_at - out.now:.0f}s (back-off)",
        )
        out.requeue_at(start_at)
        return
    if out.observed.state_fault is not None:
        out.note(obj, "waiting", f"agent {index}: {state_wait(out)}")
        return
    chosen = out.run_as[slot]
    if chosen.refusal:
        out.note(obj, "waiting", f"agent {index}: RunAsRefused: {chosen.refusal}")
        return
    if cgroup is None:
        out.add(CreateCgroup(obj, rel))
    plan_limits(out, obj, rel, limits, cgroup)
    env = {**account_environment(chosen.credentials), **dict(sorted(spec.env.items()))}
    logs = out.node.policies.logs
    out.add(
        StartAgent(
            obj,
            rel,
            slot=slot,
            index=index,
            restarts=restarts,
            argv=tuple(spec.command),
            env=env,
            log_max_size=logs.max_size,
            log_max_files=logs.max_files,
            credentials=chosen.credentials,
        )
    )


def _plan_agent_removal(out: Builder, slot: str, index: int, grace: float) -> bool:
    obj, rel = f"Slot/{slot}", agent_cgroup(slot, index)
    cgroup = out.observed.agents.get((slot, index))
    records = out.observed.agent_records.get((slot, index), AgentRecords())
    if cgroup is not None and cgroup.populated:
        if records.stop is None:
            stop = Signal(obj, rel, grace_seconds=grace, reason="agent stopped", agent=index)
            out.add(replace(stop, slot=slot))
            out.requeue_at(out.now + grace)
        elif out.now >= records.stop.requested_at + records.stop.grace_seconds:
            out.add(KillCgroup(obj, rel, "agent stopped; grace period over"))
        else:
            out.requeue_at(records.stop.requested_at + records.stop.grace_seconds)
        return False
    if cgroup is not None:
        out.add(RemoveCgroup(obj, rel))
    out.add(ForgetAgent(obj, rel, slot=slot, index=index))
    return True
