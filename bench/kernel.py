"""`python -m bench.kernel`: the idle and no-op rows on a kernel that enforces every limit.

Issue #16, item 4. Runs INSIDE the real-kernel VM (tests/vm/run, `make bench-vm`),
where /sys/fs/cgroup is a pure cgroup2 mount with cpu, memory and pids: it refuses
to run anywhere else, before it creates anything, so it never touches a host's
hybrid tree. There the kernel enforces each job's cpu.max, memory.max and pids.max,
so wnr has no usage sample to take for a limit the kernel lacks. The pieces are the
host benchmark's (bench.common, bench.wnr, bench.coldstart, bench.steady,
bench.passes, bench.supervisor), composed here with timeouts sized for TCG:

- idle CPU: a fleet of N jobs (default 256) and supervisord with the same N
  programs, idle over the same window (`bench.steady.idle_cpu`); goal: wnr <= 1x.
- no-op pass: with the daemon stopped, `Reconciler.run_pass` in-process
  (`bench.passes.measure`) against reading cgroup.procs and cpu.stat of the
  same job cgroups (`bench.passes.read_cgroups`); goal: wnr <= 2x.

TCG makes absolute times meaningless (Python runs ~20x slower, one vCPU), so
the table judges ratios only; absolute values are in a column marked
informational. Like `python -m bench`, nothing is asserted: the exit status is 1
only when a row could not be measured (or 2 outside the VM).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import coldstart, passes, steady
from bench.common import BenchError, Sandbox, open_sandbox, wait_until, write
from bench.supervisor import Supervisor
from bench.wnr import SLOT, WnrDaemon, job_names, slot_yaml, write_jobs
from reconciler.observe.mounts import unified_problem

MOUNT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "memory", "pids")
# The limit files JOB_RESOURCES sets: each must hold a value, not "max", on every job.
LIMIT_FILES = ("cpu.max", "memory.max", "pids.max")
# Under TCG the daemon's start-up takes tens of seconds, and 256 jobs (or supervisord's 256
# programs) minutes.
START_TIMEOUT = 300.0
FLEET_TIMEOUT = 900.0


@dataclass(frozen=True)
class Row:
    """One judged line: wnr's value, the peer's, and the goal on wnr / peer."""

    scenario: str
    peer: str
    unit: str
    goal: float | None  # None: informational, in parentheses
    ours: float = math.nan
    theirs: float = math.nan

    @property
    def ratio(self) -> float:
        """wnr / peer (NaN when either is missing)."""
        return self.ours / self.theirs if self.theirs else math.nan

    @property
    def met(self) -> str:
        """yes / NO against the goal; empty for an informational row or a missing value."""
        if self.goal is None or not self.measured:
            return ""
        return "yes" if self.ratio <= self.goal else "NO"

    @property
    def measured(self) -> bool:
        """Whether both sides have a value."""
        return math.isfinite(self.ours) and math.isfinite(self.theirs)


def cgroup_problem() -> str | None:
    """Why /sys/fs/cgroup is not a pure cgroup2 mount with cpu, memory and pids, or None."""
    return unified_problem(MOUNT, CONTROLLERS)


def delegate(box: Sandbox) -> None:
    """Enable cpu, memory and pids below the sandbox root: wnr enables them below its own
    root, but its root only gets what its parent (the sandbox) passes down."""
    write(box.root / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))


def fleet(box: Sandbox, count: int) -> WnrDaemon:
    """A running daemon with `count` jobs running (coldstart.wnr_cold's steps, TCG timeouts)."""
    daemon = WnrDaemon(box, "kernel")
    names = job_names(count)
    try:
        daemon.start(settle=False)
        wait_until(
            "the daemon to start",
            lambda: b"wnr run:" in daemon.log.read_bytes(),
            START_TIMEOUT,
            interval=0.2,
        )
        (daemon.specs / f"slot-{SLOT}.yaml").write_text(slot_yaml(SLOT))
        write_jobs(daemon.specs, names, coldstart.PAYLOAD)
        daemon.wait_running(names, FLEET_TIMEOUT)
    except BaseException:
        daemon.teardown()
        raise
    return daemon


def unenforced(daemon: WnrDaemon, count: int) -> list[str]:
    """The job cgroups where one of LIMIT_FILES is missing or unlimited (should be none)."""
    slot = daemon.root / f"slot.{SLOT}"
    bad = []
    for name in job_names(count):
        for limit in LIMIT_FILES:
            path = slot / f"job.{name}" / limit
            value = path.read_text().split()[0] if path.exists() else "missing"
            if value in ("max", "missing"):
                bad.append(f"{name}/{limit}={value}")
    return bad


def _step(errors: list[str], what: str, action: Callable[[], object]) -> bool:
    """Run one measurement; a failure is recorded and the run goes on (as bench.run's)."""
    print(f"[bench.kernel] {what}", file=sys.stderr, flush=True)
    try:
        action()
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        errors.append(f"{what}: {exc}")
        print(f"[bench.kernel] {what} FAILED: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def measure(box: Sandbox, count: int, window: float, repeats: int) -> tuple[list[Row], list[str]]:
    """The fleet and supervisord, idle side by side; then the passes with both stopped."""
    values: dict[str, float] = {}
    errors: list[str] = []
    daemons: list[WnrDaemon] = []
    sups: list[Supervisor] = []

    def start() -> None:
        delegate(box)
        daemons.append(fleet(box, count))
        bad = unenforced(daemons[0], count)
        if bad:  # then wnr would have to sample: not the benchmark this is
            raise BenchError(f"{len(bad)} limits the kernel does not enforce: {bad[:4]}")

    def peer() -> None:
        sups.append(Supervisor(box, "kernel", count))
        sups[0].start(FLEET_TIMEOUT)  # coldstart.supervisord_cold's 60 s is too short for TCG

    def idle() -> None:
        values["idle"], values["idle_sup"] = steady.idle_cpu(daemons[0], sups[0], window)

    def in_process() -> None:
        daemons[0].stop()  # measure() wants nothing else acting on the tree
        times = passes.measure(daemons[0], job_names(count), repeats)
        values["noop"], values["sampling"] = 1e3 * times.noop_cpu, 1e3 * times.sampling_cpu
        values["noop_peer"] = 1e3 * passes.read_cgroups(daemons[0].root, repeats)

    if not _step(errors, f"wnr fleet of {count} jobs, limits enforced by the kernel", start):
        return rows(count, values), errors
    try:
        try:
            if _step(errors, f"supervisord starting {count} programs", peer):
                _step(errors, f"idle CPU over {window:g} s", idle)
        finally:
            for sup in sups:  # also one that did not start all of its programs
                sup.stop()
        _step(errors, f"passes in-process, {repeats} each", in_process)
    finally:
        daemons[0].teardown()
    return rows(count, values), errors


def rows(count: int, values: dict[str, float]) -> list[Row]:
    """The table's rows from the measured values (NaN where a step failed)."""

    def get(key: str) -> float:
        return values.get(key, math.nan)

    return [
        Row(f"idle daemon CPU, {count} jobs", "supervisord", "% core", 1.0,
            get("idle"), get("idle_sup")),
        Row(f"no-op pass, {count} jobs (CPU)", "read procs+cpu.stat", "ms", 2.0,
            get("noop"), get("noop_peer")),
        Row("  (pass taking usage samples, CPU)", "no-op pass", "ms", None,
            get("sampling"), get("noop")),
    ]  # fmt: skip


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def table(rows: list[Row], count: int, window: float, repeats: int) -> str:
    """The Markdown table: ratios judged, absolute values informational."""
    lines = [
        f"kernel-enforced benchmark: kernel {os.uname().release}, {count} jobs, "
        f"idle window {window:g} s, {repeats} passes of each kind",
        "(under TCG only the ratios mean anything: the absolute values are informational)",
        "",
        "| scenario | peer | wnr / peer | goal | goal met | (wnr, peer: informational) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.measured else "-"
        goal = f"<= {row.goal:g}x" if row.goal is not None else "-"
        absolute = f"({_num(row.ours)}, {_num(row.theirs)} {row.unit})"
        lines.append(f"| {row.scenario} | {row.peer} | {ratio} | {goal} | {row.met} | {absolute} |")
    return "\n".join(lines)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _row_json(row: Row) -> dict[str, object]:
    """A row with its ratio and verdict; NaN as null (JSON has no NaN)."""
    data: dict[str, object] = {
        k: _finite(v) if isinstance(v, float) else v for k, v in asdict(row).items()
    }
    return {**data, "ratio": _finite(row.ratio), "met": row.met}


def save(path: Path, rows: list[Row], errors: list[str], args: argparse.Namespace) -> None:
    """The rows (NaN as null), the sizes, the kernel and the errors as JSON."""

    data = {
        "kernel": os.uname().release,
        "jobs": args.jobs,
        "window": args.window,
        "repeats": args.repeats,
        "rows": [_row_json(row) for row in rows],
        "errors": errors,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.kernel", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=256, help="running jobs (default 256)")
    parser.add_argument("--window", type=float, default=60.0, help="idle window, s (default 60)")
    parser.add_argument("--repeats", type=int, default=10, help="passes of each kind (default 10)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the rows; 0 when each was measured, 1 when one was not, 2 outside the VM."""
    args = parse_args(argv)
    problem = cgroup_problem()
    if problem is not None:  # before anything is created: never on a host's hybrid tree
        print(f"bench.kernel: runs only inside the VM tier (make bench-vm): {problem}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"bench.kernel: {args.jobs} jobs, idle window {args.window:g} s", file=sys.stderr)
    box = open_sandbox("bench.kernel")
    if box is None:
        return 1
    try:
        measured, errors = measure(box, args.jobs, args.window, args.repeats)
    except BenchError as exc:  # a teardown that failed (the sandbox's close still runs)
        print(f"bench.kernel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.kernel: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        box.close()
    print(table(measured, args.jobs, args.window, args.repeats))
    if args.json is not None:
        save(args.json, measured, errors, args)
    for error in errors:
        print(f"bench.kernel: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
