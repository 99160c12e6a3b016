"""The pilot side of test_slurm.py: its work dir, specs and batch script, and wnr as the job user.

The batch script waits until its step's `user` cgroup is delegated, then runs `wnr run
--root auto` with a Slot (400Mi, pids 64, one CPU), a hog (300 MB under 128Mi, held at a
gate) and a sleeper. Runs INSIDE the VM, with slurmlab's cluster.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.vm.guest.harness import REPO, WNR_TIMEOUT
from tests.vm.guest.slurmlab import HOME, UID

MiB = 1024 * 1024
# The job user cannot use the venv's interpreter (a pyenv build under root's 0700 home):
# Debian's python3 (also 3.11, so the same .pyc files) imports wnr from the checkout
# and its dependencies from the venv's site-packages, which every user may read.
PILOT_PYTHONPATH = f"{REPO}:{site.getsitepackages()[0]}"
PILOT_SCRIPT = """\
#!/bin/bash
# The pilot: waits until its step's user cgroup is delegated, then runs wnr there.
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
user=/sys/fs/cgroup${{own%/task_*}}
for _ in $(seq 300); do [ -w "$user/cgroup.procs" ] && break; sleep 0.2; done
echo "pilot in $own; $user/cgroup.procs writable: $([ -w "$user/cgroup.procs" ] && echo yes)"
export PYTHONPATH={pythonpath}
exec /usr/bin/python3 -m reconciler run --root auto --specs {work}/specs --state-dir {work}/state
"""
SLOT = (
    "kind: Slot\nmetadata: {name: pilot}\nspec: {resources: {memory: 400Mi, pids: 64, cpus: 1}}\n"
)
HOG = """\
kind: Job
metadata: {{name: hog}}
spec:
  slot: pilot
  command: [sh, -c, "while [ ! -e {gate} ]; do sleep 0.5; done; head -c 300M /dev/zero | tail"]
  resources: {{memory: 128Mi}}
"""
# The delegated cgroup and its three files, as suffixes of its path.
FILES = ("", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads")
SLEEPER = 'kind: Job\nmetadata: {name: sleeper}\nspec: {slot: pilot, command: [sleep, "3600"]}\n'


@dataclass(frozen=True)
class Pilot:
    """One pilot's work dir (specs, state, gate, batch script), all owned by the job user."""

    work: Path

    @property
    def gate(self) -> Path:
        """The file whose creation lets the hog allocate."""
        return self.work / "go"

    def wnr_get(self, resource: str, root: Path) -> list[dict[str, Any]]:
        """`wnr get RESOURCE -o json` run as the job user (outside the job, so with --root): the items."""
        result = subprocess.run(
            ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
             "/usr/bin/python3", "-m", "reconciler", "get", resource, "-o", "json",
             "--specs", str(self.work / "specs"), "--state-dir", str(self.work / "state"),
             "--root", str(root)],
            capture_output=True, text=True, timeout=WNR_TIMEOUT, check=False, cwd=REPO,
            env={**os.environ, "PYTHONPATH": PILOT_PYTHONPATH},
        )  # fmt: skip
        assert 0 == result.returncode, result.stdout + result.stderr
        items = json.loads(result.stdout)["items"]
        assert isinstance(items, list)
        return items


def make_pilot(name: str, *specs: str) -> Pilot:
    """A work dir under the user's home with the spec documents and the batch script."""
    work = HOME / name
    (work / "specs").mkdir(parents=True)
    (work / "state").mkdir()
    spec = work / "specs" / "pilot.yaml"
    spec.write_text("---\n".join(f"apiVersion: wnr.dev/v1alpha1\n{doc}" for doc in specs))
    script = work / "pilot.sh"
    script.write_text(PILOT_SCRIPT.format(pythonpath=PILOT_PYTHONPATH, work=work))
    script.chmod(0o755)
    for path in (work, work / "specs", work / "state", spec, script):
        os.chown(path, UID, UID)
    return Pilot(work)


def read(path: Path) -> str:
    """One cgroup file, stripped."""
    return path.read_text().strip()


def keyed(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file as a dict."""
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines())}


def wnr_daemon() -> int | None:
    """The PID of the pilot's `python3 -m reconciler run`, while it runs."""
    for proc in Path("/proc").iterdir():
        try:
            mine = proc.name.isdigit() and proc.stat().st_uid == UID
            if mine and b"reconciler\0run" in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except FileNotFoundError:
            continue
    return None
