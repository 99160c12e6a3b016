"""wnr's errors, classified by how they retry; shared by every layer that acts on the kernel.

A `CgroupError` carries its errno, and with it whether it is transient (EBUSY,
EAGAIN: retried briefly in the cgroup layer, then with back-off by the loop);
`PermanentError` fails the same way until something outside changes, so it is
reported and not retried on a timer. apply turns each into a `FailureKind`.
An `ObjectError` names the object a bug was met on, for the daemon's guard.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import os
from collections.abc import Iterator


class WnrError(Exception):
    """Base of wnr's own errors; the message always names the object or file involved."""


class PermanentError(WnrError):
    """A failure that repeats until an admin changes something (EACCES, EINVAL on a value)."""


class CgroupError(WnrError):
    """A cgroupfs operation failed; carries the operation, path, value and errno."""

    TRANSIENT = frozenset(
        {errno_codes.EBUSY, errno_codes.EAGAIN, errno_codes.EINTR, errno_codes.ENOMEM}
    )

    def __init__(self, op: str, path: str, err: int, value: str | None = None) -> None:
        self.op = op
        self.path = path
        self.errno = err
        self.value = value
        what = f"{op} {path}" + (f" = {value!r}" if value is not None else "")
        hint = _HINTS.get(err, "")
        name = errno_codes.errorcode.get(err, str(err))
        super().__init__(f"{what}: {name} ({os.strerror(err)}){hint}")

    @property
    def transient(self) -> bool:
        """Whether retrying the same operation later may succeed."""
        return self.errno in self.TRANSIENT


_HINTS = {
    errno_codes.EACCES: " - wnr's user does not own this cgroup; see `wnr doctor`",
    errno_codes.EPERM: " - wnr's user does not own this cgroup; see `wnr doctor`",
    errno_codes.EOPNOTSUPP: " - the kernel does not support this operation here",
    errno_codes.EBUSY: " - the cgroup is still in use",
}


class ObjectError(Exception):
    """An unexpected exception raised while working on one object (its cause is the bug);
    the daemon's pass guard counts it against that object instead of the whole node."""

    def __init__(self, obj: str) -> None:
        super().__init__(obj)
        self.obj = obj


@contextlib.contextmanager
def attributed(obj: str) -> Iterator[None]:
    """Raise whatever escapes the block as an ObjectError for `obj` (the first one wins)."""
    try:
        yield
    except ObjectError:
        raise
    except Exception as exc:
        raise ObjectError(obj) from exc
