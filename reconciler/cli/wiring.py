"""How a command finds its node: the client, the reconciler, the locks; part of reconciler.cli.

Flags name the state dir, spec dir and root; what they leave out comes from the
daemon's record (reconciler.client), except for `wnr run` itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from reconciler.cli.arguments import READ_ONLY
from reconciler.client import DEFAULT_SPECS, Client
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.nodelock import NodeLock
from reconciler.host.objectstore import ObjectStore
from reconciler.host.statedir import StateDir
from reconciler.observe.delegation import leaves_for_daemon
from reconciler.observe.mounts import cgroup2_mounts, choose_root, mount_of, own_cgroup_path
from reconciler.reconcile import Reconciler
from reconciler.specs.loader import SpecLoader
from reconciler.status.passresult import PassResult


def client_of(args: argparse.Namespace) -> Client:
    """The node as the flags name it; the spec dir and root default to the daemon's."""
    specs = args.specs
    if specs is None and args.command == "run":
        specs = DEFAULT_SPECS  # the daemon itself never follows an old record
    return Client(args.state_dir, specs, args.root, trust_any_writer=args.allow_untrusted_specs)


def reconciler_of(args: argparse.Namespace) -> Reconciler:
    """A reconciler on the node the flags name; only commands that change something create
    the state dir."""
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


def take_over(args: argparse.Namespace, reconciler: Reconciler) -> NodeLock:
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


def print_errors(result: PassResult) -> None:
    """The spec errors of a pass, on stderr."""
    for error in result.desired.errors:
        print(error, file=sys.stderr)
