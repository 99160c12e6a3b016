"""`wnr doctor`: node checks, each with a verdict and a hint for the admin. Reads only.

Runs beside the pipeline, not in it: it answers "can wnr work here, and what
will the kernel enforce?" before anything is planned.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.exits import descriptor_budget
from reconciler.host.process import WRAPPER, wrapper_missing
from reconciler.host.statefault import MIN_FREE_BYTES, check
from reconciler.model.accounts import RunAsReason
from reconciler.model.desired import Desired
from reconciler.model.errors import CgroupError, WnrError
from reconciler.observe.accounts import Accounts, users_named
from reconciler.observe.delegation import choose_level, describe, leaves_for_daemon, survey
from reconciler.observe.mounts import cgroup2_mounts, choose_root, own_cgroup, own_cgroup_path
from reconciler.observe.nodefacts import detect_gpus
from reconciler.plan.runas import run_as
from reconciler.plan.runtime import resolve

# Files a delegated cgroup must let wnr's user write (the talk; kernel cgroup-v2 "Delegation");
# the optional ones only matter for threaded cgroups, which wnr never makes.
DELEGATED_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
OPTIONAL_FILES = ("cgroup.threads",)


class Verdict(StrEnum):
    """How a check came out; only FAIL makes `wnr doctor` exit 1."""

    ok = "ok"
    note = "--"
    warn = "warn"
    fail = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    verdict: Verdict
    detail: str
    hint: str = ""

    def __str__(self) -> str:
        line = f"[{self.verdict:>4}] {self.name}: {self.detail}"
        return f"{line}\n       hint: {self.hint}" if self.hint else line


def check_delegation(root: Path, uid: int) -> list[Check]:
    """Whether `uid` owns the root directory and the files that delegation needs
    (cgroup.threads only matters for threaded cgroups, which wnr never makes)."""
    if uid == 0:
        return [Check("delegation", Verdict.ok, "running as root: no delegation needed")]
    target = root if root.exists() else root.parent
    lacking: list[str] = []
    required_lacking = False
    for path in [target, *(target / name for name in DELEGATED_FILES)]:
        try:
            owner = path.stat().st_uid
        except FileNotFoundError:
            lacking.append(f"{path} (missing)")
            required_lacking = required_lacking or path.name not in OPTIONAL_FILES
            continue
        if owner != uid:
            lacking.append(f"{path} (owned by uid {owner})")
            required_lacking = required_lacking or path.name not in OPTIONAL_FILES
    if not lacking:
        return [
            Check("delegation", Verdict.ok, f"uid {uid} owns {target} and its delegation files")
        ]
    if not required_lacking:
        detail = (
            f"uid {uid} owns {target}, its cgroup.procs and cgroup.subtree_control; not "
            f"{', '.join(lacking)}, which only threaded cgroups need (HTCondor keeps it root's)"
        )
        return [Check("delegation", Verdict.ok, detail)]
    files = " ".join(str(target / n) for n in DELEGATED_FILES)
    return [
        Check(
            "delegation",
            Verdict.fail,
            f"uid {uid} lacks ownership of: {', '.join(lacking)}",
            f"as root: chown {uid} {target} {files} (or use HTCondor >= 23.1 / the Slurm "
            "plugin or Prolog in manifests/slurm/, which do it for each job)",
        )
    ]


def check_levels(mount: Path, requested: str | None) -> list[Check]:
    """For an unprivileged `--root auto`: each level from wnr's cgroup up, usable or why not."""
    if requested not in (None, "auto") or os.access(mount, os.W_OK):
        return []
    pid = os.getpid()
    levels = survey(mount, own_cgroup_path(mount))
    chosen = choose_level(levels)
    used = chosen.level if chosen is not None else None
    checks = [
        Check("level", Verdict.ok if level is used else Verdict.note, describe(level, pid, chosen))
        for level in levels
    ]
    if not levels:
        detail = f"wnr runs in {mount} itself: no level below it"
        checks.append(Check("level", Verdict.note, detail))
    elif chosen is not None and leaves_for_daemon(levels[0].path, chosen.level.path):
        moved = f"{levels[0].path} -> {chosen.level.path / 'wnr.daemon'}"
        checks.append(Check("level", Verdict.note, f"wnr run/apply move wnr itself: {moved}"))
    return checks


