"""The import contract: the planner stays pure (no psutil, watchfiles or cgroup layer)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN_FOR_PURE = {
    "psutil",
    "watchfiles",
    "reconciler.cgroupfs",
    "reconciler.process",
    "reconciler.apply",
}


def imported_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "module",
    [
        "reconciler.plan",
        "reconciler.jobphase",
        "reconciler.limits",
        "reconciler.status",
        "reconciler.runtime",
    ],
)
def test_pure_modules_do_not_import_io_layers(module: str) -> None:
    """The planner and what it imports never load psutil, watchfiles, the cgroup or process layer."""
    assert set() == imported_by(module) & FORBIDDEN_FOR_PURE
