"""systemd's notify protocol from the daemon's side: the pure summary, the environment, and a real
`wnr run` talking to a real AF_UNIX datagram socket (READY=1, STATUS=, WATCHDOG=1, STOPPING=1);
and the open-files limit the daemon raises for itself while its payloads keep the usual one."""

from __future__ import annotations

import dataclasses
import resource
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.notify import Notifier
from reconciler.model.desired import SpecError
from reconciler.plan import Plan
from reconciler.plan.jobphase import JobView, Phase
from reconciler.status.passresult import PassResult
from reconciler.status.summary import pass_summary
from tests.builders import desired, empty, slot
from tests.conftest import wait_for
from tests.helpers import DaemonProcess, write_job, write_slot


def test_the_summary_counts_slots_and_jobs_by_phase_in_lifecycle_order() -> None:
    """One line: slots, jobs, the phases that have jobs in lifecycle order, then spec errors."""
    jobs = {"a": JobView(Phase.Succeeded), "b": JobView(Phase.Running), "c": JobView(Phase.Running)}
    result = PassResult(desired(slot("x"), slot("y")), empty(), Plan((), jobs=jobs))
    assert "2 slots, 3 jobs (2 Running, 1 Succeeded)" == pass_summary(result)
    error = SpecError("/specs/a.yaml", 1, 1, "bad")
    broken = dataclasses.replace(result.desired, errors=(error,))
    alone = PassResult(broken, empty(), Plan((), jobs={"a": JobView(Phase.Pending)}))
    assert "2 slots, 1 job (1 Pending); 1 spec error" == pass_summary(alone)
    assert "0 slots, 0 jobs" == pass_summary(PassResult(desired(), empty(), Plan(())))


def test_the_environment_names_the_socket_and_the_watchdog_and_is_then_cleared() -> None:
    """`@` is the abstract namespace; WATCHDOG_PID of another process means no watchdog; the
    variables are taken out so that no child inherits them."""
    env = {"NOTIFY_SOCKET": "@wnr", "WATCHDOG_USEC": "30000000", "PATH": "/bin"}
    notifier = Notifier.from_environ(env)
    assert ("\0wnr", 30.0, 15.0) == (
        notifier.address,
        notifier.watchdog_interval,
        notifier.poll_cap,
    )
    assert {"PATH": "/bin"} == env
    other = Notifier.from_environ(
        {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"}
    )
    assert ("/run/n", None) == (other.address, other.watchdog_interval)
    nothing = Notifier.from_environ({"WATCHDOG_USEC": "30000000"})
    assert (None, None) == (nothing.address, nothing.poll_cap)
    nothing.passed("0 slots, 0 jobs")  # no socket: nothing to send, nothing raised


class Manager:
    """The service manager's end: a datagram socket the daemon's NOTIFY_SOCKET names."""

    def __init__(self, address: str) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.messages: list[dict[str, str]] = []

    def until(self, key: str, timeout: float = 30.0) -> dict[str, str]:
        """Receive datagrams until one assigns `key`; return it (each is kept in `messages`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(4096).decode()
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.splitlines())
            self.messages.append(message)
            if key in message:
                return message
        pytest.fail(f"no {key}= within {timeout:g}s; got {self.messages}")

    def count(self, key: str, seconds: float) -> int:
        """How many datagrams assign `key` within the next `seconds`."""
        deadline = time.monotonic() + seconds
        seen = 0
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                seen += f"{key}=" in self.socket.recv(4096).decode()
            except TimeoutError:
                break
        return seen


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    """A notify socket in the test's tmp dir."""
    end = Manager(str(tmp_path / "notify"))
    try:
        yield end
    finally:
        end.socket.close()


def test_the_daemon_is_ready_after_its_first_pass_pings_the_watchdog_and_says_it_stops(
    daemon: DaemonProcess, manager: Manager, state_dir: Path, tmp_path: Path
) -> None:
    """READY=1 comes once the first pass published daemon.json, with a STATUS= line; WATCHDOG=1
    comes at least every half interval while idle; SIGTERM brings STOPPING=1."""
    specs = tmp_path / "specs"
    write_slot(specs, "s")
    write_job(specs, "long", "s", ["sleep", "600"])
    daemon.start({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"})
    ready = manager.until("READY")
    assert (state_dir / "daemon.json").exists()
    assert ready["STATUS"].startswith("1 slot, 1 job (")
    while "1 slot, 1 job (1 Running)" != manager.until("STATUS")["STATUS"]:
        pass  # each STATUS= differs from the last; `until` fails the test after 30 s
    # 0.4 s interval: a ping at least every 0.2 s, so >= 5 in 1.5 s even on a slow machine.
    assert 5 <= manager.count("WATCHDOG", 1.5)
    assert daemon.proc is not None
    daemon.proc.send_signal(15)
    stopping = manager.until("STOPPING")
    assert ("1", "stopping; jobs keep running") == (stopping["STOPPING"], stopping["STATUS"])
    assert 0 == daemon.proc.wait(timeout=10)


def test_an_abstract_notify_socket_is_reached_and_no_watchdog_means_no_pings(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """NOTIFY_SOCKET=@name reaches the abstract namespace; without WATCHDOG_USEC no WATCHDOG=1."""
    name = f"wnr-test-{uuid.uuid4().hex[:12]}"
    end = Manager("\0" + name)
    try:
        daemon.start({"NOTIFY_SOCKET": f"@{name}"})
        assert "0 slots, 0 jobs" == end.until("READY")["STATUS"]
        assert 0 == end.count("WATCHDOG", 1.0)
    finally:
        end.socket.close()


def test_the_daemon_raises_its_open_files_limit_and_payloads_get_the_usual_one_back(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """Started with `LimitNOFILE=1024:<hard>`, wnr runs at <hard> (its pidfds) and a job reads 1024."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.skip(f"the hard open-files limit here is {hard}: nothing to raise")
    specs = tmp_path / "specs"
    out = tmp_path / "limits.txt"
    write_slot(specs, "s")
    write_job(
        specs,
        "limits",
        "s",
        ["sh", "-c", f"ulimit -Sn > {out}.tmp; ulimit -Hn >> {out}.tmp; mv {out}.tmp {out}"],
    )
    daemon.start(prefix=["prlimit", f"--nofile=1024:{hard}", "--"])
    wait_for(out.exists, timeout=30)
    assert ["1024", str(hard)] == out.read_text().split()
    assert daemon.proc is not None
    limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text().splitlines()
    assert ["Max", "open", "files", str(hard), str(hard), "files"] == next(
        line.split() for line in limits if line.startswith("Max open files")
    )
