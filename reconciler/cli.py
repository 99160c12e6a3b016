"""The `wnr` command line: parses arguments, wires loader, cgroup root, state dir and clock.

Every subcommand is a thin shell around `Reconciler` (plan, apply, run; get
and describe read what `reconciler.client` returns, top goes to `reconciler.top`),
the spec loader (validate) or the spec writer (`apply -f`, delete); exit codes follow
DESIGN §4.
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

from reconciler.client import DEFAULT_SPECS, MAX_INPUT, Client, WaitTimeoutError
from reconciler.doctor import Verdict, run_checks
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.joblogs import LogsError
from reconciler.host.nodelock import NodeLock
from reconciler.host.objectstore import ObjectStore
from reconciler.host.statedir import StateDir
from reconciler.inspection import run_describe, run_get, show_top, watch_get
from reconciler.model.errors import ObjectError, WnrError
from reconciler.observe.delegation import leaves_for_daemon
from reconciler.observe.mounts import cgroup2_mounts, choose_root, mount_of, own_cgroup_path
from reconciler.reconcile import Reconciler
from reconciler.render import dump, plan_data, plan_text
from reconciler.specs.loader import SpecLoader
from reconciler.status.passresult import PassResult
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
    run.add_argument("--resync", type=float, default=30.0, help="full pass at least every SECONDS")
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


def client_of(args: argparse.Namespace) -> Client:
    """The node as the flags name it; the spec dir and root default to the daemon's."""
    specs = args.specs
    if specs is None and args.command == "run":
        specs = DEFAULT_SPECS  # the daemon itself never follows an old record
    return Client(args.state_dir, specs, args.root, trust_any_writer=args.allow_untrusted_specs)


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


def _reconciler(args: argparse.Namespace) -> Reconciler:
    client = client_of(args)
    trusted = None if args.allow_untrusted_specs else os.geteuid()
    state = StateDir(client.state_dir)
    store = ObjectStore(state.root)
    loader = SpecLoader([client.specs], trusted_uid=trusted, fallback=store.last_good)
    requested = client.root or loader.load().node_spec.cgroup_root
    root = choose_root(requested)
    if args.command not in READ_ONLY:  # a dry run leaves no trace, not even a directory
        try:
            state.jobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # Reported by the passes (StateDirWritable); the daemon creates it when it can.
            logging.getLogger("wnr").error("cannot create the state dir %s: %s", state.root, exc)
    return Reconciler(loader, CgroupFS(root), state, store=store)


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


def cmd_apply_file(args: argparse.Namespace) -> int:
    """`apply -f FILE|-`: write the file into the daemon's spec directory, which it watches."""
    if args.wait or args.expect:
        raise WnrError("-f cannot be combined with --wait or --expect")
    client = client_of(args)
    if args.filename == "-":
        applied = client.apply_text(sys.stdin.buffer.read(MAX_INPUT + 1), "<stdin>")
    else:
        applied = client.apply_path(args.filename)
    for warning in applied.warnings:
        print(f"wnr: warning: {warning}", file=sys.stderr)
    for obj in applied.objects:
        print(obj)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """`delete job|slot NAME...`: cut each object out of the spec directory."""
    client = client_of(args)
    failed = False
    for name in args.names:
        try:
            deleted = client.delete(args.resource, name)
        except WnrError as exc:
            print(f"wnr: error: {exc}", file=sys.stderr)
            failed = True
            continue
        for warning in deleted.warnings:
            print(f"wnr: warning: {warning}", file=sys.stderr)
        print(deleted)
    return 1 if failed else 0


def cmd_apply(args: argparse.Namespace) -> int:
    """One pass, or passes until converged with --wait; refused while a daemon runs."""
    if args.filename is not None:
        return cmd_apply_file(args)
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
    specs = [path.absolute() for path in reconciler.loader.paths]
    logging.getLogger("wnr").info(
        "wnr %s: specs %s, root %s, state %s",
        "run",
        ", ".join(map(str, specs)),
        reconciler.fs.root,
        reconciler.state.root,
    )
    return Daemon(reconciler, specs, resync=args.resync, lock=lock).run()


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


def cmd_crds(_args: argparse.Namespace) -> int:
    """Print the CRDs generated from the models."""
    from reconciler.crds import render_crds  # noqa: PLC0415 - only this command needs it

    sys.stdout.write(render_crds())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Node checks with a hint each."""
    client = client_of(args)
    node = SpecLoader([client.specs]).load().node_spec
    requested = client.root or node.cgroup_root
    wanted = tuple(str(c) for c in node.controllers)
    runtime = str(node.runtime)
    checks = run_checks(requested, client.specs, wanted, runtime, client.state_dir)
    for check in checks:
        print(check)
    return 1 if any(c.verdict is Verdict.fail for c in checks) else 0


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


COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "run": cmd_run,
    "get": cmd_get,
    "describe": cmd_describe,
    "wait": cmd_wait,
    "delete": cmd_delete,
    "top": cmd_top,
    "crds": cmd_crds,
    "doctor": cmd_doctor,
    "logs": cmd_logs,
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
