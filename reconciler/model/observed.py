"""What observe saw: frozen dataclasses of the owned cgroup tree and the job records.

Plain data between observe (which reads the kernel) and plan (which must not).
"""

from __future__ import annotations

import errno as errnos
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from reconciler.model.accounts import Account
from reconciler.model.records import AgentRecords, JobRecords, SlotRecord
from reconciler.model.usage import LiveUsage


@dataclass(frozen=True)
class OomEvents:
    """The kernel's OOM counters of an emptied job cgroup: its kills (memory.events
    `oom_kill`) and the limits hit at each level (memory.events.local `oom` of the job and of
    its slot). Read when a job's cgroup empties, to tell an OOM that took the wrapper too."""

    kills: int = 0
    job_ooms: int = 0
    slot_ooms: int = 0

    @property
    def level(self) -> str:
        """Whose limit was hit: "job", "slot" or "above" (as the wrapper's `oomLevel`)."""
        if self.job_ooms > 0:
            return "job"
        return "slot" if self.slot_ooms > 0 else "above"


@dataclass(frozen=True)
class CgroupState:
    """One existing cgroup as the kernel shows it. For job and agent cgroups (leaves) observe
    reads only `populated` and the limits: `pids` and `children` stay empty there."""

    path: str
    populated: bool = False
    pids: tuple[int, ...] = ()
    controllers: frozenset[str] = frozenset()
    subtree_control: frozenset[str] = frozenset()
    limits: Mapping[str, str] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    # For an empty job or agent cgroup with the memory controller: its OOM counters.
    oom: OomEvents | None = None


@dataclass(frozen=True)
class Need:
    """What to measure for one running job."""

    rel: str  # its cgroup
    # Where wnr enforces the memory limit itself: its working set above this many bytes is an OOM.
    memory_over: int | None = None
    tasks: bool = False
    disk_dir: str | None = None
    # Idle tracking: busy means at least this many CPU-seconds per second; stalled means its
    # tasks waited on memory or I/O for at least this share of the time (PSI `some`).
    busy_cpus: float | None = None
    stall_fraction: float | None = None
    interval: float = 5.0
    # How often the idle timeout's figures (cpu.stat, PSI) are read, at most every sample:
    # a tenth of the idle window, which is as fine as the timeout needs them.
    idle_interval: float = 5.0
    # The daemon serves metrics: also take the job's whole live usage (LiveUsage), at most
    # every `metrics_interval` seconds, on a sample that is due anyway (no extra wake-up).
    metrics_interval: float | None = None
    # The controllers the kernel has for the job's cgroup: files of others are not tried.
    controllers: frozenset[str] | None = None
    # When the job's cgroup began its PSI totals (its first attempt's spawn: the cgroup is made
    # in that pass and kept through retries): a first sample takes its stall over the time
    # since, so a job's status shows figures from its first sample on, and a restarted
    # daemon's first figures are those of the job's life (None: from the second sample).
    since: float | None = None


@dataclass(frozen=True)
class Stall:
    """The share of one sample's interval in which some task of the job waited (PSI `some` of
    cpu.pressure, memory.pressure, io.pressure, 0..1)."""

    cpu: float
    memory: float
    io: float

    @property
    def worst(self) -> float:
        """The largest of the three shares: what the idle policy compares with its threshold."""
        return max(self.cpu, self.memory, self.io)

    def reaches(self, fraction: float) -> bool:
        """Whether the job stalled for at least `fraction` of the sample (the idle policy's
        minStallFraction): waiting, not idle."""
        return self.worst >= fraction

    def __str__(self) -> str:
        return f"memory {self.memory:.0%}, io {self.io:.0%}, cpu {self.cpu:.0%}"


@dataclass(frozen=True)
class Usage:
    """The latest sample of one job."""

    sampled_at: float
    # The working set (anon + shmem + swap, no page cache); below the job's limit it may be
    # the cheaper resident bound, which is never less.
    memory_bytes: int | None = None
    tasks: int | None = None
    disk_bytes: int | None = None
    busy_at: float | None = None
    # Pressure over the last interval where the kernel has PSI (None: no figures yet, or none),
    # and when the job last stalled on memory or I/O: a stalled job is not idle.
    stall: Stall | None = None
    stalled_at: float | None = None
    # For metrics only (Need.metrics_interval): the job's live usage, and when it was read.
    live: LiveUsage | None = None
    live_at: float | None = None


