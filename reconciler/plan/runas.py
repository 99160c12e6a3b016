"""Planner step: who each slot's jobs and agents run as, chosen once per slot per pass; pure.

A root wnr runs a slot as its `user` (a name or uid), else as the Node's
defaultUser (`nobody` unless the Node says otherwise); never as root unless the
Slot says `user: root` explicitly, which is allowed and flagged (a note in
`wnr plan`, a warning in `wnr doctor`). A non-root wnr can run processes only as
itself: a `user` that is someone else is refused, and nothing of the slot runs.
The wrapper switches to the account after it entered the cgroup (the cgroup's
files stay wnr's, so the payload can neither raise its limits nor leave).
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.accounts import ROOT_UID, Account, RunAs, RunAsReason, RunAsSource
from reconciler.model.api import NodeSpec, Slot


def run_as(
    node: NodeSpec, slot: Slot, daemon_uid: int, accounts: Mapping[str, Account | str]
) -> RunAs:
    """The identity of the slot's processes, or why none may run."""
    asked = slot.spec.user
    if daemon_uid != ROOT_UID:
        return _as_unprivileged(asked, daemon_uid, accounts)
    user, source = node.default_user, RunAsSource.Node
    if asked is not None:
        user, source = asked, RunAsSource.Slot
    found = accounts.get(user, f"user {user} was not looked up")
    if isinstance(found, str):
        where = "the Slot's user" if source is RunAsSource.Slot else "the Node's defaultUser"
        return RunAs(user, source, RunAsReason.UnknownUser, refusal=f"{where}: {found}")
    if found.uid != ROOT_UID:
        return RunAs(user, source, RunAsReason.Resolved, found)
    if source is RunAsSource.Node:
        refusal = (
            f"the Node's defaultUser {user} is root; only a Slot that says `user: root` "
            "runs as root"
        )
        return RunAs(user, source, RunAsReason.NotPermitted, found, refusal)
    return RunAs(user, source, RunAsReason.Root, found)


def _as_unprivileged(
    asked: str | None, daemon_uid: int, accounts: Mapping[str, Account | str]
) -> RunAs:
    """A non-root wnr: itself, whatever the Node's default; a `user` only if it is itself."""
    if asked is None:
        return RunAs(f"uid {daemon_uid}", RunAsSource.Daemon, RunAsReason.Resolved, switch=False)
    found = accounts.get(asked)
    if isinstance(found, Account) and found.uid == daemon_uid:
        # Already that user: nothing to switch (and no privilege to do it with).
        return RunAs(asked, RunAsSource.Slot, RunAsReason.Resolved, found, switch=False)
    refusal = (
        f"wnr runs as uid {daemon_uid}, not root: it cannot run jobs as user {asked}; "
        "run wnr as root, or as that user, or remove `user`"
    )
    return RunAs(asked, RunAsSource.Slot, RunAsReason.NotPermitted, refusal=refusal)
