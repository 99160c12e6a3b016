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
    "reconciler.observe",
    "reconciler.apply",
    "reconciler.daemon",
    "reconciler.host",
    "reconciler.reconcile",
    "reconciler.render",
)
# The pure core: every module of these packages, each imported alone.
PURE_PACKAGES = ("model", "plan", "status")
PURE_MODULES = sorted(
    f"reconciler.{package}" + ("" if path.stem == "__init__" else f".{path.stem}")
    for package in PURE_PACKAGES
    for path in (REPO / "reconciler" / package).glob("*.py")
)


def imported_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def forbidden(modules: set[str]) -> set[str]:
    """The loaded modules that are, or are inside, a forbidden one."""
    return {m for m in modules for f in FORBIDDEN_FOR_PURE if m == f or m.startswith(f"{f}.")}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_do_not_import_io_layers(module: str) -> None:
    """Each module of the model, the planner and status loads no YAML loader, retries, psutil, watcher, state dir or host layer."""
    assert set() == forbidden(imported_by(module))


# What `wnr run` needs only off its default path: polling where inotify is unavailable,
# and the metrics endpoint (--metrics-address or --metrics-textfile); 5 MiB of its memory.
DAEMON_ONLY_WHEN_ASKED = ("watchfiles", "prometheus_client")


def test_the_daemon_loads_the_poller_and_metrics_only_when_asked() -> None:
    """The modules `wnr run` imports by default load neither watchfiles nor prometheus_client."""
    loaded = imported_by("reconciler.cli, reconciler.cli.changing, reconciler.daemon.loop")

    assert set() == {m for m in loaded if m.split(".")[0] in DAEMON_ONLY_WHEN_ASKED}


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


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("plan/core.py", "reconciler.specs.loader"),  # the pure core
        ("host/cgroupfs.py", "reconciler.plan.builder"),  # the host layer
        ("observe/usage.py", "reconciler.apply.applier"),  # the layers
    ],
)
def test_breaking_a_contract_on_purpose_fails(tmp_path: Path, module: str, imported: str) -> None:
    """A copy of the package with one import against a contract fails lint-imports, naming the import."""
    shutil.copytree(
        REPO / "reconciler",
        tmp_path / "reconciler",
        ignore=shutil.ignore_patterns("_bin", "__pycache__"),
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    source = tmp_path / "reconciler" / module
    source.write_text(source.read_text() + f"\nimport {imported}  # a contract broken on purpose\n")
    result = lint_imports(tmp_path)
    assert 1 == result.returncode, result.stdout + result.stderr
    importer = "reconciler." + module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {imported}" in result.stdout


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