@dataclass(frozen=True)
class Stray:
    """A process out of place (reconciler.observe.membership): one of a job's that left the job's
    cgroup (an escapee; `job` None when nothing ties it to a job), or one moved into a job's
    cgroup from outside the job (an intruder)."""

    pid: int
    start: int  # its start in clock ticks after boot: apply signals only this very process
    comm: str
    cgroup: str  # where it is, as /proc/<pid>/cgroup shows it
    job: str | None = None
    # Its cgroup relative to wnr's root ("" the root, "slot.a"), None when outside the tree.
    rel: str | None = None


@dataclass(frozen=True)
class NodeFacts:
    """The node as detected: architecture, CPU flags, installed runtimes, GPUs, site overrides."""

    architecture: str = "x86_64"
    cpu_features: frozenset[str] = frozenset()
    runtimes: frozenset[str] = frozenset()
    gpus: tuple[str, ...] = ()
    # The effective uid wnr runs as: only root (0) can run a slot as another user.
    daemon_uid: int = 0
    # container.properties pairs (job.container.path, additional.binds, disable.enforce, ...).
    site: tuple[tuple[str, str], ...] = ()

    def site_value(self, key: str) -> str | None:
        """The last value of a site override key."""
        values = [v for k, v in self.site if k == key]
        return values[-1] if values else None


# The condition reason of each errno that makes the state dir unable to record (a node-level
# fault: every job's records live there, so one action failing means all would).
FAULT_REASONS = {
    errnos.ENOSPC: "NoSpace",
    errnos.EDQUOT: "QuotaExceeded",
    errnos.EROFS: "ReadOnly",
    errnos.EIO: "IOError",
    errnos.ENOENT: "Missing",
    errnos.EACCES: "PermissionDenied",
    errnos.EPERM: "PermissionDenied",
}


@dataclass(frozen=True)
class StateFault:
    """Why the state dir cannot record now: the errno and the path that failed."""

    errno: int
    path: str
    detail: str = ""

    @property
    def reason(self) -> str:
        """The CamelCase reason of the condition (`NoSpace`, `ReadOnly`, ...)."""
        return FAULT_REASONS.get(self.errno, "WriteFailed")

    def __str__(self) -> str:
        name = errnos.errorcode.get(self.errno, str(self.errno))
        text = f"{self.path}: {name} ({os.strerror(self.errno)})"
        return f"{text}: {self.detail}" if self.detail else text


class Placement(NamedTuple):
    """Where a job's cgroup is: the slot it sits in (which may not be its spec's slot), and it."""

    slot: str
    cgroup: CgroupState


@dataclass(frozen=True)
class Observed:
    """The owned tree and the records; what is absent from the mappings does not exist."""

    root_path: str
    root: CgroupState | None
    # Controllers the root would have once created: its parent's subtree_control.
    parent_controllers: frozenset[str]
    slots: Mapping[str, CgroupState] = field(default_factory=dict)
    # job name -> (slot name, its cgroup)
    jobs: Mapping[str, Placement] = field(default_factory=dict)
    records: Mapping[str, JobRecords] = field(default_factory=dict)
    # Children of wnr's cgroups that wnr does not own: reported, never touched.
    foreign: tuple[str, ...] = ()
    page_size: int = 4096
    slot_records: Mapping[str, SlotRecord] = field(default_factory=dict)
    # Samples of running jobs (user-space limits, idleness), by job name.
    usage: Mapping[str, Usage] = field(default_factory=dict)
    # (slot, replica) -> the agent's cgroup, and its records.
    agents: Mapping[tuple[str, int], CgroupState] = field(default_factory=dict)
    agent_records: Mapping[tuple[str, int], AgentRecords] = field(default_factory=dict)
    facts: NodeFacts = field(default_factory=NodeFacts)
    state_root: str = "/var/lib/wnr"
    # Set while the state dir cannot record an attempt: no job or agent is started then.
    state_fault: StateFault | None = None
    # Escapees of jobs, and unknown processes in the root or a slot (which hold none of wnr's).
    strays: tuple[Stray, ...] = ()
    # Processes moved into a job's cgroup from outside the job: reported, never signalled alone.
    intruders: tuple[Stray, ...] = ()
    # The users the specs name: their accounts, or why the user database has none.
    accounts: Mapping[str, Account | str] = field(default_factory=dict)

    @cached_property
    def running_slots(self) -> frozenset[str]:
        """The slots where a job's or an agent's cgroup holds processes."""
        # Once per observation: every slot's status asks, and a scan of every job per slot
        # grows with slots times jobs.
        jobs = {slot for slot, cgroup in self.jobs.values() if cgroup.populated}
        return frozenset(jobs | {slot for (slot, _), c in self.agents.items() if c.populated})

    @property
    def available(self) -> frozenset[str]:
        """Controllers the root offers to its children's parent, before enabling."""
        return self.root.controllers if self.root is not None else self.parent_controllers
