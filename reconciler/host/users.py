"""The user database (NSS: /etc/passwd, LDAP, sssd): a name or uid to an Account; the host layer.

Called by reconciler.observe.accounts for the users the specs name. Groups come
from getgrouplist, as initgroups(3) would set them, so the wrapper needs no NSS
lookup of its own after it entered the job cgroup.
"""

from __future__ import annotations

import os
import pwd

from reconciler.model.accounts import Account


class UnknownUserError(LookupError):
    """The user database has no such user; the message names it."""


def look_up(user: str) -> Account:
    """The account of a user name, or of a numeric uid; UnknownUserError when it has none."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        kind = "uid" if user.isdigit() else "user"
        raise UnknownUserError(f"{kind} {user} is not in the user database") from None
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    ordered = (entry.pw_gid, *sorted(g for g in set(groups) if g != entry.pw_gid))
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, ordered, entry.pw_dir)
