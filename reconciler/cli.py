"""The `wnr` command line: parses arguments, wires loader, cgroup root, state dir and clock.

Every subcommand is a thin shell around `Reconciler` (plan, apply, run; get
and describe hand the dry pass to `reconciler.inspection`, top to
`reconciler.top`) or the spec loader (validate); exit codes follow DESIGN §4.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.doctor import Verdict, run_checks
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.nodelock import NodeLock
from reconciler.host.statedir import StateDir
from reconciler.inspection import run_describe, run_get
from reconciler.model.errors import ObjectError, WnrError
from reconciler.observe.delegation import leaves_for_daemon
from reconciler.observe.mounts import cgroup2_mounts, choose_root, mount_of, own_cgroup_path
from reconciler.reconcile import Reconciler
from reconciler.render import dump, plan_data, plan_text
from reconciler.specs.loader import SpecLoader
from reconciler.status import job_statuses, slot_statuses
from reconciler.status.passresult import PassResult
from reconciler.top import SORT_KEYS, run_top

DEFAULT_SPECS = "/etc/wnr/specs.d"
# Commands that only look: a dry pass, and not even a directory is created.
READ_ONLY = frozenset({"plan", "get", "describe", "top"})
# `wnr get job` and `wnr get jobs` (kubectl accepts both).
RESOURCES = {"job": "jobs", "jobs": "jobs", "slot": "slots", "slots": "slots"}


def default_state_dir() -> str:
    """`/var/lib/wnr` for root, else `$XDG_STATE_HOME/wnr` (or `~/.local/state/wnr`)."""
    if os.geteuid() == 0:
        return "/var/lib/wnr"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "wnr")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--specs", default=DEFAULT_SPECS, help="spec directory (default %(default)s)"
    )
    parser.add_argument(
        "--root", default=None, help="cgroup root (default: Node cgroupRoot, else auto)"
    )
    parser.add_argument("--state-dir", default=None, help="state directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every action")
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
    run = sub.add_parser("run", help="the daemon: watch and reconcile until SIGTERM")
    _common(run)
    run.add_argument("--resync", type=float, default=30.0, help="full pass at least every SECONDS")
    get = sub.add_parser("get", help="list slots or jobs with their status, like kubectl get")
    _common(get)
    get.add_argument("resource", choices=sorted(RESOURCES), help="slots or jobs")
    get.add_argument("name", nargs="?", help="only this object")
    get.add_argument("-o", "--output", choices=["text", "wide", "json", "yaml"], default="text")
    describe = sub.add_parser("describe", help="spec, status, conditions and events of an object")
    _common(describe)
    describe.add_argument("resource", choices=sorted(RESOURCES), help="slot or job")
    describe.add_argument("name")
    describe.add_argument("--events", type=int, default=20, help="show the last N events")
    _top_parser(sub)
    sub.add_parser("crds", help="print the CustomResourceDefinitions")
    doctor = sub.add_parser("doctor", help="check the node (exit 1 when a required check fails)")
    _common(doctor)
    return parser


def _top_parser(sub: Any) -> None:
    top = sub.add_parser("top", help="slots and jobs by what they use now, like kubectl top")
    _common(top)
    top.add_argument("resource", nargs="?", choices=sorted(RESOURCES), help="slots or jobs (both)")
    top.add_argument("--sort-by", choices=SORT_KEYS, default="memory", help="(default %(default)s)")
    top.add_argument(
        "--interval", type=float, default=1.0, help="measure the CPU rate over SECONDS (default 1)"
    )


def _reconciler(args: argparse.Namespace) -> Reconciler:
    trusted = None if args.allow_untrusted_specs else os.geteuid()
    loader = SpecLoader([Path(args.specs)], trusted_uid=trusted)
    requested = args.root or loader.load().node_spec.cgroup_root
    root = choose_root(requested)
    state = StateDir(args.state_dir or default_state_dir())
    if args.command not in READ_ONLY:  # a dry run leaves no trace, not even a directory
        try:
            state.jobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # Reported by the passes (StateDirWritable); the daemon creates it when it can.
            logging.getLogger("wnr").error("cannot create the state dir %s: %s", state.root, exc)
    return Reconciler(loader, CgroupFS(root), state)


def _take_over(args: argparse.Namespace, reconciler: Reconciler) -> NodeLock:
    """Before `run` or `apply` changes anything: lock the state dir and the root (refused,
    naming the holder, while another wnr has them), then leave the root if wnr sits in it."""
    lock = NodeLock(reconciler.state.root, reconciler.fs.root, args.command).acquire()
    leave_root(reconciler.fs)
    return lock


def leave_root(fs: CgroupFS) -> None:
    """When wnr itself sits in its root (a delegated cgroup), or in the process leaf it was
    started in just below it (HTCondor's `.scope`, systemd's DelegateSubgroup), move it into
    `wnr.daemon`.

    The kernel lets a cgroup enable controllers for its children only while it
    holds no processes itself ("no internal processes"); wnr moves only itself.
    """
    mount = mount_of(fs.root, cgroup2_mounts())
    if mount is None or not leaves_for_daemon(own_cgroup_path(mount), fs.root):
        return
    fs.mkdir("wnr.daemon")
    fs.write("wnr.daemon", "cgroup.procs", str(os.getpid()))


def _print_errors(result: PassResult) -> None:
    for error in result.desired.errors:
        print(error, file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    """Each directory is one spec set; files named on the command line form one more. The
    daemon's rules apply: the same trust, regular files only, the same bounds."""
    dirs = [p for p in args.paths if p.is_dir()]
    files = [p for p in args.paths if not p.is_dir()]
    sets = [[d] for d in dirs] + ([files] if files else [])
    trusted = None if args.allow_untrusted_specs else os.geteuid()
    failed = False
    for paths in sets:
        desired = SpecLoader(paths, trusted_uid=trusted).load()
        for error in desired.errors:
            print(error)
        failed = failed or bool(desired.errors)
        if not desired.errors:
            count = len(desired.slots) + len(desired.jobs) + (desired.node is not None)
            print(f"{', '.join(str(p) for p in paths)}: {count} object(s) valid")
    return 1 if failed else 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Dry run: print the plan."""
    result = _reconciler(args).run_pass(dry_run=True)
    _print_errors(result)
    if args.output == "text":
        print(plan_text(result, color=sys.stdout.isatty()))
    else:
        print(dump(plan_data(result), args.output))
    if result.desired.errors:
        return 1
    return 2 if result.plan.actions else 0


def cmd_apply(args: argparse.Namespace) -> int:
    """One pass, or passes until converged with --wait; refused while a daemon runs."""
    reconciler = _reconciler(args)
    if args.expect:
        current = reconciler.run_pass(dry_run=True).plan.fingerprint
        if current != args.expect:
            print(
                f"wnr: the plan changed (fingerprint {current}, expected {args.expect})",
                file=sys.stderr,
            )
            return 1
    _lock = _take_over(args, reconciler)  # held until the process exits
    deadline = time.monotonic() + args.timeout
    while True:
        result = reconciler.run_pass()
        if args.output == "text":
            for action in result.plan.actions:
                print(action.describe())
        for failure in result.failures:
            print(f"wnr: {failure}", file=sys.stderr)
        if not args.wait or result.converged:
            break
        if time.monotonic() >= deadline:
            print(f"wnr: not converged after {args.timeout:g}s", file=sys.stderr)
            return 1
        time.sleep(min(0.1, result.plan.requeue_after or 0.1))
    _print_errors(result)
    if args.output != "text":
        print(dump(plan_data(result), args.output))
    return 1 if result.failures or result.desired.errors else 0


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon."""
    from reconciler.daemon.loop import Daemon  # noqa: PLC0415 - watchfiles is only needed here

    reconciler = _reconciler(args)
    lock = _take_over(args, reconciler)
    logging.getLogger("wnr").info(
        "wnr %s: specs %s, root %s, state %s",
        "run",
        args.specs,
        reconciler.fs.root,
        reconciler.state.root,
    )
    return Daemon(reconciler, [Path(args.specs)], resync=args.resync, lock=lock).run()


