"""The Python client (reconciler.client) as a pilot uses it: the README's example, run for real.

The example is taken from README.md as written and run in a fresh interpreter
against a running daemon, with `WNR_STATE_DIR` naming the test's state dir.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_for
from tests.helpers import REPO, DaemonProcess, wnr, write_slot


def readme_example() -> str:
    """The Python block under "Scripting it from Python" in README.md."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Scripting it from Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_example_runs_against_a_daemon(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The README's client example applies a job, waits, reads its uid, output, and deletes it."""
    specs = tmp_path / "specs"
    write_slot(specs, "alpha")
    daemon.start()
    wait_for((state_dir / "status" / "slots" / "alpha.json").exists)
    env = {**os.environ, "WNR_STATE_DIR": str(state_dir)}
    result = subprocess.run(
        [sys.executable, "-c", readme_example()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    uid, phase = result.stdout.splitlines()[0].split()
    assert re.fullmatch(r"[0-9a-f-]{36}", uid)
    assert "Succeeded" == phase
    assert "hello from python" == result.stdout.splitlines()[1]
    assert not (specs / "job-from-python.yaml").exists()
    assert not (state_dir / "status" / "jobs" / "from-python.json").exists()
    assert 0 == daemon.terminate()


def test_apply_logs_and_delete_need_only_the_state_dir(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`apply -f`, `logs`, `delete` and `wait` find the daemon's spec dir through its record."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    daemon.start()
    wait_for((state_dir / "daemon.json").exists)
    job = tmp_path / "greet.yaml"
    job.write_text(
        "apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {name: greet}\n"
        "spec:\n  slot: s\n  command: [sh, -c, 'echo hi from $WNR_JOB']\n"
    )
    flags = ["--state-dir", state_dir]
    applied = wnr("apply", "-f", job, *flags, check=0)
    assert "job/greet created\n" == applied.stdout
    assert (specs / "greet.yaml").read_text() == job.read_text()
    wnr("wait", "job/greet", "--for=phase=Succeeded", "--timeout", "30", *flags, check=0)
    assert "hi from greet\n" == wnr("logs", "greet", *flags, check=0).stdout
    assert "job/greet deleted\n" == wnr("delete", "job", "greet", *flags, check=0).stdout
    wnr("wait", "job/greet", "--for=delete", "--timeout", "30", *flags, check=0)
    assert not (specs / "greet.yaml").exists()
    assert 0 == daemon.terminate()
