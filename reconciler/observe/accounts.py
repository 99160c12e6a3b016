"""Observe step: the accounts of the users the specs name (each Slot's `user`, the Node's
defaultUser), looked up in the user database.

Runs in each pass after the specs are loaded (reconciler.reconcile). A lookup is
kept for LOOKUP_TTL_SECONDS, as nscd or sssd would, so an idle node's passes ask
the user database nothing; an unknown user is asked again at the same pace, so
a user added later is found within that time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.host.users import UnknownUserError, look_up
from reconciler.model.accounts import Account
from reconciler.model.desired import Desired

LOOKUP_TTL_SECONDS = 60.0


def users_named(desired: Desired) -> frozenset[str]:
    """Every user a pass may need: the slots' own and the Node's default."""
    named = {slot.spec.user for slot in desired.slots.values() if slot.spec.user is not None}
    return frozenset({*named, desired.node_spec.default_user})


class Accounts:
    """The lookups of one process, each kept for LOOKUP_TTL_SECONDS."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, Account | str]] = {}

    def look_up(self, users: Iterable[str], now: float) -> Mapping[str, Account | str]:
        """Each user's account, or the reason it has none."""
        found: dict[str, Account | str] = {}
        for user in sorted(users):
            kept = self._kept.get(user)
            if kept is None or now >= kept[0]:
                kept = (now + LOOKUP_TTL_SECONDS, _look_up(user))
                self._kept[user] = kept
            found[user] = kept[1]
        self._kept = {user: self._kept[user] for user in found}
        return found


def _look_up(user: str) -> Account | str:
    try:
        return look_up(user)
    except UnknownUserError as exc:
        return str(exc)
