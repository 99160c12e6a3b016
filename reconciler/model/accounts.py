"""Who a slot's jobs and agents run as: a user database entry and the choice made for a slot.

Plain data, read by the host layer (reconciler.host.users), chosen by the planner
(reconciler.plan.runas), carried by StartJob and StartAgent to the wrapper, which
switches to it (setgroups, setgid, setuid) after entering the cgroup and before it
execs the payload. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ROOT_UID = 0


@dataclass(frozen=True)
class Account:
    """A user as the user database has it (getpwnam, getgrouplist)."""

    name: str
    uid: int
    gid: int
    # Every group of the user, its primary group first (what initgroups would set).
    groups: tuple[int, ...]
    home: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plan -o json, status)."""
        return {"user": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}

    def __str__(self) -> str:
        return f"{self.name} (uid {self.uid}, gid {self.gid})"


class RunAsSource(StrEnum):
    """Where the user a slot runs as was chosen."""

    Slot = "Slot"  # the Slot's `user`
    Node = "Node"  # a root daemon's default (the Node's defaultUser)
    Daemon = "Daemon"  # a non-root daemon with no `user`: its own identity


class RunAsReason(StrEnum):
    """The RunAsUser condition's reason."""

    Resolved = "Resolved"
    Root = "Root"  # a Slot said `user: root`: allowed, and flagged
    UnknownUser = "UnknownUser"
    NotPermitted = "NotPermitted"  # a non-root wnr asked to run as someone else


@dataclass(frozen=True)
class RunAs:
    """The identity a slot's processes get: `account` (None where the user database was not
    needed: a non-root wnr's own identity), and whether the wrapper switches to it (only a
    root wnr does). `refusal` says why nothing of the slot may run (an unknown user, or a
    user a non-root wnr cannot become)."""

    user: str
    source: RunAsSource
    reason: RunAsReason
    account: Account | None = None
    refusal: str = ""
    switch: bool = True

    @property
    def credentials(self) -> Account | None:
        """What the wrapper switches to before it execs anything of the slot's; None: none."""
        return self.account if self.switch and not self.refusal else None

    @property
    def message(self) -> str:
        """The condition's message."""
        if self.refusal:
            return self.refusal
        who = str(self.account) if self.account is not None else self.user
        if self.source is RunAsSource.Node:
            return f"runs as {who}, the Node's defaultUser"
        if self.source is RunAsSource.Daemon:
            return f"runs as {who}, the user wnr runs as"
        if self.reason is RunAsReason.Root:
            return f"runs as {who}: the Slot asks for root explicitly"
        return f"runs as {who}"
