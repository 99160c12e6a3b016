"""Agents on real processes via the daemon: crash-looping agents back off, healthy ones stay up, drain stops them."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

from tests.conftest import wait_for
from tests.helpers import DaemonProcess, procs

SPECS = """\
apiVersion: wnr.dev/v1alpha1
kind: Node
metadata: {name: node}
spec:
  policies:
    agentBackoff: {initialSeconds: 1, maxSeconds: 4, resetAfterSeconds: 600}
---
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: crashy}
spec:
  terminationGracePeriodSeconds: 1
  agents:
    replicas: 1
    command: [sh, -c, "date +%s.%N >> starts; exit 1"]
---
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: steady}
spec:
  terminationGracePeriodSeconds: 1
  drainGracePeriodSeconds: 0
  agents:
    replicas: 2
    command: [sleep, "600"]
"""


def starts(state: Path) -> list[float]:
    """The times the crashing agent's payload started, as it wrote them itself."""
    path = state / "agents" / "crashy" / "0" / "work" / "starts"
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def test_crashing_agent_backs_off_and_running_agents_stay_up(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A crash-looping agent restarts with doubling delays (1, 2, 4 s) while healthy replicas keep their PIDs; draining stops them."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(SPECS)
    daemon = DaemonProcess(specs, cgroup_root, state_dir, tmp_path / "daemon.log")
    daemon.start()
    try:
        steady = [cgroup_root / "slot.steady" / f"agent.{n}" for n in (0, 1)]
        wait_for(lambda: all(len(procs(a)) == 2 for a in steady))
        pids = [procs(a) for a in steady]
        wait_for(lambda: len(starts(state_dir)) >= 4, timeout=20)
        times = starts(state_dir)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert [1, 2, 4] == [round(g) for g in gaps[:3]], gaps
        run = json.loads((state_dir / "agents" / "crashy" / "0" / "run.json").read_text())
        assert run["restarts"] >= 3
        assert pids == [procs(a) for a in steady]
        drained = SPECS.replace(
            "  drainGracePeriodSeconds: 0\n", "  drainGracePeriodSeconds: 0\n  state: Draining\n"
        )
        (specs / "specs.yaml").write_text(textwrap.dedent(drained))
        records = state_dir / "agents" / "steady"
        # The pass that removes an agent's cgroup forgets its records right after: wait for both.
        wait_for(lambda: not any(a.exists() for a in steady), timeout=15)
        wait_for(lambda: not records.exists() or not any(records.iterdir()), timeout=5)
    finally:
        daemon.kill()
