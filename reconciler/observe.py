"""Observe: read the owned cgroup tree and the state dir into frozen dataclasses for the planner.

One call per pass reads everything (level-based). PIDs come from each
cgroup's `cgroup.procs`, never from walking every process on the host; limit
files are read only for controllers the cgroup has.
"""

from __future__ import annotations

import os
from dataclasses import replace

from reconciler.cgroupfs import CgroupFS, flat_keyed, is_owned_name
from reconciler.limits import CONTROLLER_OF
from reconciler.nodefacts import cached
from reconciler.observed import CgroupState, Observed
from reconciler.process import is_wrapper
from reconciler.state import JobRecords, StateDir
from reconciler.statefault import check


def _split(text: str | None) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def _limits(fs: CgroupFS, rel: str, controllers: frozenset[str]) -> dict[str, str]:
    """The limit files wnr writes, for the controllers the cgroup has."""
    limits: dict[str, str] = {}
    if controllers:
        for name, controller in CONTROLLER_OF.items():
            if controller in controllers:
                value = fs.read(rel, name)
                if value is not None:
                    limits[name] = value
    return limits


def _populated(fs: CgroupFS, rel: str) -> bool:
    return bool(flat_keyed(fs.read(rel, "cgroup.events")).get("populated", 0))


def read_cgroup(fs: CgroupFS, rel: str, with_limits: bool = True) -> CgroupState:
    """Read one inner cgroup (the root, a slot): controllers, membership, children, limits."""
    controllers = _split(fs.read(rel, "cgroup.controllers"))
    return CgroupState(
        path=rel,
        populated=_populated(fs, rel),
        pids=fs.procs(rel),
        controllers=controllers,
        subtree_control=_split(fs.read(rel, "cgroup.subtree_control")),
        limits=_limits(fs, rel, controllers) if with_limits else {},
        children=tuple(fs.children(rel)),
    )


def read_leaf(fs: CgroupFS, rel: str, controllers: frozenset[str]) -> CgroupState:
    """Read a job or agent cgroup: whether anything runs in it (or in cgroups its payload
    nested) and its limits. Its controllers are what its slot enables (the kernel's rule
    for cgroup.controllers), so they are not read; nor are its PIDs or children, which
    apply reads itself when it signals or removes the cgroup."""
    return CgroupState(
        path=rel,
        populated=_populated(fs, rel),
        controllers=controllers,
        limits=_limits(fs, rel, controllers),
    )


def observe(fs: CgroupFS, state: StateDir, site_overrides: str | None = None) -> Observed:
    """Read the owned tree below the root, every job's records, and the node's facts."""
    facts = cached(site_overrides)
    try:
        with open(f"{fs.root.parent}/cgroup.subtree_control", "rb") as handle:
            parent_controllers = _split(handle.read().decode())
    except OSError:
        parent_controllers = frozenset()
    page_size = os.sysconf("SC_PAGE_SIZE")
    records = {name: check_starting(state, name, r) for name, r in state.read_all().items()}
    slot_records = state.read_slots()
    agent_records = state.read_agents()
    state_fault = check(state.root)
    if not fs.exists(""):
        return Observed(
            str(fs.root),
            None,
            parent_controllers,
            records=records,
            slot_records=slot_records,
            page_size=page_size,
            agent_records=agent_records,
            facts=facts,
            state_root=str(state.root),
            state_fault=state_fault,
        )
    root = read_cgroup(fs, "", with_limits=False)
    slots: dict[str, CgroupState] = {}
    jobs: dict[str, tuple[str, CgroupState]] = {}
    agents: dict[tuple[str, int], CgroupState] = {}
    foreign: list[str] = []
    for child in root.children:
        if not child.startswith("slot.") or not is_owned_name(child):
            if child != "wnr.daemon":
                foreign.append(child)
            continue
        slot_name = child.removeprefix("slot.")
        slot = read_cgroup(fs, child)
        slots[slot_name] = slot
        enabled = slot.subtree_control
        for grandchild in slot.children:
            if grandchild.startswith("job.") and is_owned_name(grandchild):
                jobs[grandchild.removeprefix("job.")] = (
                    slot_name,
                    read_leaf(fs, f"{child}/{grandchild}", enabled),
                )
            elif grandchild.startswith("agent.") and is_owned_name(grandchild):
                index = int(grandchild.removeprefix("agent."))
                agents[(slot_name, index)] = read_leaf(fs, f"{child}/{grandchild}", enabled)
            else:
                foreign.append(f"{child}/{grandchild}")
    return Observed(
        str(fs.root),
        root,
        parent_controllers,
        slots,
        jobs,
        reread_ended(state, records, jobs),
        tuple(foreign),
        page_size,
        has_kill=os.path.exists(f"{fs.directory('')}/cgroup.kill"),
        slot_records=slot_records,
        agents=agents,
        agent_records=agent_records,
        facts=facts,
        state_root=str(state.root),
        state_fault=state_fault,
    )


def reread_ended(
    state: StateDir, records: dict[str, JobRecords], jobs: dict[str, tuple[str, CgroupState]]
) -> dict[str, JobRecords]:
    """Read again the records of jobs still starting or running whose cgroup was then seen
    empty. Records are read before the cgroups, and a short job can record its end and exit
    in between: its wrapper writes the end before it leaves the cgroup, so a read after
    `populated 0` sees it, and the job is not taken for one that died unrecorded."""
    for name, held in records.items():
        last = held.last
        if last is not None and last.phase in ("starting", "running"):
            cgroup = jobs.get(name)
            if cgroup is None or not cgroup[1].populated:
                records[name] = check_starting(state, name, state.read(name))
    return records


def check_starting(state: StateDir, job: str, records: JobRecords) -> JobRecords:
    """For an attempt still `starting`, find out whether its wrapper process exists, so a
    wrapper lost with a crashed daemon is retried at once instead of after the timeout."""
    last = records.last
    if last is None or last.phase != "starting":
        return records
    pid = state.spawned_pid(state.attempt_path(job, last.attempt))
    if pid is None:
        return records
    alive = is_wrapper(pid)
    if not alive:
        # It may have moved on and exited since its records were read: read them again.
        fresh = state.read(job)
        if fresh.last is not None and fresh.last.phase != "starting":
            return fresh
    return replace(records, attempts=(*records.attempts[:-1], replace(last, wrapper_alive=alive)))
