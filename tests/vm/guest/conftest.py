"""Fixtures of the guest suite (tests/vm/guest), which runs INSIDE the real-kernel VM.

tests/vm/run boots the VM with pure cgroup v2 at /sys/fs/cgroup; the session
check below FAILS (never skips) every test anywhere else, before anything is
written, so that this suite never touches a host's hybrid cgroup tree. Each test
gets its own wnr root `/sys/fs/cgroup/wnr-vm-<random>`, removed with cgroup.kill
and rmdir even when the test fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.observe.mounts import unified_problem
from tests.vm.guest.harness import MOUNT, Wnr, remove_tree

REQUIRED_CONTROLLERS = {"cpu", "memory", "pids"}


def _cgroup_problem() -> str | None:
    """Why /sys/fs/cgroup is not a pure cgroup2 mount with the controllers we need, or None."""
    return unified_problem(MOUNT, REQUIRED_CONTROLLERS)


def pytest_configure(config: pytest.Config) -> None:
    """The marker of the tests tests/test_vm_tier.py also runs on the 5.10 kernel's boot."""
    config.addinivalue_line(
        "markers", "oldkernel: also run on Debian bullseye's 5.10 kernel (no cgroup.kill)"
    )


@pytest.fixture(scope="session", autouse=True)
def _pure_cgroup2() -> None:
    """Every guest test needs pure cgroup v2 with cpu, memory and pids: fail loudly without it."""
    problem = _cgroup_problem()
    if problem is not None:
        pytest.fail(f"the VM tier runs only inside tests/vm/run: {problem}", pytrace=False)


@pytest.fixture
def wnr(tmp_path: Path) -> Iterator[Wnr]:
    """A spec dir, a state dir and a unique cgroup root (not created yet), torn down afterwards."""
    specs = tmp_path / "specs"
    specs.mkdir()
    root = MOUNT / f"wnr-vm-{uuid.uuid4().hex[:12]}"
    try:
        yield Wnr(specs, root, tmp_path / "state")
    finally:
        remove_tree(root)
