"""How wnr's log lines look: text for a terminal, JSON lines for a log pipeline, and the
sd-daemon priority prefix that journald reads; part of reconciler.render.

The command line installs one of these formatters (reconciler.cli); the modules that log
attach what a line is about as `extra` fields (`object`, `reason`, `action`, `cgroup`,
...), which the JSON lines carry as keys and the text lines leave out.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

# Every attribute a plain LogRecord has: whatever else a record carries came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The journal stamps each line itself; a second time in the text would only be noise.
JOURNAL_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
# sd-daemon(3) priorities, which journald takes from a `<N>` line prefix (SyslogLevelPrefix=).
PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class LogFormat(StrEnum):
    """`--log-format`: what one log line is."""

    TEXT = "text"
    JSON = "json"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call attached with `extra=`, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC), level, logger, message, the extra
    fields, and the traceback as one string, so a multi-line error stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class JournalPrefix(logging.Formatter):
    """Puts `<priority>` before every line another formatter makes: journald then files
    each line (a traceback's too) at the record's level instead of stdout's info."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        text = self.inner.format(record)
        return "\n".join(prefix + line for line in text.split("\n"))


def priority(level: int) -> int:
    """The syslog priority of a logging level (levels between two take the more severe)."""
    for threshold in sorted(PRIORITIES, reverse=True):
        if level >= threshold:
            return PRIORITIES[threshold]
    return PRIORITIES[logging.DEBUG]


def writes_to_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether `stream` is the journal stream systemd connected (systemd.exec(5):
    JOURNAL_STREAM holds the device and inode of that stream), not a redirect of it."""
    expected = environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def formatter_for(log_format: LogFormat, journal: bool) -> logging.Formatter:
    """The formatter of one `--log-format`, with journald's priority prefix when `journal`."""
    if log_format is LogFormat.JSON:
        inner: logging.Formatter = JsonFormatter()
    else:
        inner = logging.Formatter(JOURNAL_TEXT_FORMAT if journal else TEXT_FORMAT)
    return JournalPrefix(inner) if journal else inner
