"""The commands that show the node: get (-w), describe, wait, top, logs; part of reconciler.cli.

Each reads through reconciler.client (what the daemon published, or a dry
pass) and prints through reconciler.inspection; none changes anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from reconciler.cli.arguments import RESOURCES
from reconciler.cli.wiring import client_of
from reconciler.client import WaitTimeoutError
from reconciler.host.joblogs import LogsError
from reconciler.inspection import run_describe, run_get, show_top, watch_get
from reconciler.model.errors import WnrError


def cmd_get(args: argparse.Namespace) -> int:
    """The published slots or jobs (a dry pass's, with no daemon) as a table, JSON or YAML;
    with -w, a row again on each change."""
    client = client_of(args)
    resource = RESOURCES[args.resource]
    if args.watch:
        if args.output not in ("text", "wide"):
            raise WnrError("-w prints tables: use -o wide or no -o")
        deadline = time.monotonic() + args.timeout if args.timeout > 0 else None

        def until() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        return watch_get(client, resource, args.name, args.output == "wide", until)
    return run_get(client.snapshot(), resource, args.name, args.output)


def cmd_describe(args: argparse.Namespace) -> int:
    """One published object's spec, status, conditions and recent events."""
    snapshot = client_of(args).snapshot()
    return run_describe(snapshot, RESOURCES[args.resource], args.name, args.events)


def cmd_wait(args: argparse.Namespace) -> int:
    """Wait until an object meets `--for` (exit 0), or the timeout passes (exit 1)."""
    kind, _, name = args.target.partition("/")
    if kind not in RESOURCES or not name:
        raise WnrError(f"invalid target {args.target!r}: expected job/NAME or slot/NAME")
    client = client_of(args)
    try:
        client.wait(kind, name, args.wait_for, args.timeout)
    except WaitTimeoutError as exc:
        print(f"wnr: {exc}", file=sys.stderr)
        return 1
    print(f"{kind.removesuffix('s')}/{name} condition met")
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    """What each slot and running job uses now, beside the published statuses."""
    if args.interval < 0:
        raise WnrError(f"--interval must not be negative, not {args.interval:g}")
    wanted = [RESOURCES[args.resource]] if args.resource else ["slots", "jobs"]
    return show_top(client_of(args).snapshot(), wanted, args.sort_by, args.interval)


def cmd_logs(args: argparse.Namespace) -> int:
    """A job's payload output, raw bytes to stdout; with -f until the attempt ends."""
    chunks = client_of(args).logs(args.job, args.attempt, args.tail, follow=args.follow)
    out = sys.stdout.buffer
    try:
        for chunk in chunks:
            out.write(chunk)
            if args.follow:
                out.flush()
        out.flush()
    except BrokenPipeError:
        # `wnr logs JOB | head`: the reader has all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:
        raise LogsError(f"job {args.job}: cannot read its log: {exc}") from exc
    return 0
