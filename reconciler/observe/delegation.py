"""Which cgroup wnr may take as its root when it is not root: each level from its own cgroup up.

Runs once at start-up beside reconciler.observe.mounts (`--root auto` for an
unprivileged wnr) and for `wnr doctor`, which prints the survey; it only reads
(stat, access(2) and interface files through the host layer). The choice
itself, `choose_level`, is pure, so the layouts that batch systems hand to a
pilot are tested without them:

- HTCondor 23.x: the slot's cgroup, its directory, `cgroup.procs` and
  `cgroup.subtree_control` chowned to the user (`cgroup.threads` and the limits
  stay root's); the pilot runs in it. wnr takes it and moves into `wnr.daemon`.
- HTCondor >= 24.8.1: `<slot>.slice/<slot>.scope`, the slice delegated the same
  way, the scope root's and holding the pilot. wnr takes the slice (the scope
  is where DIRAC#8558 failed: `Permission denied creating sub-cgroup`).
- systemd `Delegate=yes` with `DelegateSubgroup=`: the unit's cgroup delegated,
  the service's processes in a subgroup (`supervisor/`, also the user's). wnr
  takes the unit's cgroup, not the subgroup it was started in.
- Slurm with manifests/slurm/ (the SPANK plugin or the Prolog's helper):
  `step_<n>/user` delegated, the batch script in the root-owned `task_0`. wnr
  takes `user` and stays in `task_0`, where slurmstepd looks for the step's
  processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.host.cgroupfs import CgroupFS, is_owned_name
from reconciler.model.errors import CgroupError

DAEMON = "wnr.daemon"
# What managing a cgroup needs: create children (the directory), move processes
# between them (cgroup.procs) and enable controllers for them (cgroup.subtree_control).
REQUIRED = ("dir", "cgroup.procs", "cgroup.subtree_control")
# Only threaded cgroups need it, and wnr makes none (HTCondor leaves it root's).
OPTIONAL = ("cgroup.threads",)


@dataclass(frozen=True)
class Level:
    """One cgroup between wnr's own and the mount, as this process may use it."""

    path: Path
    owner: int | None
    writable: frozenset[str]
    pids: tuple[int, ...]
    controllers: frozenset[str]
    enabled: frozenset[str]
    oom_group: bool = False

    @property
    def delegated(self) -> bool:
        """Whether this process may create children, move processes and enable controllers."""
        return all(name in self.writable for name in REQUIRED)

    def others(self, pid: int) -> tuple[int, ...]:
        """The processes in this cgroup other than `pid`."""
        return tuple(p for p in self.pids if p != pid)


@dataclass(frozen=True)
class Choice:
    """The level `--root auto` takes, and why, for `wnr doctor`."""

    level: Level
    reason: str


def survey(mount: Path, own: Path) -> list[Level]:
    """Every level from `own` up to the mount (not the mount itself: only root may use it)."""
    levels: list[Level] = []
    for path in [own, *own.parents]:
        if path == mount or mount not in path.parents:
            break
        levels.append(read_level(path))
    return levels


def read_level(path: Path) -> Level:
    """What this process may do with one cgroup, and what is in it."""
    fs = CgroupFS(path)
    try:
        owner: int | None = path.stat().st_uid
    except OSError:
        owner = None
    writable = {"dir"} if os.access(path, os.W_OK) else set()
    writable |= {n for n in (*REQUIRED[1:], *OPTIONAL) if os.access(path / n, os.W_OK)}
    return Level(
        path,
        owner,
        frozenset(writable),
        tuple(int(p) for p in _read(fs, "cgroup.procs").split()),
        frozenset(_read(fs, "cgroup.controllers").split()),
        frozenset(_read(fs, "cgroup.subtree_control").split()),
        _read(fs, "memory.oom.group") == "1",
    )


def _read(fs: CgroupFS, name: str) -> str:
    try:
        return fs.read("", name) or ""
    except CgroupError:
        return ""


def choose_level(levels: Sequence[Level]) -> Choice | None:
    """The nearest delegated level; from a delegated leaf of its own, wnr climbs to the
    delegated parent that holds no process (systemd's DelegateSubgroup, a `wnr.daemon`)."""
    nearest = next((level for level in levels if level.delegated), None)
    if nearest is None:
        return None
    if nearest is levels[0] and len(levels) > 1:
        own, parent = levels[0], levels[1]
        wnr_leaf = is_owned_name(own.path.name) and own.path.name != DAEMON
        if parent.delegated and not parent.pids and not wnr_leaf:
            return Choice(parent, f"delegated, holds no process; wnr's cgroup {own.path} is a leaf")
    if nearest is levels[0]:
        return Choice(nearest, "delegated: wnr's own cgroup")
    return Choice(nearest, "delegated: the nearest such ancestor of wnr's cgroup")


def leaves_for_daemon(own: Path, root: Path) -> bool:
    """Whether wnr moves itself into `<root>/wnr.daemon`: from the root itself (a cgroup with
    processes cannot enable controllers), or from the process leaf of a delegating manager
    just below it (HTCondor's `.scope`, systemd's DelegateSubgroup, delegated to the user).
    Not from a batch system's own task cgroup (Slurm's task_0), where it tracks the job."""
    if own == root:
        return True
    if own.parent != root or is_owned_name(own.name):
        return False
    return own.name.endswith(".scope") or read_level(own).delegated


def describe(level: Level, pid: int, chosen: Choice | None) -> str:
    """One level as `wnr doctor` shows it: owner, writable files, processes, controllers."""
    files = ("dir", *REQUIRED[1:], *OPTIONAL)
    access = ", ".join(f"{n} {'' if n in level.writable else 'not '}writable" for n in files)
    others = level.others(pid)
    if not level.pids:
        inside = "none"
    elif not others:
        inside = "wnr only"
    else:
        inside = f"{len(level.pids)}, of which {len(others)} not wnr's"
    offered = " ".join(sorted(level.controllers)) or "none"
    enabled = " ".join(sorted(level.enabled)) or "none"
    parts = [
        f"owner uid {level.owner}",
        access,
        f"processes: {inside}",
        f"controllers offered: {offered}; enabled for children: {enabled}",
    ]
    if level.oom_group:
        parts.append("memory.oom.group=1 (an OOM at its memory.max kills all below together)")
    return f"{level.path}: {verdict(level, pid, chosen)}; " + "; ".join(parts)


def verdict(level: Level, pid: int, chosen: Choice | None) -> str:
    """Why a level is, or is not, wnr's root."""
    if chosen is not None and chosen.level == level:
        return f"USED as the root ({chosen.reason})"
    if not level.delegated:
        lacking = [n for n in REQUIRED if n not in level.writable]
        what = "mkdir fails with Permission denied" if "dir" in lacking else "cannot manage it"
        return f"not usable: {', '.join(lacking)} not writable ({what})"
    if chosen is not None and level.path.parent == chosen.level.path:
        return "delegated, but the leaf wnr was started in: the level above is taken"
    if level.others(pid):
        return (
            "delegated, but holds processes that are not wnr's: controllers cannot be "
            "enabled for its children while they stay (no internal processes)"
        )
    return "delegated, not used (a nearer or better level was taken)"
