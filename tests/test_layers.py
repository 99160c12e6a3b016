"""The import contracts: the planner and status stay pure, checked on sys.modules and by import-linter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))

# What a pure module may never load, directly or through anything it imports. A static
# graph misses imports made at run time; a fresh interpreter's sys.modules does not.
FORBIDDEN_FOR_PURE = (
    "ruamel",
    "tenacity",
    "psutil",
    "watchfiles",
    "reconciler.specs",
    "reconciler.specfile",
    "reconciler.state",
    "reconciler.statefault",
    "reconciler.atomicfile",
    "reconciler.cgroupfs",
    "reconciler.process",
    "reconciler.apply",
)


def imported_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def forbidden(modules: set[str]) -> set[str]:
    """The loaded modules that are, or are inside, a forbidden one."""
    return {m for m in modules for f in FORBIDDEN_FOR_PURE if m == f or m.startswith(f"{f}.")}


@pytest.mark.parametrize(
    "module",
    [
        "reconciler.plan",
        "reconciler.status",
        "reconciler.desired",
        "reconciler.records",
        "reconciler.layout",
        "reconciler.jobphase",
        "reconciler.limits",
        "reconciler.runtime",
    ],
)
def test_pure_modules_do_not_import_io_layers(module: str) -> None:
    """The planner, status and the types below them load no YAML loader, state dir, retries, psutil, watcher or host layer."""
    assert set() == forbidden(imported_by(module))


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with pyproject.toml's contracts, on the `reconciler` package found in cwd."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_contracts_hold() -> None:
    """Every import-linter contract in pyproject.toml is kept by the package as it is."""
    result = lint_imports(REPO)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_breaking_a_contract_on_purpose_fails(tmp_path: Path) -> None:
    """A copy of the package whose planner imports the spec loader fails lint-imports, naming the import."""
    shutil.copytree(
        REPO / "reconciler",
        tmp_path / "reconciler",
        ignore=shutil.ignore_patterns("_bin", "__pycache__"),
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    core = tmp_path / "reconciler" / "plan" / "core.py"
    core.write_text(
        core.read_text() + "\nimport reconciler.specs  # a contract broken on purpose\n"
    )
    result = lint_imports(tmp_path)
    assert 1 == result.returncode, result.stdout + result.stderr
    assert "reconciler.plan.core -> reconciler.specs" in result.stdout


# Not __main__: importing it runs the benchmark.
BENCH_MODULES = sorted(p.stem for p in (REPO / "bench").glob("*.py") if p.stem != "__main__")


@pytest.mark.parametrize("module", BENCH_MODULES)
def test_every_bench_module_imports(module: str) -> None:
    """bench/ is outside mypy and runs only in make test: each of its modules at least imports against the package as it is."""
    code = f"import bench.{module}"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert 0 == result.returncode, result.stderr