def check_controllers(root: Path, wanted: tuple[str, ...]) -> Check:
    """Which wanted controllers the kernel offers at the root."""
    fs = CgroupFS(root)
    exists = fs.exists("")
    source = root if exists else root.parent
    try:
        text = fs.read("", "cgroup.controllers") if exists else fs.read_parent("cgroup.controllers")
    except CgroupError as exc:
        return Check("controllers", Verdict.fail, f"cannot read {source}/cgroup.controllers: {exc}")
    if text is None:
        return Check(
            "controllers", Verdict.fail, f"{source} is not a cgroup (no cgroup.controllers)"
        )
    offered = set(text.split())
    missing = [c for c in wanted if c not in offered]
    if not missing:
        return Check("controllers", Verdict.ok, f"{' '.join(wanted)} available at {source}")
    listed = " ".join(sorted(offered)) or "none"
    return Check(
        "controllers",
        Verdict.warn,
        f"missing {' '.join(missing)} at {source} (offered: {listed}); "
        "wnr reports these limits as not enforced by the kernel",
        "boot with systemd.unified_cgroup_hierarchy=1 (pure cgroup v2) or delegate the controllers "
        "down to this cgroup (cgroup.subtree_control of each ancestor)",
    )


def check_kill(release: str, probe: Path | None = None) -> Check:
    """How wnr stops a cgroup here: `cgroup.kill` (Linux 5.14+), else freeze+kill. Seen in
    `probe` (a non-root cgroup: the root of the hierarchy never has the file) when given,
    else judged by the kernel release."""
    if probe is not None:
        found = (probe / "cgroup.kill").exists()
        where = f"{'found' if found else 'none'} in {probe}"
    else:
        parts = release.split(".")
        try:
            version = (int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit())))
        except (IndexError, ValueError):
            version = (0, 0)
        found, where = version >= (5, 14), "judged by the release"
    if found:
        detail = f"mechanism cgroup.kill: kernel {release} has it ({where})"
        return Check("cgroup.kill", Verdict.ok, detail)
    return Check(
        "cgroup.kill",
        Verdict.warn,
        f"mechanism freeze+kill: kernel {release} predates cgroup.kill (5.14; {where})",
        "wnr stops a cgroup by freezing it, SIGKILLing each process, thawing it, and removes "
        "it once cgroup.events says populated 0",
    )


def _kill_probe(root: Path, mount: Path) -> Path | None:
    """A cgroup below the mount's top to look for cgroup.kill in: the root, else its parent."""
    for candidate in (root, root.parent):
        if candidate != mount and mount in candidate.parents and candidate.is_dir():
            return candidate
    return None


def check_spec_dir(specs: Path, uid: int) -> Check:
    """The spec dir runs commands: nobody but wnr's user or root may write it."""
    if not specs.exists():
        return Check(
            "spec dir", Verdict.warn, f"{specs} does not exist yet", f"mkdir -m 0755 {specs}"
        )
    loose: list[str] = []
    for path in [specs, *sorted(specs.iterdir())]:
        st = path.stat()
        if st.st_uid not in (0, uid) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            loose.append(f"{path} (uid {st.st_uid}, mode {stat.filemode(st.st_mode)})")
    if not loose:
        return Check("spec dir", Verdict.ok, f"{specs} is writable only by uid {uid} or root")
    return Check(
        "spec dir",
        Verdict.fail,
        f"writable by others: {', '.join(loose)}",
        f"a Job spec runs a command: chmod go-w and chown to uid {uid} or root",
    )


_STATE_HINTS = {
    "NoSpace": "free space on its file system or point --state-dir elsewhere: wnr starts no "
    "job while it cannot record the attempt, and resumes by itself once it can",
    "QuotaExceeded": "raise the quota of wnr's user there, or point --state-dir elsewhere",
    "ReadOnly": "remount it read-write (mount -o remount,rw) or point --state-dir elsewhere",
    "IOError": "check the disk (dmesg); until it records, wnr starts no job",
    "PermissionDenied": "chown the state dir to wnr's user, or point --state-dir elsewhere",
}


def check_state_dir(state: Path) -> Check:
    """The state dir records every attempt: it must be writable and have room."""
    try:
        exists = state.exists()
    except OSError as exc:  # a parent wnr's user may not enter (HOME=/root for nobody)
        message = f"{state} cannot be reached: {exc.strerror}"
        return Check("state dir", Verdict.fail, message, _STATE_HINTS["PermissionDenied"])
    if not exists:
        parent = next((p for p in state.parents if p.exists()), Path("/"))
        fault = check(parent)
        if fault is None:
            return Check("state dir", Verdict.ok, f"{state} is created on the first run")
        return Check(
            "state dir", Verdict.fail, f"{state} cannot be created: {fault}", f"mkdir -p {state}"
        )
    fault = check(state)
    if fault is not None:
        hint = _STATE_HINTS.get(fault.reason, "make it writable or point --state-dir elsewhere")
        return Check("state dir", Verdict.fail, str(fault), hint)
    info = os.statvfs(state)
    free = (info.f_bfree if os.geteuid() == 0 else info.f_bavail) * info.f_frsize
    detail = f"{state} is writable; {free // 1024} KiB free"
    if free < 64 * MIN_FREE_BYTES:
        return Check(
            "state dir",
            Verdict.warn,
            f"{detail}, enough for a few hundred jobs' records at most",
            _STATE_HINTS["NoSpace"],
        )
    return Check("state dir", Verdict.ok, detail)


