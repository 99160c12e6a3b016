"""`wnr logs`: a job's output as the wrapper copied and rotated it, read and followed.

End to end against a real daemon on the real cgroup2 mount (the payload's lines through
the real wrapper into the state dir, printed by the real CLI), plus reading and following
log files that the test writes and rotates itself, the way the wrapper does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

from reconciler.host.joblogs import follow_logs, log_files, read_logs, rotation_note, tail
from reconciler.host.statedir import StateDir
from tests.conftest import wait_for
from tests.helpers import REPO, DaemonProcess, job_document, record, wnr

NOTE = rotation_note(Path("attempt-1.log"))


def node_and_slot(max_size: str = "10Mi", max_files: int = 3) -> str:
    """A Node bounding logs to `max_files` files of `max_size`, and slot s (1 s grace)."""
    return textwrap.dedent(
        f"""\
        apiVersion: wnr.dev/v1alpha1
        kind: Node
        metadata: {{name: node}}
        spec:
          policies:
            logs: {{maxSize: {max_size}, maxFiles: {max_files}}}
        ---
        apiVersion: wnr.dev/v1alpha1
        kind: Slot
        metadata: {{name: s}}
        spec:
          terminationGracePeriodSeconds: 1
        """
    )


def start(daemon: DaemonProcess, tmp_path: Path, text: str) -> None:
    """Write the documents into the daemon's spec dir and start it."""
    (tmp_path / "specs" / "specs.yaml").write_text(text)
    daemon.start()


def logs(state: Path, *args: str | Path, check: int = 0) -> bytes:
    """`wnr logs ARGS` with this test's state dir; its stdout as bytes."""
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "logs", "--state-dir", str(state), *map(str, args)],
        capture_output=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert check == result.returncode, result.stderr.decode()
    return result.stdout


def exited(state: Path, job: str, attempt: int = 1) -> Callable[[], bool]:
    """Whether the attempt's record says it exited."""

    def check() -> bool:
        path = state / "jobs" / job / f"attempt-{attempt}.json"
        return path.exists() and record(state, job, attempt).get("phase") == "exited"

    return check


