"""Who is in which cgroup: a job's escapees and intruders, for the planner; part of observe.

A root payload may write any PID into any cgroup.procs (hybrid hosts have no
controller to stop it). Three cheap looks find what moved, each at its own
cadence, so that a no-op pass costs nothing more:

- every pass, the PIDs observe already read from the root and the slots,
  which hold no process of wnr's (the daemon sits in `wnr.daemon`): each is
  an escapee of the job whose session it shares (apply spawns each wrapper
  with setsid) or which was last seen holding it, else an unknown stray;
- with each usage sample of a running job (every `intervalSeconds`; where the
  kernel enforces all of a job's limits, every tenth of its idle window:
  reconciler.observe.usage), its cgroup.procs: a new PID in neither the
  wrapper's session nor a child of the job's own is an intruder (an admin's
  shell, another user's process); a PID seen before that now lives
  elsewhere, outside the job, escaped;
- once when a job ends (finished, stopping, deleted) and again once its
  cgroup is empty, one walk over /proc for the job's session and the
  children of its escapees, wherever they are (found only while the end is
  recent, SESSION_WINDOW: a session id can be reused once it is dead).

Not caught: a process that leaves wnr's tree, calls setsid and loses its
parent (double fork) between two samples: nothing ties it to the job short
of tracing every fork. Processes in other jobs' or agents' cgroups are never
taken for this job's. A restarted daemon forgets what it saw before.
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, replace

from reconciler.host import procfs
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.procfs import ProcInfo
from reconciler.model.desired import Desired
from reconciler.model.layout import job_cgroup, slot_cgroup
from reconciler.model.observed import Observed, Stray
from reconciler.model.records import LIVE_PHASES
from reconciler.observe.mounts import cgroup2_mounts, mount_of

# How long after a job's end its session is still looked for (see the module docstring).
SESSION_WINDOW = 120.0


@dataclass(frozen=True)
class Session:
    """A job's wrapper session: the wrapper's PID and when it was spawned."""

    job: str
    rel: str  # its cgroup below wnr's root
    sid: int
    since: float
    ending: bool
    populated: bool

    def holds(self, info: ProcInfo) -> bool:
        """Whether the process is of this session (started after the wrapper was spawned)."""
        return info.sid == self.sid and info.started_at >= self.since - 1.0


@dataclass(frozen=True)
class Member:
    """A PID seen in a job's cgroup: which process it was, and whether it is the job's own."""

    start: int
    comm: str
    own: bool


class Membership:
    """Keeps, between passes, what each running job's cgroup held and the escapees found."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[int, Member]] = {}
        # The jobs whose cgroup held a process not their own at the last sample.
        self._intruded: set[str] = set()
        self._escaped: dict[int, Stray] = {}
        self._scanned: set[tuple[str, int, bool]] = set()
        self._prefix: str | None = None
        # Set by the daemon: the walk over /proc a job's end calls for waits for the next
        # pass, which the loop runs at once (`owed`), so the pass that sees the end reports
        # it without the walk's cost (about 10 us per process on the host).
        self.defer_scans = False
        self.owed = False

    def prefix(self, fs: CgroupFS) -> str:
        """wnr's root as /proc/<pid>/cgroup names it (its path below the cgroup2 mount)."""
        if self._prefix is None:
            mount = mount_of(fs.root, cgroup2_mounts())
            self._prefix = "/" + str(fs.root.relative_to(mount)) if mount else str(fs.root)
            self._prefix = self._prefix.rstrip("/") or "/"
        return self._prefix

    def check(
        self,
        fs: CgroupFS,
        desired: Desired,
        observed: Observed,
        now: float,
        procs_read: Mapping[str, tuple[int, ...]] | None = None,
    ) -> Observed:
        """The observed tree with its strays and intruders filled in; `procs_read` holds the
        cgroup.procs this pass's usage samples read already (not read again)."""
        if observed.root is None and not self._escaped:
            return observed
        prefix = self.prefix(fs)
        due = {job for job, usage in observed.usage.items() if usage.sampled_at == now}
        # A sample that read the very PIDs of the last has nothing to compare (`_sample` looks
        # only at PIDs that came or went): most samples of a steady node.
        due = {job for job in due if not self.same_pids(job, procs_read)}
        places = (observed.root, *observed.slots.values())
        crowded = any(cgroup.pids for cgroup in places if cgroup is not None)
        # Every session only when a process sits where none should; else the few needed.
        sessions = _sessions(desired, observed, now, None if crowded else due)
        for gone in set(self._seen) - set(observed.usage):
            del self._seen[gone]
            self._intruded.discard(gone)
        for job in due:
            session = sessions.get(job)
            if session is not None and not session.ending:
                known = procs_read.get(job) if procs_read is not None else None
                self._sample(fs, prefix, session, observed.jobs[job].slot, known)
        ending = [s for s in sessions.values() if s.ending]
        todo = [s for s in ending if (s.job, s.sid, s.populated) not in self._scanned]
        if todo and self.defer_scans and not self.owed:
            self.owed = True
        elif todo:
            self._scan(prefix, todo)
            self._scanned |= {(s.job, s.sid, s.populated) for s in todo}
            self.owed = False
        else:
            self.owed = False
        self._scanned &= {(s.job, s.sid, s.populated) for s in ending}
        self._escaped = {p: s for p, s in self._escaped.items() if procfs.is_same(p, s.start)}
        strays = dict(self._escaped)
        strays.update(self._in_tree(observed, prefix, sessions))
        intruders = [
            Stray(pid, m.start, m.comm, f"{prefix}/{_rel(observed, job)}", job, _rel(observed, job))
            for job in self._intruded
            for pid, m in self._seen[job].items()
            if not m.own
        ]
        return replace(
            observed,
            strays=tuple(sorted(strays.values(), key=lambda s: s.pid)),
            intruders=tuple(sorted(intruders, key=lambda s: s.pid)),
        )

    def same_pids(self, job: str, procs_read: Mapping[str, tuple[int, ...]] | None) -> bool:
        """Whether this pass's sample of the job read the PIDs its last sample held (so that
        `check` has nothing to compare for it)."""
        known = procs_read.get(job) if procs_read is not None else None
        seen = self._seen.get(job)
        return known is not None and seen is not None and seen.keys() == set(known)

    def _sample(
        self,
        fs: CgroupFS,
        prefix: str,
        session: Session,
        slot: str,
        known: tuple[int, ...] | None = None,
    ) -> None:
        """Compare a running job's cgroup.procs (`known`: read already) with what it held at
        the last sample."""
        rel = job_cgroup(slot, session.job)
        seen = self._seen.setdefault(session.job, {})
        now_in = set(known if known is not None else fs.procs(rel))
        for pid in set(seen) - now_in:
            member, info = seen.pop(pid), procfs.stat(pid)
            if info is None or info.start != member.start or not member.own:
                continue  # ended, or an intruder that left again: none of the job's business
            where = procfs.cgroup_of(pid) or "?"
            if procfs.within(where, f"{prefix}/{rel}"):
                seen[pid] = member  # in a cgroup the payload nested inside its own
            else:
                self._escaped[pid] = Stray(
                    pid, info.start, info.comm, where, session.job, _rel_of(where, prefix)
                )
        new = {pid: procfs.stat(pid) for pid in now_in - set(seen)}
        own = {pid for pid, member in seen.items() if member.own} | {session.sid}
        grown = True
        while grown:  # a child that called setsid is still the job's while its parent is
            grown = False
            for pid, info in new.items():
                if (
                    info is not None
                    and pid not in own
                    and (session.holds(info) or info.ppid in own)
                ):
                    own.add(pid)
                    grown = True
        for pid, info in new.items():
            if info is not None:
                seen[pid] = Member(info.start, info.comm, pid in own)
        if any(not member.own for member in seen.values()):
            self._intruded.add(session.job)
        else:
            self._intruded.discard(session.job)

    def _scan(self, prefix: str, sessions: Iterable[Session]) -> None:
        """The walk over /proc at a job's end: its session, and the children of its escapees."""
        by_sid = {s.sid: s for s in sessions if not _reused(s, prefix)}
        jobs = {s.job for s in by_sid.values()}
        every = {info.pid: info for info in procfs.every_process()}
        found = {p: s.job for p, s in self._escaped.items() if s.job in jobs and s.job}
        children: dict[int, list[int]] = {}
        for info in every.values():
            children.setdefault(info.ppid, []).append(info.pid)
            session = by_sid.get(info.sid)
            if session is not None and session.holds(info):
                found[info.pid] = session.job
        pending = list(found)
        while pending:  # the children of its processes are the job's, whatever their session
            parent = pending.pop()
            for child in children.get(parent, ()):
                if child not in found:
                    found[child] = found[parent]
                    pending.append(child)
        for pid, job in found.items():
            known, where = every.get(pid), procfs.cgroup_of(pid)
            if known is None or where is None or pid == os.getpid():
                continue
            rel = _rel_of(where, prefix)
            if rel is not None and "/" in rel:
                continue  # in a job's or agent's cgroup: that cgroup's stop takes it
            self._escaped[pid] = Stray(pid, known.start, known.comm, where, job, rel)

    def _in_tree(
        self, observed: Observed, prefix: str, sessions: Mapping[str, Session]
    ) -> dict[int, Stray]:
        """The processes in the root and the slots, which should hold none."""
        by_sid = {s.sid: s for s in sessions.values()}
        strays: dict[int, Stray] = {}
        places = [("", observed.root)] if observed.root is not None else []
        places += [(slot_cgroup(name), cgroup) for name, cgroup in observed.slots.items()]
        for rel, cgroup in places:
            for pid in cgroup.pids if cgroup is not None else ():
                info = procfs.stat(pid)
                if info is None or pid == os.getpid():
                    continue
                session = by_sid.get(info.sid)
                job = None
                if session is not None and session.holds(info):
                    job = None if session.ending and _reused(session, prefix) else session.job
                job = job or self._last_holder(pid, info.start)
                where = f"{prefix}/{rel}" if rel else prefix
                strays[pid] = Stray(pid, info.start, info.comm, where, job, rel)
        return strays

    def _last_holder(self, pid: int, start: int) -> str | None:
        """The job whose cgroup held this very process at its last sample."""
        for job, members in self._seen.items():
            member = members.get(pid)
            if member is not None and member.start == start and member.own:
                return job
        escaped = self._escaped.get(pid)
        return escaped.job if escaped is not None and escaped.start == start else None


