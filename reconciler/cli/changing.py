"""The commands that plan or change the node: validate, plan, apply (-f), delete, run, doctor, crds.

Part of reconciler.cli; each is a thin shell around the reconciler, the spec
loader, the client's spec writer or the doctor; exit codes follow DESIGN §4.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from reconciler.cli.wiring import client_of, print_errors, reconciler_of, take_over
from reconciler.client import MAX_INPUT
from reconciler.doctor import Verdict, check_descriptors, check_users, run_checks
from reconciler.host.process import raise_descriptor_limit
from reconciler.model.errors import WnrError
from reconciler.render import dump, plan_data, plan_text
from reconciler.specs.loader import SpecLoader


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
    result = reconciler_of(args).run_pass(dry_run=True)
    print_errors(result)
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
    reconciler = reconciler_of(args)
    if args.expect:
        current = reconciler.run_pass(dry_run=True).plan.fingerprint
        if current != args.expect:
            print(
                f"wnr: the plan changed (fingerprint {current}, expected {args.expect})",
                file=sys.stderr,
            )
            return 1
    _lock = take_over(args, reconciler)  # held until the process exits
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
    print_errors(result)
    if args.output != "text":
        print(dump(plan_data(result), args.output))
    return 1 if result.failures or result.desired.errors else 0


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon."""
    from reconciler.daemon.loop import Daemon  # noqa: PLC0415 - only the daemon needs the loop

    metrics_on = args.metrics_address is not None or args.metrics_textfile is not None
    if metrics_on:
        from reconciler.daemon.metrics import Metrics, split_address  # noqa: PLC0415

        try:  # before anything is taken over: a typo is an error, not a daemon without metrics
            if args.metrics_address is not None:
                split_address(args.metrics_address)
        except ValueError as exc:
            print(f"wnr: {exc}", file=sys.stderr)
            return 1
    # Before the waker sizes its pidfd budget; payloads get the starting soft limit back.
    soft, hard = raise_descriptor_limit()
    reconciler = reconciler_of(args)
    lock = take_over(args, reconciler)
    specs = [path.absolute() for path in reconciler.loader.paths]
    logging.getLogger("wnr").debug("open files: soft limit %d raised to %d for wnr", soft, hard)
    logging.getLogger("wnr").info(
        "wnr %s: specs %s, root %s, state %s",
        "run",
        ", ".join(map(str, specs)),
        reconciler.fs.root,
        reconciler.state.root,
    )
    daemon = Daemon(reconciler, specs, resync=args.resync, lock=lock)
    if not metrics_on:
        return daemon.run()
    try:
        metrics = Metrics(daemon, args.metrics_address, args.metrics_textfile)
    except (ValueError, OSError) as exc:
        print(f"wnr: {exc}", file=sys.stderr)
        return 1
    try:
        return daemon.run()
    finally:
        metrics.close()


def cmd_crds(_args: argparse.Namespace) -> int:
    """Print the CRDs generated from the models."""
    from reconciler.crds import render_crds  # noqa: PLC0415 - only this command needs it

    sys.stdout.write(render_crds())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Node checks with a hint each."""
    client = client_of(args)
    desired = SpecLoader([client.specs]).load()
    node = desired.node_spec
    requested = client.root or node.cgroup_root
    wanted = tuple(str(c) for c in node.controllers)
    runtime = str(node.runtime)
    checks = run_checks(requested, client.specs, wanted, runtime, client.state_dir)
    checks.append(check_descriptors(desired))
    checks += check_users(desired, os.geteuid())
    for check in checks:
        print(check)
    return 1 if any(c.verdict is Verdict.fail for c in checks) else 0
