"""HTCondor's and systemd's delegation layouts, built by root exactly as they make them, with wnr as the pilot.

HTCondor's daemons are not installable here (not in Debian bookworm; PyPI's
`htcondor` holds only the Python bindings), so these fixtures copy what its
starter does (src/condor_utils/proc_family_direct_cgroup_v2.cpp): the interior
cgroups get `+memory +pids +cpu +io`, the limits and memory.oom.group are
written as root, and the directory, cgroup.procs and cgroup.subtree_control
are chowned to the job's user (cgroup.threads stays root's). 23.x does that to
the slot's cgroup and runs the job in it; 24.8.1 and later to
`<slot>.slice` and runs the job in a root-owned `<slot>.scope` below it. The
systemd layout is a `Delegate=yes` unit with `User=` and `DelegateSubgroup=`:
the unit's cgroup delegated (cg_set_access: the directory and its delegation
files), the subgroup holding the service's processes (cg_set_access_recursive:
every file). Runs INSIDE the real-kernel VM.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.vm.guest.harness import MOUNT, MiB, alive, gate, remove_tree, wait_for
from tests.vm.guest.pilot import (
    NOBODY,
    as_pilot,
    procs,
    start_pilot,
    stop_pilot,
    words,
    write_specs,
)

SLOT = "condor_var_lib_condor_execute_slot1_1@wn01.example.org"
CONTROLLERS = {"cpu", "io", "memory", "pids"}
# The payload of tests/vm/guest/test_enforcement.py's hog: 200 MB, every page touched.
ALLOCATE_200MB = "exec python3 -c 'data = b\"x\" * (200 * 1024 * 1024)'"


@dataclass(frozen=True)
class Layout:
    """A batch system's cgroups: where the pilot starts and which level wnr must take."""

    name: str
    leaf: Path
    root: Path


def _interior(path: Path) -> None:
    """mkdir as root, then the controllers for its children, as HTCondor writes them."""
    path.mkdir(exist_ok=True)
    for controllers in ("+memory +pids", "+cpu", "+io"):
        (path / "cgroup.subtree_control").write_text(controllers)


def _chown(cgroup: Path, *names: str) -> None:
    for path in (cgroup, *(cgroup / name for name in names)):
        os.chown(path, NOBODY, NOBODY)


def _condor_base(base: Path) -> Path:
    """system.slice/condor.service (Delegate=true, DelegateSubgroup=leaf)/htcondor."""
    service = base / "system.slice" / "condor.service"
    for path in (base, base / "system.slice", service):
        _interior(path)
    (service / "leaf").mkdir()  # condor_master and its daemons live here
    _interior(service / "htcondor")
    return service / "htcondor"


def condor_23(base: Path) -> Layout:
    """HTCondor 23.x: the slot cgroup delegated, the pilot in it, limits root's on it."""
    slot = _condor_base(base) / SLOT
    slot.mkdir()
    (slot / "memory.max").write_text(str(768 * MiB))
    (slot / "memory.oom.group").write_text("1")
    _chown(slot, "cgroup.procs", "cgroup.subtree_control")
    return Layout("htcondor-23", slot, slot)


def condor_24(base: Path) -> Layout:
    """HTCondor >= 24.8.1: `<slot>.slice` delegated with the limits and oom.group, the pilot in
    the root-owned `<slot>.scope` below it."""
    htcondor = _condor_base(base)
    slice_ = htcondor / f"{SLOT}.slice"
    _interior(slice_)
    scope = slice_ / f"{SLOT}.scope"
    scope.mkdir()
    (slice_ / "memory.max").write_text(str(768 * MiB))
    (slice_ / "memory.oom.group").write_text("1")
    _chown(slice_, "cgroup.procs", "cgroup.subtree_control")
    return Layout("htcondor-24.8", scope, slice_)