def test_logs_prints_stdout_and_stderr_and_tail_the_last_lines(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A job's stdout and stderr lines are printed in order, and --tail 2 prints the last two."""
    script = "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; printf 'caf\\351\\n'"
    start(daemon, tmp_path, node_and_slot() + job_document("hello", ["sh", "-c", script], ""))
    wait_for(exited(state_dir, "hello"), timeout=30)
    assert b"out-1\nerr-1\nout-2\nerr-2\ncaf\xe9\n" == logs(state_dir, "hello")
    assert b"err-2\ncaf\xe9\n" == logs(state_dir, "hello", "--tail", "2")
    assert b"" == logs(state_dir, "hello", "--tail", "0")


def test_attempt_selects_among_retried_starts_and_errors_name_the_attempts(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """With two failed starts, the newest is the default, --attempt 1 the first, and a missing
    attempt, a missing job or an unstarted job is one line naming what exists."""
    broken = job_document("broken", ["/nonexistent/program"], "maxStartAttempts: 2\n")
    waiting = job_document("waiting", ["true"], "architecture: s390x\n")  # never fits
    start(daemon, tmp_path, node_and_slot() + broken + waiting)
    wait_for((state_dir / "jobs" / "broken" / "attempt-2.log").exists, timeout=60)
    wait_for(lambda: record(state_dir, "broken", 2).get("phase") == "failed-start", timeout=60)
    first = (state_dir / "jobs" / "broken" / "attempt-1.log").read_bytes()
    second = (state_dir / "jobs" / "broken" / "attempt-2.log").read_bytes()
    assert b"/nonexistent/program" in second
    assert second == logs(state_dir, "broken")
    assert first == logs(state_dir, "broken", "--attempt", "1")
    flags = ["--specs", tmp_path / "specs"]
    missing = wnr("logs", "broken", "--attempt", "3", "--state-dir", state_dir, *flags, check=1)
    assert f"wnr: error: job broken has no attempt 3 (attempts: 1, 2; state dir {state_dir})\n" == (
        missing.stderr
    )
    unknown = wnr("logs", "nosuch", "--state-dir", state_dir, *flags, check=1)
    assert "job nosuch is unknown" in unknown.stderr
    assert str(state_dir) in unknown.stderr
    unstarted = wnr("logs", "waiting", "--state-dir", state_dir, *flags, check=1)
    assert f"job waiting has not started yet (no attempt in state dir {state_dir})" in (
        unstarted.stderr
    )


# Shell that sets $pad to the 88 x's of each line `lines` makes.
PAD = "pad=$(printf '%088d' 0 | tr 0 x); "


def lines(count: int, width: int) -> bytes:
    """`count` numbered lines of `width` bytes each, as the rotation payloads print them."""
    return b"".join(b"line-%05d-" % i + b"x" * (width - 12) + b"\n" for i in range(1, count + 1))


def test_rotated_logs_print_the_newest_files_in_order_without_duplication(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Under maxSize 4Ki and maxFiles 3, a payload writing 40 KiB leaves its last ~12 KiB,
    printed as one contiguous suffix of what it wrote (the wrapper's join notes left out)."""
    written = lines(400, 100)
    script = PAD + "for i in $(seq 1 400); do printf 'line-%05d-%s\\n' $i $pad; done"
    chatty = job_document("chatty", ["sh", "-c", script], "")
    start(daemon, tmp_path, node_and_slot("4Ki", 3) + chatty)
    wait_for(exited(state_dir, "chatty"), timeout=30)
    files = log_files(StateDir(state_dir), "chatty", 1)
    assert ["attempt-1.log.2", "attempt-1.log.1", "attempt-1.log"] == [p.name for p in files]
    printed = logs(state_dir, "chatty")
    assert printed.startswith(NOTE)  # the oldest kept file still says output was rotated away
    body = printed.removeprefix(NOTE)
    assert NOTE not in body
    assert written.endswith(body)
    assert 2 * (4096 - len(NOTE)) <= len(body) <= 3 * 4096
    assert b"".join(written.splitlines(keepends=True)[-3:]) == logs(
        state_dir, "chatty", "--tail", "3"
    )


def test_follow_prints_every_line_across_rotations_and_ends_with_the_job(
    daemon: DaemonProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`wnr logs -f` on a job writing slowly through several rotations prints every line
    exactly once, in order, and exits 0 by itself once the job has ended."""
    script = (
        PAD
        + "sleep 1; for i in $(seq 1 120); do printf 'line-%05d-%s\\n' $i $pad; sleep 0.02; done"
    )
    slow = job_document("slow", ["sh", "-c", script], "")
    start(daemon, tmp_path, node_and_slot("4Ki", 2) + slow)
    wait_for((state_dir / "jobs" / "slow" / "attempt-1.json").exists, timeout=30)
    follower = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "logs", "-f", "slow", "--state-dir", str(state_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert (0, b"") == (follower.returncode, err)
    assert lines(120, 100) == out
    assert "exited" == record(state_dir, "slow").get("phase")
    assert (state_dir / "jobs" / "slow" / "attempt-1.log.1").exists()


# Reading and following files the test writes, rotating them as the wrapper does.


def attempt_dir(tmp_path: Path, phase: str = "exited") -> Path:
    """A state dir with job j's attempt 1 recorded in `phase`; returns the job's directory."""
    directory = tmp_path / "state" / "jobs" / "j"
    directory.mkdir(parents=True)
    set_phase(directory, phase)
    return directory


def set_phase(directory: Path, phase: str) -> None:
    """Record attempt 1 in `phase`."""
    (directory / "attempt-1.json").write_text(json.dumps({"phase": phase, "spawnedAt": 1.0}))


def rotate(directory: Path, max_files: int) -> None:
    """Rotate attempt-1.log as the wrapper's log_rotate does, and start the new one."""
    log = directory / "attempt-1.log"
    for i in range(max_files - 1, 0, -1):
        source = log if i == 1 else directory / f"attempt-1.log.{i - 1}"
        if source.exists():
            source.rename(directory / f"attempt-1.log.{i}")
    log.write_bytes(NOTE)


def append(directory: Path, data: bytes) -> None:
    """Append to the newest file, as the wrapper copies output."""
    with open(directory / "attempt-1.log", "ab") as out:
        out.write(data)


def test_tail_reads_across_files_and_counts_an_unterminated_last_line(tmp_path: Path) -> None:
    """tail takes lines across rotated files (notes at joins left out) and counts a last line
    without a newline, including lines longer than its read block."""
    directory = attempt_dir(tmp_path)
    long_line = b"y" * 200_000 + b"\n"
    append(directory, b"a\nb\n" + long_line)
    rotate(directory, 3)
    append(directory, b"c\nd")
    files = log_files(StateDir(tmp_path / "state"), "j", 1)
    assert [directory / "attempt-1.log.1", directory / "attempt-1.log"] == files
    assert b"d" == tail(files, 1)
    assert b"c\nd" == tail(files, 2)
    assert long_line + b"c\nd" == tail(files, 3)
    assert b"b\n" + long_line + b"c\nd" == tail(files, 4)
    assert b"a\nb\n" + long_line + b"c\nd" == tail(files, 100)
    assert b"" == tail(files, 0)
    append(directory, b"\n")
    assert b"d\n" == tail(files, 1)


def test_read_logs_chooses_the_newest_attempt_with_a_log(tmp_path: Path) -> None:
    """read_logs reads the newest attempt that has a log unless told another."""
    directory = attempt_dir(tmp_path)
    append(directory, b"first\n")
    (directory / "attempt-2.json").write_text(json.dumps({"phase": "exited", "spawnedAt": 2.0}))
    (directory / "attempt-2.log").write_bytes(b"second\n")
    (directory / "attempt-3.json").write_text(json.dumps({"phase": "starting", "spawnedAt": 3.0}))
    assert b"second\n" == read_logs(tmp_path / "state", "j")
    assert b"first\n" == read_logs(tmp_path / "state", "j", attempt=1)


def scripted(directory: Path, steps: list[Callable[[], None]]) -> Callable[[float], None]:
    """A `sleep` for the follower that, instead of waiting, does the writer's next step."""
    pending: Iterator[Callable[[], None]] = iter(steps)

    def sleep(_seconds: float) -> None:
        next(pending, lambda: set_phase(directory, "exited"))()

    return sleep


def test_follow_survives_rotations_between_polls_and_ends_after_the_last_bytes(
    tmp_path: Path,
) -> None:
    """A follower yields every byte once across a rotation, two rotations within one poll and
    the drop of the file it held, then ends after the attempt exited and all is read."""
    directory = attempt_dir(tmp_path, "running")
    append(directory, b"one\n")
    steps = [
        lambda: append(directory, b"two\n"),
        lambda: (append(directory, b"three\n"), rotate(directory, 3), append(directory, b"four\n")),
        lambda: (rotate(directory, 3), append(directory, b"five\n"), rotate(directory, 3)),
        lambda: append(directory, b"six\n"),
        lambda: (rotate(directory, 3), rotate(directory, 3), rotate(directory, 3)),
        lambda: (append(directory, b"seven\n"), set_phase(directory, "exited")),
    ]
    chunks = follow_logs(tmp_path / "state", "j", sleep=scripted(directory, steps), interval=1)
    expected = b"one\ntwo\nthree\nfour\nfive\nsix\n" + NOTE + b"seven\n"
    assert expected == b"".join(chunks)


def test_follow_waits_for_a_half_written_note_and_starts_from_the_tail(tmp_path: Path) -> None:
    """With --tail 1 a follower starts at the last line; a new file whose rotation note is
    only half written is waited for, and the note is left out once whole."""
    directory = attempt_dir(tmp_path, "starting")
    append(directory, b"old\nlast\n")
    log = directory / "attempt-1.log"

    def half_rotate() -> None:
        """Rename the log away and start the next with only part of the note, as a reader
        could catch the wrapper between its rename and its note's write."""
        log.rename(directory / "attempt-1.log.1")
        log.write_bytes(NOTE[:10])

    steps = [half_rotate, lambda: append(directory, NOTE[10:] + b"new\n")]
    chunks = follow_logs(
        tmp_path / "state", "j", tail=1, sleep=scripted(directory, steps), interval=1
    )
    assert b"last\nnew\n" == b"".join(chunks)
