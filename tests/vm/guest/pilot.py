"""Helpers for the guest suite: wnr run as an unprivileged pilot from inside a batch system's cgroup.

Imported by tests/vm/guest/test_htcondor.py, which runs INSIDE the real-kernel
VM (tests/vm/run): root builds a batch system's cgroup layout, then starts wnr
as uid 65534 with its first process already in the layout's leaf, as HTCondor's
starter (or systemd) does before it drops privileges and execs the pilot.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.vm.guest.harness import REPO, WNR_TIMEOUT

NOBODY = 65534


def write_specs(base: Path, documents: list[dict[str, Any]]) -> tuple[Path, Path]:
    """A spec dir holding `documents` and an empty state dir, both owned by uid 65534."""
    specs, state = base / "specs", base / "state"
    for directory in (specs, state):
        directory.mkdir(exist_ok=True)
        os.chown(directory, NOBODY, NOBODY)
    text = "---\n".join(
        f"apiVersion: wnr.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
        f"spec: {json.dumps(spec)}\n"
        for kind, name, spec in ((d["kind"], d["name"], d["spec"]) for d in documents)
    )
    path = specs / "pilot.yaml"
    path.write_text(text)
    os.chown(path, NOBODY, NOBODY)
    return specs, state


def launcher(leaf: Path, *args: str) -> list[str]:
    """argv that enters `leaf` as root, then execs `python -m reconciler ARGS` as uid 65534."""
    script = (
        f'echo $$ > "{leaf}/cgroup.procs" && exec setpriv --reuid={NOBODY} --regid={NOBODY} '
        f"--clear-groups {sys.executable} -m reconciler " + " ".join(args)
    )
    return ["sh", "-c", script]


def as_pilot(leaf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one wnr command as the pilot, started in `leaf`; its output is returned."""
    return subprocess.run(
        launcher(leaf, *args),
        capture_output=True,
        text=True,
        timeout=WNR_TIMEOUT,
        cwd=REPO,
        env={**os.environ, "HOME": "/nonexistent"},
        check=False,
    )


def start_pilot(leaf: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `wnr ARGS` (the daemon) as the pilot in `leaf`; its output goes to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            launcher(leaf, *args),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "HOME": "/nonexistent"},
        )


def stop_pilot(daemon: subprocess.Popen[bytes]) -> int:
    """SIGTERM the daemon this test started (by its PID) and wait for it."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait(timeout=10)


def procs(cgroup: Path) -> list[int]:
    """The PIDs in one cgroup (not its children)."""
    return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]


def words(path: Path) -> set[str]:
    """A space-separated interface file (cgroup.subtree_control) as a set."""
    return set(path.read_text().split())
