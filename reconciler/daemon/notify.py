"""The daemon's side of systemd's notify protocol (`Type=notify`, `WatchdogSec=`): sd_notify.

The loop (reconciler.daemon.loop) says READY=1 once its first pass is done, a STATUS=
line after each pass whose summary changed (reconciler.status.summary), WATCHDOG=1 on
every iteration, so that a pass that hangs stops the pings and systemd restarts the
daemon, and STOPPING=1 when SIGTERM or SIGINT arrives. The protocol is one datagram
per message on the AF_UNIX socket named by $NOTIFY_SOCKET (a leading `@` names the
abstract namespace); with no socket every call does nothing, so `wnr run` outside
systemd is unchanged. The variables are taken out of the environment once read, as
sd_notify(3)'s unset_environment does: wrappers, agents and payloads never see them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

log = logging.getLogger("wnr.daemon")

_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(name: str) -> str | None:
    """The socket address of $NOTIFY_SOCKET: a path, or `@name` in the abstract namespace."""
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None  # vsock:... and the like: not for a service on this host


def _watchdog(environ: MutableMapping[str, str], pid: int) -> float | None:
    """The watchdog interval in seconds, when it is set for this process (WATCHDOG_PID
    names the process systemd watches; when it names another, the watchdog is not ours)."""
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class Notifier:
    """Sends notify messages to the service manager; does nothing without one."""

    def __init__(self, address: str | None, watchdog: float | None) -> None:
        self.address = address
        # Seconds within which systemd wants WATCHDOG=1, or None.
        self.watchdog_interval = watchdog if address is not None else None
        self._status: str | None = None
        self._ready = False
        self._socket: socket.socket | None = None  # opened by the first message

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier $NOTIFY_SOCKET and $WATCHDOG_USEC describe, taking them out of
        `environ` (os.environ by default) so that no child inherits them."""
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        address = _address(name) if name else None
        watchdog = _watchdog(env, os.getpid())
        for variable in _VARIABLES:
            env.pop(variable, None)
        return cls(address, watchdog)

    @property
    def poll_cap(self) -> float | None:
        """The longest the loop may sleep: half the watchdog interval, as sd_watchdog_enabled(3)
        advises, so an idle daemon pings in time and only a hung pass misses."""
        return self.watchdog_interval / 2 if self.watchdog_interval is not None else None

    def send(self, *assignments: str) -> None:
        """One datagram of `KEY=value` lines; a failure is logged and otherwise ignored (the
        service manager may be restarting; the next message tries again)."""
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", assignments, exc)

    def passed(self, summary: str) -> None:
        """After a pass: READY=1 the first time, STATUS= whenever the summary changed."""
        messages = [] if self._ready else ["READY=1"]
        if summary != self._status:
            messages.append(f"STATUS={summary}")
            self._status = summary
        if messages:
            self.send(*messages)
        self._ready = True

    def alive(self) -> None:
        """WATCHDOG=1: the loop is between passes, so it is not hung."""
        if self.watchdog_interval is not None:
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """STOPPING=1: SIGTERM or SIGINT arrived; the daemon leaves after the current pass."""
        self.send("STOPPING=1", "STATUS=stopping; jobs keep running")
        self._status = None

    def close(self) -> None:
        """Release the socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
