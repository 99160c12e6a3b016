"""The `wnr` command line: parses arguments, finds the node, runs one command.

    arguments  the subparsers and shared flags
    wiring     the client, reconciler and locks a command works with
    changing   validate, plan, apply (-f), delete, run, doctor, crds
    viewing    get (-w), describe, wait, top, logs

Every command is a thin shell around `Reconciler` (plan, apply, run), the
client (reconciler.client: get, describe, wait, top, logs, apply -f, delete)
or the spec loader (validate); exit codes follow DESIGN §4.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from reconciler.cli import changing, viewing
from reconciler.cli.arguments import build_parser
from reconciler.cli.wiring import leave_root
from reconciler.model.errors import ObjectError, WnrError
from reconciler.render.logrecords import LogFormat, formatter_for, writes_to_journal

COMMANDS = {
    "validate": changing.cmd_validate,
    "plan": changing.cmd_plan,
    "apply": changing.cmd_apply,
    "run": changing.cmd_run,
    "get": viewing.cmd_get,
    "describe": viewing.cmd_describe,
    "wait": viewing.cmd_wait,
    "delete": changing.cmd_delete,
    "top": viewing.cmd_top,
    "crds": changing.cmd_crds,
    "doctor": changing.cmd_doctor,
    "logs": viewing.cmd_logs,
}


def set_up_logging(args: argparse.Namespace) -> None:
    """Log to stderr as `--log-format` says; with journald's priorities when stderr is the
    journal stream systemd connected."""
    verbose = getattr(args, "verbose", False)
    handler = logging.StreamHandler(sys.stderr)
    log_format = getattr(args, "log_format", LogFormat.TEXT)
    handler.setFormatter(formatter_for(log_format, writes_to_journal(sys.stderr, os.environ)))
    logging.basicConfig(
        level=logging.INFO if verbose or args.command == "run" else logging.WARNING,
        handlers=[handler],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `wnr` and `python -m reconciler`."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "get" and args.name is None and len(extra) == 1 and extra[0][:1] != "-":
        # `wnr get jobs -o json NAME`: argparse has already given up on the optional NAME.
        args.name, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    set_up_logging(args)
    try:
        return COMMANDS[args.command](args)
    except WnrError as exc:
        print(f"wnr: error: {exc}", file=sys.stderr)
        return 1
    except ObjectError as exc:
        # A bug met while working on one object: say which, with the cause, not a traceback.
        cause = exc.__cause__
        print(f"wnr: internal error on {exc.obj}: {type(cause).__name__}: {cause}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["COMMANDS", "build_parser", "leave_root", "main"]