def _reused(session: Session, prefix: str) -> bool:
    """Whether the session's PID now names a process outside the job's cgroup: the wrapper
    is gone and its PID reused, so the session it led is dead and the id is another's."""
    if procfs.stat(session.sid) is None:
        return False
    where = procfs.cgroup_of(session.sid)
    return where is None or not procfs.within(where, f"{prefix}/{session.rel}")


def _rel(observed: Observed, job: str) -> str:
    return job_cgroup(observed.jobs[job].slot, job) if job in observed.jobs else ""


def _rel_of(where: str, prefix: str) -> str | None:
    """A /proc cgroup path relative to wnr's root, or None when it is outside the tree."""
    if where == prefix:
        return ""
    return where[len(prefix) + 1 :] if procfs.within(where, prefix) else None


def _sessions(
    desired: Desired, observed: Observed, now: float, wanted: Container[str] | None
) -> dict[str, Session]:
    """The session of each job whose wrapper runs or ended recently, with whether it is
    ending: finished, being stopped, or no longer wanted where it runs. Of the jobs running
    as they should, only those `wanted` (all for None): most passes need none of them."""
    sessions: dict[str, Session] = {}
    for name, records in observed.records.items():
        last = records.last
        if last is None or not last.wrapper_pid:
            continue
        where = observed.jobs.get(name)
        populated = where is not None and where.cgroup.populated
        job = desired.jobs.get(name)
        ending = (
            last.phase not in LIVE_PHASES
            or records.stop is not None
            or job is None
            or (where is not None and where.slot != job.spec.slot)
        )
        if not ending and wanted is not None and name not in wanted:
            continue
        ended_at = records.stop.requested_at if records.stop is not None else last.finished_at
        if not populated and ended_at is not None and now - ended_at > SESSION_WINDOW:
            continue
        slot = where.slot if where is not None else job.spec.slot if job is not None else ""
        rel = job_cgroup(slot, name)
        sessions[name] = Session(name, rel, last.wrapper_pid, last.spawned_at, ending, populated)
    return sessions
