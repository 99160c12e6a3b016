"""`--log-format json` and journald's priorities, from a real daemon running real jobs.

The JSON lines are read back as a log pipeline would (one object per line), and
matched against the event log the same daemon wrote; the journal prefix is checked
with JOURNAL_STREAM naming the daemon's real stderr, as systemd sets it (the VM
tier's real-systemd boot checks what journald makes of it).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciler.render.logrecords import JsonFormatter, priority, writes_to_journal
from tests.conftest import wait_for
from tests.helpers import REPO, DaemonProcess, job_text, write_job, write_slot


def run_daemon(daemon: DaemonProcess, *flags: str, env: dict[str, str] | None = None) -> None:
    """Start `daemon` with extra flags, its stderr (and stdout) into its log file."""
    daemon.args += flags
    with open(daemon.log, "ab") as out:
        daemon.proc = subprocess.Popen(
            daemon.args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env
        )


def events(state: Path) -> list[dict[str, Any]]:
    """The daemon's event log."""
    path = state / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def finished(state: Path) -> bool:
    """Both jobs have ended, as the event log says."""
    reasons = {(e["object"], e["reason"]) for e in events(state)}
    return {("Job/ok", "Completed"), ("Job/bad", "Error")} <= reasons


def run_until_both_ended(
    daemon: DaemonProcess, state: Path, *flags: str, env: dict[str, str] | None = None
) -> None:
    """A slot with a job that succeeds and one that fails, under a daemon with `flags`,
    SIGTERMed once both have ended."""
    write_slot(daemon.specs, "s")
    write_job(daemon.specs, "ok", "s", ["true"])
    write_job(daemon.specs, "bad", "s", ["sh", "-c", "exit 3"])
    run_daemon(daemon, *flags, env=env)
    wait_for(lambda: finished(state), timeout=20)
    assert 0 == daemon.terminate()


def test_json_lines_parse_one_per_event_with_their_fields(
    daemon: DaemonProcess, state_dir: Path
) -> None:
    """Every line is one JSON object; each event, action and spec error has its fields."""
    broken = job_text("x", "s", ["true"]) + "  restartPolicy: Sometimes\n"
    (daemon.specs / "broken.yaml").write_text(broken)
    run_until_both_ended(daemon, state_dir, "--log-format", "json")
    lines = [json.loads(line) for line in daemon.log.read_text().splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    logged = [
        (line["object"], line["type"], line["reason"])
        for line in lines
        if line["logger"] == "wnr.events"
    ]
    expected = [(e["object"], e["type"], e["reason"]) for e in events(state_dir)]
    assert expected == logged
    failed = next(line for line in lines if line.get("reason") == "Error")
    assert ("warning", "Job/bad") == (failed["level"], failed["object"])
    start = next(line for line in lines if line.get("action") == "start-job")
    assert str(daemon.args[daemon.args.index("--root") + 1]) + "/slot.s/job.ok" in {
        line.get("cgroup") for line in lines if line.get("object") == "Job/ok"
    }
    assert "info" == start["level"]
    error = next(line for line in lines if line.get("file", "").endswith("broken.yaml"))
    where = (error["level"], error["line"], error["object"], error["field"])
    assert ("error", 7, "Job/x", "spec.restartPolicy") == where
    # Not always the last line: a pass that SIGTERM interrupted still logs what it did.
    assert any("stopping the daemon" in line["message"] for line in lines)


def test_journal_stream_lines_carry_syslog_priorities(
    daemon: DaemonProcess, state_dir: Path
) -> None:
    """With JOURNAL_STREAM naming its stderr, each line starts with the record's priority."""
    daemon.log.touch()
    st = os.stat(daemon.log)
    run_until_both_ended(
        daemon, state_dir, env=dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    )
    lines = daemon.log.read_text().splitlines()
    assert all(line[:3] in ("<6>", "<4>", "<3>") for line in lines), lines
    failed = next(line for line in lines if "Job/bad Warning Error" in line)
    assert failed.startswith("<4>WARNING wnr.events: ")
    assert any(line.startswith("<6>INFO wnr.apply: start-job") for line in lines)


def test_only_the_stream_journal_stream_names_is_the_journal(tmp_path: Path) -> None:
    """stderr redirected away from the journal stream systemd connected gets no prefix."""
    journal, other = tmp_path / "journal", tmp_path / "other"
    journal.touch()
    st = os.stat(journal)
    environ = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    with journal.open("w") as to_journal, other.open("w") as elsewhere:
        expected = [True, False, False]
        actual = [
            writes_to_journal(to_journal, environ),
            writes_to_journal(elsewhere, environ),
            writes_to_journal(to_journal, {}),
        ]
    assert expected == actual


def test_a_traceback_stays_inside_its_one_json_line() -> None:
    """An exception's traceback is a field of the line, not lines of its own."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("wnr.test").makeRecord(
            "wnr.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert 1 == len(line.splitlines())
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_levels_map_to_syslog_priorities() -> None:
    """debug 7, info 6, warning 4, error 3, critical 2; a level between two takes the worse."""
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, 35, logging.ERROR, logging.CRITICAL]
    assert [7, 6, 4, 4, 3, 2] == [priority(level) for level in levels]
