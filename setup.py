"""The package's build step: compile the job wrapper (reconciler/host/wrapper/) beside the code.

setuptools runs build_py for wheels and for editable installs (`pip install -e`,
what `make install` does); the wrapper lands in reconciler/host/_bin/wnr-wrapper of
the wheel, or of the source tree for an editable install. Everything else about
the package is declared in pyproject.toml.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

# The wrapper's C files (main.c, payload.c, record.c, ...; wrapper.h lists them), one program.
SOURCES = sorted((Path("reconciler") / "host" / "wrapper").glob("*.c"))
# -O2 and warnings only: the wrapper must build with any C99 compiler a worker node has.
CFLAGS = ["-O2", "-std=gnu99", "-Wall", "-Wextra"]


def compile_wrapper(target: Path) -> None:
    """cc reconciler/host/wrapper/*.c -o TARGET, atomically (a running wrapper keeps its inode)."""
    if not SOURCES:
        raise SystemExit("wnr: the job wrapper's C files (reconciler/host/wrapper/*.c) are missing")
    compiler = shlex.split(os.environ.get("CC", "cc"))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    command = [*compiler, *CFLAGS, "-o", str(partial), *map(str, SOURCES)]
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"wnr: cannot compile its job wrapper ({' '.join(command)}): {exc}; "
            "install a C compiler (Debian: apt-get install gcc) and try again"
        ) from exc
    partial.chmod(0o755)
    partial.replace(target)


class BuildWithWrapper(build_py):
    """build_py, then the wrapper binary."""

    def run(self) -> None:
        super().run()
        base = Path() if self.editable_mode else Path(self.build_lib)
        compile_wrapper(base / "reconciler" / "host" / "_bin" / "wnr-wrapper")


class WithBinary(Distribution):
    """A wheel holding a compiled program is for one platform, not py3-none-any."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithWrapper}, distclass=WithBinary)
