"""Where wnr's cgroup root is: find the cgroup2 mount and choose or check the root.

Runs once at start-up, before observe; it only reads /proc and stats paths.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from reconciler.model.errors import PermanentError
from reconciler.observe.delegation import choose_level, survey


def cgroup2_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Path]:
    """Mount points of every cgroup2 filesystem, in mount order."""
    mounts: list[Path] = []
    with open(mountinfo, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            # The optional fields end at "-", after which comes the filesystem type.
            separator = fields.index("-")
            if fields[separator + 1] == "cgroup2":
                mounts.append(Path(_unescape(fields[4])))
    return mounts


def unified_problem(
    mount: Path, required: Collection[str], mountinfo: str = "/proc/self/mountinfo"
) -> str | None:
    """Why `mount` is not a pure cgroup v2 hierarchy (no v1 one mounted) whose root offers
    and enables the `required` controllers, or None: the VM tier's guard and the
    kernel-enforced benchmark's."""
    with open(mountinfo, encoding="utf-8") as handle:
        mounts = [line.split() for line in handle.read().splitlines()]
    types = {fields[4]: fields[fields.index("-") + 1] for fields in mounts}
    if types.get(str(mount)) != "cgroup2":
        return f"{mount} is {types.get(str(mount), 'not mounted')}, not cgroup2"
    v1 = sorted(point for point, kind in types.items() if kind == "cgroup")
    if v1:
        return f"cgroup v1 hierarchies are mounted ({', '.join(v1)}): not pure cgroup v2"
    for name in ("cgroup.controllers", "cgroup.subtree_control"):
        missing = set(required) - set((mount / name).read_text().split())
        if missing:
            return f"{mount / name} lacks {', '.join(sorted(missing))}"
    return None


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def own_cgroup(proc_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's cgroup v2 path relative to the mount ("/" at the top)."""
    with open(proc_cgroup, encoding="utf-8") as handle:
        for line in handle:
            hierarchy, _, rest = line.rstrip("\n").partition(":")
            _, _, path = rest.partition(":")
            if hierarchy == "0":
                return path
    raise PermanentError(f"{proc_cgroup} has no cgroup v2 entry (0::): cgroup2 is not mounted")


def own_cgroup_path(mount: Path) -> Path:
    """This process's cgroup as a path under the mount."""
    return mount / own_cgroup().lstrip("/")


def mount_of(path: Path, mounts: list[Path]) -> Path | None:
    """The cgroup2 mount that contains a path, if any (the deepest one)."""
    containing = [m for m in mounts if path == m or m in path.parents]
    return max(containing, key=lambda m: len(m.parts)) if containing else None


def choose_root(requested: str | None, mounts: list[Path] | None = None) -> Path:
    """The cgroup root: an explicit path inside a cgroup2 mount; `self`, our own cgroup
    (a systemd unit with Delegate=yes); or, for `auto`, `<mount>/wnr` when writable,
    else the nearest delegated level at or above our own cgroup (a delegated slot; the
    rules for HTCondor's, systemd's and Slurm's layouts are in reconciler.observe.delegation)."""
    mounts = cgroup2_mounts() if mounts is None else mounts
    if not mounts:
        raise PermanentError("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)")
    if requested == "self":
        return own_cgroup_path(mounts[-1])
    if requested and requested != "auto":
        root = Path(os.path.normpath(requested))
        if not root.is_absolute():
            raise PermanentError(f"--root {requested!r} must be an absolute path")
        if mount_of(root, mounts) is None:
            listed = ", ".join(str(m) for m in mounts)
            raise PermanentError(f"--root {root} is not inside a cgroup2 mount ({listed})")
        return root
    mount = mounts[-1]
    if os.access(mount, os.W_OK):
        return mount / "wnr"
    chosen = choose_level(survey(mount, own_cgroup_path(mount)))
    if chosen is not None:
        return chosen.level.path
    raise PermanentError(
        f"no writable cgroup for wnr under {mount}: run as root, or have the batch system "
        "delegate a cgroup to this user (see `wnr doctor`)"
    )