def systemd_subgroup(base: Path) -> Layout:
    """`Delegate=yes`, `User=nobody`, `DelegateSubgroup=supervisor`: the unit delegated, its
    processes in the subgroup, which is the user's through and through."""
    system = base / "system.slice"
    for path in (base, system):
        _interior(path)
    unit = system / "pilot.service"
    unit.mkdir()
    _chown(unit, "cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "memory.oom.group")
    supervisor = unit / "supervisor"
    supervisor.mkdir()
    for path in (supervisor, *supervisor.iterdir()):
        os.chown(path, NOBODY, NOBODY)
    return Layout("systemd-delegate-subgroup", supervisor, unit)


LAYOUTS: list[Callable[[Path], Layout]] = [condor_23, condor_24, systemd_subgroup]


@pytest.fixture(params=LAYOUTS, ids=lambda build: build.__name__)
def layout(request: pytest.FixtureRequest) -> Iterator[Layout]:
    """One layout below a unique cgroup, removed with everything in it afterwards."""
    base = MOUNT / f"wnr-vm-layout-{uuid.uuid4().hex[:8]}"
    try:
        yield request.param(base)
    finally:
        remove_tree(base)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory uid 65534 can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="wnr-condor-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def keyed(path: Path) -> dict[str, int]:
    """A flat-keyed interface file (memory.events) as a dict."""
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def _documents(*jobs: tuple[str, list[str], dict[str, object]]) -> list[dict[str, object]]:
    slot = {"kind": "Slot", "name": "pilot", "spec": {"resources": {"memory": "400Mi", "pids": 64}}}
    return [slot] + [
        {"kind": "Job", "name": n, "spec": {"slot": "pilot", "command": c, "resources": r}}
        for n, c, r in jobs
    ]


def test_doctor_as_the_pilot_says_why_each_level_is_or_is_not_usable(
    layout: Layout, shared_tmp: Path
) -> None:
    """`wnr doctor` as the pilot shows every level from its cgroup up: owner, writable files, processes, controllers, and which one is the root."""
    specs, state = write_specs(shared_tmp, _documents())
    result = as_pilot(layout.leaf, "doctor", "--specs", str(specs), "--state-dir", str(state))
    out = result.stdout
    assert 0 == result.returncode, out + result.stderr
    lines = {line.split(": ", 2)[1]: line for line in out.splitlines() if "] level: /" in line}
    used = lines[str(layout.root)]
    assert used.startswith("[  ok] level: "), out
    assert "USED as the root" in used
    assert "dir writable, cgroup.procs writable, cgroup.subtree_control writable" in used
    assert f"owner uid {NOBODY}" in used
    assert "controllers offered: cpu io memory pids" in used
    htcondor_or_system = lines[str(layout.root.parent)]
    assert "not usable: dir, cgroup.procs, cgroup.subtree_control not writable" in (
        htcondor_or_system
    )
    assert "owner uid 0" in htcondor_or_system
    assert f"wnr run/apply move wnr itself: {layout.leaf} -> {layout.root}/wnr.daemon" in out
    assert f"[  ok] root: {layout.root}" in out
    if layout.leaf != layout.root:
        leaf = lines[str(layout.leaf)]
        assert "processes: wnr only" in leaf, leaf
    if layout.name == "htcondor-24.8":
        assert "mkdir fails with Permission denied" in lines[str(layout.leaf)]
        assert "memory.oom.group=1" in used
    if layout.name == "htcondor-23":
        assert "cgroup.threads not writable" in used
        assert "which only threaded cgroups need" in out


def test_wnr_run_as_the_pilot_takes_the_usable_level_and_enforces_limits(
    layout: Layout, shared_tmp: Path
) -> None:
    """`wnr run --root auto` as the pilot takes the delegated level, moves itself into wnr.daemon, enables controllers and runs a job under kernel limits."""
    job = ("payload", ["sleep", "600"], {"memory": "100Mi", "pids": 10})
    specs, state = write_specs(shared_tmp, _documents(job))
    flags = ("--specs", str(specs), "--state-dir", str(state), "--root", "auto")
    log_file = shared_tmp / "daemon.log"
    daemon = start_pilot(layout.leaf, log_file, "run", *flags)

    def log() -> str:
        return log_file.read_text()

    try:
        cgroup = layout.root / "slot.pilot" / "job.payload"
        wait_for("the job's wrapper and payload", lambda: len(procs(cgroup)) == 2, timeout=180)
        assert [daemon.pid] == procs(layout.root / "wnr.daemon"), log()
        assert daemon.pid not in procs(layout.leaf), log()
        assert CONTROLLERS <= words(layout.root / "cgroup.subtree_control"), log()
        assert str(400 * MiB) == (layout.root / "slot.pilot" / "memory.max").read_text().strip()
        assert "64" == (layout.root / "slot.pilot" / "pids.max").read_text().strip()
        assert str(100 * MiB) == (cgroup / "memory.max").read_text().strip()
        assert "10" == (cgroup / "pids.max").read_text().strip()
        assert {NOBODY} == {os.stat(f"/proc/{pid}").st_uid for pid in procs(cgroup)}
    finally:
        assert 0 == stop_pilot(daemon), log()


def test_wnr_apply_as_the_pilot_takes_the_same_level(layout: Layout, shared_tmp: Path) -> None:
    """`wnr apply --wait` as the pilot reports the same root and leaves the pilot's leaf for wnr.daemon."""
    specs, state = write_specs(shared_tmp, _documents())
    flags = ("--specs", str(specs), "--state-dir", str(state), "--wait", "-o", "json")
    result = as_pilot(layout.leaf, "apply", *flags)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert str(layout.root) == json.loads(result.stdout)["root"]
    assert (layout.root / "wnr.daemon").is_dir()
    assert CONTROLLERS <= words(layout.root / "cgroup.subtree_control")
    assert str(400 * MiB) == (layout.root / "slot.pilot" / "memory.max").read_text().strip()


def test_job_oom_in_a_condor_24_slice_kills_only_the_job(shared_tmp: Path) -> None:
    """In HTCondor 24.8's slice (memory.oom.group=1 on it), a job over its own memory is OOM-killed and shown OOMKilled while its neighbour and wnr live on."""
    base = MOUNT / f"wnr-vm-layout-{uuid.uuid4().hex[:8]}"
    go = shared_tmp / "go"
    try:
        layout = condor_24(base)
        hog = ("hog", gate(go, ALLOCATE_200MB), {"memory": "64Mi"})
        specs, state = write_specs(shared_tmp, _documents(hog, ("bystander", ["sleep", "600"], {})))
        flags = ("--specs", str(specs), "--state-dir", str(state))
        daemon = start_pilot(layout.leaf, shared_tmp / "daemon.log", "run", *flags)
        slot = layout.root / "slot.pilot"
        try:
            wait_for("both jobs running", lambda: len(procs(slot / "job.bystander")) == 2, 180)
            wait_for("the hog waiting at its gate", lambda: len(procs(slot / "job.hog")) == 2)
            bystander = procs(slot / "job.bystander")
            go.touch()

            def hog() -> str:
                return as_pilot(layout.leaf, "get", "jobs", "hog", *flags, "-o", "json").stdout

            wait_for("hog Failed", lambda: '"Failed"' in hog(), timeout=180)
            shown = hog()
            assert "OOMKilled" in shown, shown
            assert "enforced by wnr" not in shown, "the kernel killed it, not wnr's sampling"
            assert keyed(slot / "memory.events")["oom_kill"] >= 1
            # The job's own group kill counts up the tree in memory.events; the slice itself
            # never hit its limit (a slice-wide kill would count in its memory.events.local).
            assert 0 == keyed(layout.root / "memory.events.local")["oom_group_kill"]
            assert [True, True] == [alive(pid) for pid in bystander]
            assert alive(daemon.pid)
        finally:
            assert 0 == stop_pilot(daemon), (shared_tmp / "daemon.log").read_text()
    finally:
        remove_tree(base)
