"""The cgroup layer on the real cgroup2 mount: the path chokepoint, errno handling, kill and removal."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from reconciler.host.cgroupfs import CgroupFS
from reconciler.model.errors import CgroupError
from tests.conftest import wait_for


@pytest.mark.parametrize(
    "rel",
    [
        "..",
        "slot.a/..",
        "../etc",
        "slot.a/../../x",
        "foo",
        "slot.A",
        "slot.a/job.b/c",
        "/abs",
        "slot.a//job.b",
    ],
)
def test_path_refuses_names_wnr_does_not_own(rel: str) -> None:
    """Any path that is not one of wnr's own names below the root is refused."""
    fs = CgroupFS("/sys/fs/cgroup/unified/wnr-x")
    with pytest.raises(ValueError, match="refusing cgroup path"):
        fs.path(rel)


def test_path_joins_owned_names() -> None:
    """Owned names join below the root."""
    fs = CgroupFS("/sys/fs/cgroup/unified/wnr-x")
    assert Path("/sys/fs/cgroup/unified/wnr-x/slot.a/job.b-1") == fs.path("slot.a/job.b-1")
    assert Path("/sys/fs/cgroup/unified/wnr-x/slot.a/agent.0") == fs.path("slot.a/agent.0")


def test_mkdir_rmdir_are_idempotent(cgroup_root: Path) -> None:
    """mkdir of an existing cgroup and rmdir of a missing one both succeed quietly."""
    fs = CgroupFS(cgroup_root)
    assert fs.mkdir("")
    assert fs.mkdir("slot.a")
    assert not fs.mkdir("slot.a")
    assert ["slot.a"] == fs.children("")
    fs.rmdir("slot.a")
    fs.rmdir("slot.a")
    assert [] == fs.children("")


def test_errors_carry_operation_path_value_and_errno(cgroup_root: Path) -> None:
    """A refused write names the file, the value and the errno, and is classified as permanent."""
    fs = CgroupFS(cgroup_root)
    fs.mkdir("")
    with pytest.raises(CgroupError) as caught:
        fs.write("", "cgroup.subtree_control", "+nosuchcontroller")
    error = caught.value
    assert (errno.EINVAL, False) == (error.errno, error.transient)
    assert f"write {cgroup_root}/cgroup.subtree_control = '+nosuchcontroller': EINVAL" in str(error)


def test_rmdir_of_busy_cgroup_reports_ebusy(cgroup_root: Path) -> None:
    """Removing a cgroup that still holds a process fails with EBUSY after brief retries."""
    fs = CgroupFS(cgroup_root)
    fs.mkdir("")
    fs.mkdir("slot.a")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        fs.write("slot.a", "cgroup.procs", str(sleeper.pid))
        with pytest.raises(CgroupError) as caught:
            fs.rmdir("slot.a")
        assert errno.EBUSY == caught.value.errno
        assert (sleeper.pid,) == fs.procs("slot.a")
        assert 1 == fs.events("slot.a")["populated"]
        fs.kill("slot.a")
        assert -9 == sleeper.wait(timeout=5)
        wait_for(lambda: fs.events("slot.a")["populated"] == 0)
        fs.rmdir("slot.a")
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_freeze_and_thaw(cgroup_root: Path) -> None:
    """cgroup.freeze freezes and thaws a cgroup, as cgroup.events reports."""
    fs = CgroupFS(cgroup_root)
    fs.mkdir("")
    fs.mkdir("slot.a")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        fs.write("slot.a", "cgroup.procs", str(sleeper.pid))
        fs.freeze("slot.a", True)
        wait_for(lambda: fs.events("slot.a").get("frozen") == 1)
        fs.freeze("slot.a", False)
        wait_for(lambda: fs.events("slot.a").get("frozen") == 0)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_read_of_missing_interface_file_is_none(cgroup_root: Path) -> None:
    """A limit file of a controller the cgroup lacks reads as None instead of raising."""
    fs = CgroupFS(cgroup_root)
    fs.mkdir("")
    assert fs.read("", "nosuch.max") is None
    with pytest.raises(ValueError, match="not a cgroup interface file name"):
        fs.read("", "../cgroup.procs")


def test_read_parent_reads_the_one_cgroup_above_the_root(cgroup_root: Path) -> None:
    """The root's parent is read through the layer, by interface name only, even before the root exists."""
    fs = CgroupFS(cgroup_root)
    expected = (cgroup_root.parent / "cgroup.subtree_control").read_text().strip()
    assert expected == fs.read_parent("cgroup.subtree_control")
    assert fs.read_parent("nosuch.max") is None
    with pytest.raises(ValueError, match="not a cgroup interface file name"):
        fs.read_parent("../cgroup.procs")
