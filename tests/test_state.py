"""The state dir's reads: records kept between passes only while their directory is unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reconciler.host.atomicfile import write_json
from reconciler.host.statedir import StateDir
from reconciler.model.records import StopRecord


def _settle(directory: Path, seconds_ago: float = 10.0) -> int:
    """Backdate a directory's mtime, as if its last change was `seconds_ago`; returns it."""
    stamp = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(directory, ns=(stamp, stamp))
    return stamp


def test_a_settled_directory_that_changes_is_read_again(state_dir: Path) -> None:
    """A record replaced after its directory settled is seen by the next read_all."""
    state = StateDir(state_dir)
    state.begin_attempt("a", 1, 100.0)
    _settle(state.job_dir("a"))
    assert "starting" == state.read_all()["a"].last.phase  # type: ignore[union-attr]
    write_json(str(state.attempt_path("a", 1)), {"phase": "running", "spawnedAt": 100.0})
    assert "running" == state.read_all()["a"].last.phase  # type: ignore[union-attr]


def test_a_recently_changed_directory_is_never_served_from_memory(state_dir: Path) -> None:
    """Two changes within one timestamp tick leave the mtime equal; a fresh directory is re-read."""
    state = StateDir(state_dir)
    state.begin_attempt("a", 1, 100.0)
    stamp = _settle(state.job_dir("a"), seconds_ago=0.0)
    assert "starting" == state.read_all()["a"].last.phase  # type: ignore[union-attr]
    write_json(str(state.attempt_path("a", 1)), {"phase": "exited", "spawnedAt": 100.0})
    os.utime(state.job_dir("a"), ns=(stamp, stamp))
    assert "exited" == state.read_all()["a"].last.phase  # type: ignore[union-attr]


def test_a_forgotten_job_leaves_no_records(state_dir: Path) -> None:
    """A job directory removed between passes is gone from the next read_all."""
    state = StateDir(state_dir)
    state.begin_attempt("a", 1, 100.0)
    state.begin_attempt("b", 1, 100.0)
    _settle(state.job_dir("a"))
    assert ["a", "b"] == sorted(state.read_all())
    state.forget("a")
    assert ["b"] == sorted(state.read_all())


def test_a_stop_record_keeps_reason_and_message_apart_and_reads_the_old_form() -> None:
    """stop.json holds the one-word reason and the message separately; one written as "Reason: message" still reads."""
    record = StopRecord(1.0, 30.0, "OOMKilled", "PSS+swap 80Mi over memory 64Mi")
    data = record.to_json()
    assert ("OOMKilled", "PSS+swap 80Mi over memory 64Mi") == (data["reason"], data["message"])
    assert record == StopRecord.from_json(data)
    old = {
        "requestedAt": 1.0,
        "graceSeconds": 30.0,
        "reason": "OOMKilled: PSS+swap 80Mi over memory 64Mi",
    }
    assert record == StopRecord.from_json(old)
    assert StopRecord(1.0, 30.0, "Deleted") == StopRecord.from_json({**old, "reason": "Deleted"})
