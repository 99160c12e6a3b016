"""The `wnr` command line's arguments: one subparser per command, flags shared by most.

Part of reconciler.cli; `build_parser` is all the other modules use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reconciler.client import DEFAULT_SPECS
from reconciler.observe.quiet import RELIST_SECONDS
from reconciler.render.logrecords import LogFormat
from reconciler.top import SORT_KEYS

# Commands that only look: a dry pass, and not even a directory is created.
READ_ONLY = frozenset({"plan", "get", "describe", "wait", "top"})
# `wnr get job` and `wnr get jobs` (kubectl accepts both).
RESOURCES = {"job": "jobs", "jobs": "jobs", "slot": "slots", "slots": "slots"}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--specs",
        default=None,
        help=f"spec directory (default: the daemon's, from the state dir, else {DEFAULT_SPECS})",
    )
    parser.add_argument(
        "--root",
        default=None,
        help="cgroup root (default: the daemon's, else the Node's cgroupRoot, else auto)",
    )
    parser.add_argument(
        "--state-dir", default=None, help="state directory (default /var/lib/wnr for root)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every action")
    parser.add_argument(
        "--log-format",
        type=LogFormat,
        choices=list(LogFormat),
        default=LogFormat.TEXT,
        help="text (default) or json: one JSON object per line, with the event's fields",
    )
    parser.add_argument(
        "--allow-untrusted-specs",
        action="store_true",
        help="accept spec files that users other than wnr's own or root can write",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="wnr", description="Reconcile worker-node slots and jobs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check spec files or directories")
    validate.add_argument("paths", nargs="+", type=Path)
    validate.add_argument(
        "--allow-untrusted-specs",
        action="store_true",
        help="accept spec files that users other than wnr's own or root can write",
    )
    plan = sub.add_parser("plan", help="show what apply would do (exit 0 none, 2 changes, 1 error)")
    _common(plan)
    plan.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    apply = sub.add_parser("apply", help="run one reconcile pass")
    _common(apply)
    apply.add_argument("--wait", action="store_true", help="repeat passes until converged")
    apply.add_argument("--timeout", type=float, default=120.0, help="give up waiting after SECONDS")
    apply.add_argument("--expect", metavar="FINGERPRINT", help="refuse if the plan changed")
    apply.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    apply.add_argument(
        "-f", "--filename", metavar="FILE", help="write FILE (- for stdin) into the spec directory"
    )
    run = sub.add_parser("run", help="the daemon: watch and reconcile until SIGTERM")
    _common(run)
    run.add_argument(
        "--resync",
        type=float,
        default=RELIST_SECONDS,
        help="full pass (every cgroup and record read again) at least every SECONDS",
    )
    run.add_argument(
        "--metrics-address",
        nargs="?",
        const="127.0.0.1:9731",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (alone: 127.0.0.1:9731)",
    )
    run.add_argument(
        "--metrics-textfile",
        metavar="PATH",
        help="also write them to PATH (node_exporter's textfile collector), atomically",
    )
    get = sub.add_parser("get", help="list slots or jobs with their status, like kubectl get")
    _common(get)
    get.add_argument("resource", choices=sorted(RESOURCES), help="slots or jobs")
    get.add_argument("name", nargs="?", help="only this object")
    get.add_argument("-o", "--output", choices=["text", "wide", "json", "yaml"], default="text")
    get.add_argument("-w", "--watch", action="store_true", help="print a row on each change")
    get.add_argument(
        "--timeout", type=float, default=0.0, help="with -w: stop after SECONDS (0: never)"
    )
    wait = sub.add_parser("wait", help="wait for a job or slot to reach a phase or condition")
    _common(wait)
    wait.add_argument("target", help="job/NAME or slot/NAME")
    wait.add_argument(
        "--for",
        dest="wait_for",
        required=True,
        help="phase=PHASE, condition=TYPE[=True|False|Unknown] or delete",
    )
    wait.add_argument("--timeout", type=float, default=30.0, help="give up after SECONDS")
    describe = sub.add_parser("describe", help="spec, status, conditions and events of an object")
    _common(describe)
    describe.add_argument("resource", choices=sorted(RESOURCES), help="slot or job")
    describe.add_argument("name")
    describe.add_argument("--events", type=int, default=20, help="show the last N events")
    delete = sub.add_parser("delete", help="remove jobs or slots from the spec directory")
    _common(delete)
    delete.add_argument("resource", choices=sorted(RESOURCES), help="job or slot")
    delete.add_argument("names", nargs="+", metavar="NAME")
    _top_parser(sub)
    sub.add_parser("crds", help="print the CustomResourceDefinitions")
    doctor = sub.add_parser("doctor", help="check the node (exit 1 when a required check fails)")
    _common(doctor)
    _logs_parser(sub)
    return parser


def _logs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = sub.add_parser(
        "logs", help="print a job's output (stdout and stderr), like kubectl logs"
    )
    _common(logs)
    logs.add_argument("job", help="the job's name")
    logs.add_argument("--attempt", type=int, help="this attempt (default: the newest with a log)")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="print new output until the attempt ends"
    )
    logs.add_argument("--tail", type=_lines, help="only the last N lines")


def _lines(text: str) -> int:
    """A `--tail` count: a whole number of lines, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a number of lines (0 or more), not {text!r}")
    return int(text)


def _top_parser(sub: Any) -> None:
    top = sub.add_parser("top", help="slots and jobs by what they use now, like kubectl top")
    _common(top)
    top.add_argument("resource", nargs="?", choices=sorted(RESOURCES), help="slots or jobs (both)")
    top.add_argument("--sort-by", choices=SORT_KEYS, default="memory", help="(default %(default)s)")
    top.add_argument(
        "--interval", type=float, default=1.0, help="measure the CPU rate over SECONDS (default 1)"
    )