def cmd_get(args: argparse.Namespace) -> int:
    """A dry pass, then the slots or jobs as a table, JSON or YAML."""
    reconciler = _reconciler(args)
    result = reconciler.run_pass(dry_run=True)
    _print_errors(result)
    return run_get(reconciler, result, RESOURCES[args.resource], args.name, args.output)


def cmd_describe(args: argparse.Namespace) -> int:
    """A dry pass, then one object's spec, status, conditions and recent events."""
    reconciler = _reconciler(args)
    result = reconciler.run_pass(dry_run=True)
    _print_errors(result)
    return run_describe(reconciler, result, RESOURCES[args.resource], args.name, args.events)


def cmd_top(args: argparse.Namespace) -> int:
    """A dry pass for the statuses, then what each running slot and job uses now."""
    if args.interval < 0:
        print(
            f"wnr: error: --interval must not be negative, not {args.interval:g}", file=sys.stderr
        )
        return 1
    reconciler = _reconciler(args)
    result = reconciler.run_pass(dry_run=True)
    _print_errors(result)
    now = reconciler.clock()
    jobs = job_statuses(result.desired, result.observed, result.plan, now)
    slots = slot_statuses(result.desired, result.observed, result.plan, now)
    wanted = [RESOURCES[args.resource]] if args.resource else ["slots", "jobs"]
    specs = result.desired.slots
    return run_top(reconciler.fs, jobs, slots, specs, wanted, args.sort_by, args.interval)


def cmd_crds(_args: argparse.Namespace) -> int:
    """Print the CRDs generated from the models."""
    from reconciler.crds import render_crds  # noqa: PLC0415 - only this command needs it

    sys.stdout.write(render_crds())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Node checks with a hint each."""
    node = SpecLoader([Path(args.specs)]).load().node_spec
    requested = args.root or node.cgroup_root
    wanted = tuple(str(c) for c in node.controllers)
    runtime = str(node.runtime)
    state = Path(args.state_dir or default_state_dir())
    checks = run_checks(requested, Path(args.specs), wanted, runtime, state)
    for check in checks:
        print(check)
    return 1 if any(c.verdict is Verdict.fail for c in checks) else 0


COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "run": cmd_run,
    "get": cmd_get,
    "describe": cmd_describe,
    "top": cmd_top,
    "crds": cmd_crds,
    "doctor": cmd_doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `wnr` and `python -m reconciler`."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "get" and args.name is None and len(extra) == 1 and extra[0][:1] != "-":
        # `wnr get jobs -o json NAME`: argparse has already given up on the optional NAME.
        args.name, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose or args.command == "run" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
