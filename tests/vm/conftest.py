"""Host-side collection rule for tests/vm: the guest suite runs only when named explicitly.

tests/vm/guest holds the tests that run INSIDE the real-kernel VM (tests/vm/run
passes `tests/vm/guest` to pytest there); a plain `pytest` on the host reaches
them only through tests/test_vm_tier.py, which boots the VM. Naming the folder
(or a file in it) on the command line still collects it, and its conftest then
fails loudly unless /sys/fs/cgroup is a pure cgroup2 mount.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GUEST = Path(__file__).resolve().parent / "guest"


def _named(config: pytest.Config) -> bool:
    """Whether a command-line argument points at the guest suite or into it."""
    base = config.invocation_params.dir
    for arg in config.args:
        path = (base / arg.split("::")[0]).resolve()
        if path == GUEST or GUEST in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip collecting tests/vm/guest unless it was asked for by path."""
    if collection_path == GUEST and not _named(config):
        return True
    return None
