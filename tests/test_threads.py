"""Thread-pool sizes from the job's CPUs (OMP_NUM_THREADS and friends), end to end and pure.

A real daemon runs real payloads that print their environment; the planner's
choice (the job's request, else its slot's limit, else none) is checked on
plain data.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.plan.launch import THREAD_VARIABLES, thread_environment
from tests.builders import job, slot
from tests.conftest import wait_for
from tests.helpers import DaemonProcess, record

SPECS = """\
apiVersion: wnr.dev/v1alpha1
kind: Slot
metadata: {name: s}
spec:
  resources: {cpus: 4, memory: 1Gi}
  terminationGracePeriodSeconds: 1
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: two}
spec:
  slot: s
  command: [sh, -c, 'echo "$OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $ROOT_MAX_THREADS"']
  resources: {cpus: 2}
---
apiVersion: wnr.dev/v1alpha1
kind: Job
metadata: {name: own}
spec:
  slot: s
  command: [sh, -c, 'echo "$OMP_NUM_THREADS $MKL_NUM_THREADS"']
  resources: {cpus: 2}
  env: {OMP_NUM_THREADS: "7"}
"""


def output(state: Path, name: str) -> str:
    """The payload's output of attempt 1."""
    return (state / "jobs" / name / "attempt-1.log").read_text()


def test_a_two_cpu_job_sees_two_threads_and_its_own_setting_wins(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A 2-CPU job sees OMP_NUM_THREADS=2 (and the rest of the family); one that sets it keeps 7."""
    (tmp_path / "specs" / "specs.yaml").write_text(SPECS)
    daemon.start()
    wait_for(lambda: all(record(state_dir, n).get("phase") == "exited" for n in ("two", "own")))
    assert "2 2 2\n" == output(state_dir, "two")
    assert "7 2\n" == output(state_dir, "own")
    assert 0 == daemon.terminate()


def test_threads_follow_the_request_else_the_slot_else_stay_unset() -> None:
    """Whole CPUs of the request (at least 1), else the slot's limit, else nothing."""
    limited = slot("a", resources={"cpus": 8})
    assert dict.fromkeys(THREAD_VARIABLES, "3") == thread_environment(
        limited, job("x", "a", resources={"cpus": "3500m"})
    )
    assert dict.fromkeys(THREAD_VARIABLES, "1") == thread_environment(
        limited, job("x", "a", resources={"cpus": "500m"})
    )
    assert dict.fromkeys(THREAD_VARIABLES, "8") == thread_environment(limited, job("x", "a"))
    assert {} == thread_environment(slot("b"), job("x", "b"))
