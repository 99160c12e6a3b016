"""Observe: read the owned cgroup tree and the state dir into frozen dataclasses for the planner.

One call per pass reads everything (level-based) but what cannot have changed since the
last pass read it: the quiet running jobs (reconciler.observe.quiet), whose earlier reading
is reused. PIDs come from each cgroup's `cgroup.procs`, never from walking every process on
the host; limit files are read only for controllers the cgroup has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.host.cgroupfs import CgroupFS, flat_keyed, is_owned_name
from reconciler.host.process import is_wrapper
from reconciler.host.statedir import JobRecords, StateDir
from reconciler.host.statefault import check
from reconciler.model.errors import CgroupError
from reconciler.model.limits import CONTROLLER_OF
from reconciler.model.observed import CgroupState, Observed, OomEvents, Placement
from reconciler.model.records import LIVE_PHASES, AttemptPhase
from reconciler.observe.nodefacts import cached
from reconciler.observe.quiet import QuietJob


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
    # "populated 1\nfrozen 0": read on every pass for every job, so not parsed as a whole.
    text = fs.read(rel, "cgroup.events")
    return text is not None and text.startswith("populated 1")


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
    apply reads itself when it signals or removes the cgroup. An empty one with the memory
    controller also gets its OOM counters (an OOM group kill may have taken the wrapper)."""
    populated = _populated(fs, rel)
    oom = None
    if not populated and "memory" in controllers:
        slot = rel.rpartition("/")[0]
        oom = OomEvents(
            flat_keyed(fs.read(rel, "memory.events")).get("oom_kill", 0),
            flat_keyed(fs.read(rel, "memory.events.local")).get("oom", 0),
            flat_keyed(fs.read(slot, "memory.events.local")).get("oom", 0),
        )
    return CgroupState(
        path=rel,
        populated=populated,
        controllers=controllers,
        limits=_limits(fs, rel, controllers),
        oom=oom,
    )


def observe(
    fs: CgroupFS,
    state: StateDir,
    site_overrides: str | None = None,
    quiet: Mapping[str, QuietJob] | None = None,
) -> Observed:
    """Read the owned tree below the root, every job's records, and the node's facts; for
    the `quiet` jobs (reconciler.observe.quiet), what the last pass read is reused."""
    quiet = quiet or {}
    try:
        parent_controllers = _split(fs.read_parent("cgroup.subtree_control"))
    except CgroupError:
        parent_controllers = frozenset()  # an unreadable parent delegates nothing wnr can use
    read = state.read_all({name: q.records for name, q in quiet.items()})
    records = dict(read)
    starting = AttemptPhase.STARTING
    for name in [n for n, r in read.items() if r.last is not None and r.last.phase == starting]:
        records[name] = check_starting(state, name, read[name])
    known = Observed(
        str(fs.root),
        None,
        parent_controllers,
        records=records,
        slot_records=state.read_slots(),
        page_size=os.sysconf("SC_PAGE_SIZE"),
        agent_records=state.read_agents(),
        facts=cached(site_overrides),
        state_root=str(state.root),
        state_fault=check(state.root),
    )
    if not fs.exists(""):
        return known
    root = read_cgroup(fs, "", with_limits=False)
    tree = _read_tree(fs, root, quiet)
    return replace(
        known,
        root=root,
        slots=tree.slots,
        jobs=tree.jobs,
        records=reread_ended(state, records, tree.jobs, quiet),
        foreign=tuple(tree.foreign),
        agents=tree.agents,
    )


@dataclass
class _Tree:
    """The owned cgroups below the root, and what sits there that wnr does not own."""

    slots: dict[str, CgroupState] = field(default_factory=dict)
    jobs: dict[str, Placement] = field(default_factory=dict)
    agents: dict[tuple[str, int], CgroupState] = field(default_factory=dict)
    foreign: list[str] = field(default_factory=list)


def _read_tree(fs: CgroupFS, root: CgroupState, quiet: Mapping[str, QuietJob]) -> _Tree:
    tree = _Tree()
    for child in root.children:
        if not child.startswith("slot.") or not is_owned_name(child):
            if child != "wnr.daemon":
                tree.foreign.append(child)
            continue
        slot_name = child.removeprefix("slot.")
        slot = read_cgroup(fs, child)
        tree.slots[slot_name] = slot
        enabled = slot.subtree_control
        for grandchild in slot.children:
            rel = f"{child}/{grandchild}"
            if grandchild.startswith("job.") and is_owned_name(grandchild):
                name = grandchild.removeprefix("job.")
                kept = quiet.get(name)
                # Read again when its slot enabled other controllers: other limit files.
                if (
                    kept is not None
                    and kept.placement.slot == slot_name
                    and kept.placement.cgroup.controllers == enabled
                ):
                    tree.jobs[name] = kept.placement
                else:
                    tree.jobs[name] = Placement(slot_name, read_leaf(fs, rel, enabled))
            elif grandchild.startswith("agent.") and is_owned_name(grandchild):
                index = int(grandchild.removeprefix("agent."))
                tree.agents[(slot_name, index)] = read_leaf(fs, rel, enabled)
            else:
                tree.foreign.append(rel)
    return tree


def reread_ended(
    state: StateDir,
    records: dict[str, JobRecords],
    jobs: dict[str, Placement],
    quiet: Mapping[str, QuietJob] | None = None,
) -> dict[str, JobRecords]:
    """Read again the records of jobs still starting or running whose cgroup was then seen
    empty. Records are read before the cgroups, and a short job can record its end and exit
    in between: its wrapper writes the end before it leaves the cgroup, so a read after
    `populated 0` sees it, and the job is not taken for one that died unrecorded. A `quiet`
    job whose reading was reused is populated; one whose cgroup was read again (its slot
    enabled other controllers) is looked at like any other."""
    quiet = quiet or {}
    looked = records.keys() - quiet.keys()
    looked |= {n for n, q in quiet.items() if jobs.get(n) is not q.placement and n in records}
    for name in looked:
        held = records[name]
        last = held.last
        if last is not None and last.phase in LIVE_PHASES:
            cgroup = jobs.get(name)
            if cgroup is None or not cgroup[1].populated:
                records[name] = check_starting(state, name, state.read(name))
    return records


def check_starting(state: StateDir, job: str, records: JobRecords) -> JobRecords:
    """For an attempt still `starting`, find out whether its wrapper process exists, so a
    wrapper lost with a crashed daemon is retried at once instead of after the timeout."""
    last = records.last
    if last is None or last.phase != AttemptPhase.STARTING:
        return records
    pid = state.spawned_pid(state.attempt_path(job, last.attempt))
    if pid is None:
        return records
    alive = is_wrapper(pid)
    if not alive:
        # It may have moved on and exited since its records were read: read them again.
        fresh = state.read(job)
        if fresh.last is not None and fresh.last.phase != AttemptPhase.STARTING:
            return fresh
    return replace(records, attempts=(*records.attempts[:-1], replace(last, wrapper_alive=alive)))