def check_runtimes(requested: str) -> Check:
    """Which container runtimes are installed and which one `runtime: auto` picks."""
    found = frozenset(name for name in ("apptainer", "bwrap") if shutil.which(name))
    chosen = resolve(requested, found)
    detail = f"found {', '.join(sorted(found)) or 'none'}; runtime {requested} -> {chosen}"
    if requested not in ("auto", "none") and requested not in found:
        return Check("runtimes", Verdict.fail, detail, f"install {requested} or set runtime: auto")
    return Check("runtimes", Verdict.ok, detail)


def check_descriptors(desired: Desired) -> Check:
    """The descriptors `wnr run` may hold for waking (a pidfd per running wrapper, a
    `cgroup.events` per cgroup being stopped), against the wrappers the specs ask for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = descriptor_budget(hard)  # `wnr run` raises its soft limit to the hard one
    wrappers = desired.wrappers
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    detail = (
        f"RLIMIT_NOFILE {soft}:{shown} here; wnr run raises its soft limit to {shown} and "
        f"watches up to {budget} wrappers' exits by pidfd (specs ask for {wrappers}); "
        f"payloads get the soft limit it started with ({soft})"
    )
    if wrappers > budget:
        hint = (
            "raise the hard limit (LimitNOFILE= in wnr.service, `ulimit -Hn`): past the budget, "
            "exits are noticed by timers and the resync, not at once"
        )
        return Check("descriptors", Verdict.warn, detail, hint)
    return Check("descriptors", Verdict.ok, detail)


def check_wrapper() -> Check:
    """The compiled job wrapper every attempt runs under."""
    missing = wrapper_missing()
    if missing is not None:
        return Check("wrapper", Verdict.fail, missing, "pip install --force-reinstall wnr")
    return Check("wrapper", Verdict.ok, WRAPPER)


def check_gpus() -> Check:
    """NVIDIA GPUs found through /dev/nvidia* or nvidia-smi -L."""
    gpus = detect_gpus()
    return Check(
        "gpus", Verdict.ok, f"{len(gpus)} found: {', '.join(gpus)}" if gpus else "none found"
    )


def check_cpu() -> Check:
    """The node's architecture and a few CPU features grid jobs ask for."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.partition(":")[2].split())
    except OSError:
        pass
    notable = [f for f in ("sse4_2", "avx", "avx2", "avx512f", "asimd", "sve") if f in flags]
    return Check(
        "cpu", Verdict.ok, f"{platform.machine()}; features: {' '.join(notable) or 'none'}"
    )


def check_users(desired: Desired, uid: int) -> list[Check]:
    """Whom each slot runs as: warn for an explicit `user: root`, FAIL for a user that cannot
    be run as (unknown, or someone else while wnr is not root), whose slot runs nothing."""
    found = Accounts().look_up(users_named(desired), 0.0)
    checks = []
    for name in sorted(desired.slots):
        chosen = run_as(desired.node_spec, desired.slots[name], uid, found)
        verdict = Verdict.ok
        hint = ""
        if chosen.refusal:
            verdict = Verdict.fail
            hint = "nothing of this slot runs until its user can be run as"
        elif chosen.reason is RunAsReason.Root:
            verdict = Verdict.warn
            hint = "jobs run as root: grid payloads are untrusted; give the slot a user"
        checks.append(Check(f"user of Slot/{name}", verdict, chosen.message, hint))
    return checks


def run_checks(
    requested_root: str | None,
    specs: Path,
    wanted: tuple[str, ...],
    runtime: str = "auto",
    state: Path | None = None,
) -> list[Check]:
    """Every check, in the order an admin would fix them."""
    uid = os.geteuid()
    mounts = cgroup2_mounts()
    if not mounts:
        return [
            Check(
                "cgroup2",
                Verdict.fail,
                "no cgroup2 mount in /proc/self/mountinfo",
                "mount -t cgroup2 none /sys/fs/cgroup (or boot with cgroup v2)",
            )
        ]
    checks = [
        Check(
            "cgroup2",
            Verdict.ok,
            f"mounted at {', '.join(map(str, mounts))}; wnr runs in {own_cgroup()}",
        )
    ]
    checks.extend(check_levels(mounts[-1], requested_root))
    try:
        root = choose_root(requested_root, mounts)
    except WnrError as exc:
        checks.append(Check("root", Verdict.fail, str(exc)))
        return checks
    checks.append(Check("root", Verdict.ok, str(root)))
    checks.extend(check_delegation(root, uid))
    checks.append(check_controllers(root, wanted))
    checks.append(check_kill(platform.release(), _kill_probe(root, mounts[-1])))
    checks.append(check_spec_dir(specs, uid))
    if state is not None:
        checks.append(check_state_dir(state))
    checks.append(check_wrapper())
    checks.append(check_runtimes(runtime))
    checks.append(check_gpus())
    checks.append(check_cpu())
    return checks
