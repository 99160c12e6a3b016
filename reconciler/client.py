"""The node's object store as Python pilots and the CLI use it: find the daemon, read, wait, write.

Above the pass (reconciler.reconcile) and below the CLI, which only prints
what this module returns. What a running daemon published
(reconciler.host.objectstore) is read as it is; with no daemon running, a
dry pass computes the same objects (and `Snapshot.daemon` is None, so the
CLI can say so). Writes go through the spec directory the daemon watches
(reconciler.specs.writer), never around it.

    from reconciler.client import Client
    client = Client()                         # the default state dir, as `wnr` uses
    client.apply_text(job_yaml)               # like `wnr apply -f -`
    client.wait("Job", "hello", "phase=Succeeded", timeout=60)
    print(client.get("Job", "hello")["status"]["phase"])
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.eventlog import EventLog
from reconciler.host.joblogs import LogsError, NotStartedError, follow_logs
from reconciler.host.nodelock import state_lock_holder
from reconciler.host.objectstore import ObjectStore, StatusBoard
from reconciler.host.statedir import StateDir
from reconciler.host.statefault import check
from reconciler.model.errors import WnrError
from reconciler.model.event import WARNING
from reconciler.model.stored import ObjectKey
from reconciler.observe.mounts import choose_root
from reconciler.reconcile import Reconciler
from reconciler.specs.deletion import Deleted, delete_object
from reconciler.specs.loader import SpecLoader
from reconciler.specs.writer import Applied, SpecWriteError, apply_file
from reconciler.status.passresult import PassResult
from reconciler.status.published import published_objects
from reconciler.status.waitfor import WaitFor

DEFAULT_SPECS = "/etc/wnr/specs.d"
# The most `apply -f` reads: the largest Node spec.specLimits.maxFileSize there can be.
MAX_INPUT = 2**30
KINDS = {"job": "Job", "jobs": "Job", "slot": "Slot", "slots": "Slot"}


def default_state_dir() -> str:
    """`$WNR_STATE_DIR` when set (as kubectl takes `$KUBECONFIG`), else `/var/lib/wnr` for
    root, else `$XDG_STATE_HOME/wnr` (or `~/.local/state/wnr`)."""
    if os.environ.get("WNR_STATE_DIR"):
        return os.environ["WNR_STATE_DIR"]
    if os.geteuid() == 0:
        return "/var/lib/wnr"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "wnr")


@dataclass(frozen=True)
class DaemonInfo:
    """The record `wnr run` keeps of itself in its state dir (`daemon.json`)."""

    pid: int
    specs: tuple[str, ...]
    root: str
    state_dir: str
    version: str
    started_at: float
    last_pass: float
    spec_errors: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonInfo:
        """Parse the record (raises KeyError, TypeError or ValueError when malformed)."""
        return cls(
            pid=int(data["pid"]),
            specs=tuple(str(p) for p in data["specs"]),
            root=str(data["root"]),
            state_dir=str(data["stateDir"]),
            version=str(data.get("version", "")),
            started_at=float(data["startedAt"]),
            last_pass=float(data["lastPass"]),
            spec_errors=tuple(str(e) for e in data.get("specErrors", ())),
        )


def daemon_record(state_dir: Path | str) -> DaemonInfo | None:
    """The last daemon's record in `state_dir`, running or not."""
    data = StatusBoard(state_dir).read_daemon()
    if data is None:
        return None
    try:
        return DaemonInfo.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def running_daemon(state_dir: Path | str) -> DaemonInfo | None:
    """The daemon that holds `state_dir` now: its record names the PID holding the lock."""
    info = daemon_record(state_dir)
    if info is None or state_lock_holder(Path(state_dir)) != info.pid:
        return None
    return info


@dataclass
class Snapshot:
    """The node's jobs and slots as published (or, with no daemon, as a dry pass finds them)."""

    objects: dict[ObjectKey, dict[str, Any]]
    now: float
    events: EventLog
    daemon: DaemonInfo | None
    # The cgroup root the objects' cgroups are under (for their live usage).
    root: str
    errors: list[str] = field(default_factory=list)
    # Why a running daemon's published status was not read: its state dir cannot record.
    stale: str = ""

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The objects of one kind, by name."""
        return [obj for (k, _), obj in sorted(self.objects.items()) if k == kind]


class Client:
    """One node's wnr: its state dir, and the spec dir and cgroup root its daemon uses."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        specs: Path | str | None = None,
        root: str | None = None,
        *,
        trust_any_writer: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state_dir = Path(state_dir or default_state_dir())
        self._specs, self._root = specs, root
        self.trust_any_writer = trust_any_writer
        self.clock, self.sleep = clock, sleep

    @property
    def specs(self) -> Path:
        """The spec dir: as given, else the daemon's (running or last), else the default."""
        if self._specs is not None:
            return Path(self._specs)
        info = daemon_record(self.state_dir)
        return Path(info.specs[0]) if info is not None and info.specs else Path(DEFAULT_SPECS)

    @property
    def root(self) -> str | None:
        """The cgroup root: as given, else the daemon's, else None (the Node's or auto)."""
        if self._root is not None:
            return self._root
        info = daemon_record(self.state_dir)
        return info.root if info is not None else None

    def reconciler(self) -> Reconciler:
        """A reconciler on this node's specs, root and state dir (for dry passes)."""
        trusted = None if self.trust_any_writer else os.geteuid()
        state = StateDir(self.state_dir)
        store = ObjectStore(state.root)
        loader = SpecLoader([self.specs], trusted_uid=trusted, fallback=store.last_good)
        root = choose_root(self.root or loader.load().node_spec.cgroup_root)
        return Reconciler(loader, CgroupFS(root), state, store=store)

    def snapshot(self) -> Snapshot:
        """What the daemon published, or a dry pass's objects when none runs, or when the
        state dir cannot record (then what was published may be out of date)."""
        info = running_daemon(self.state_dir)
        events = EventLog(self.state_dir)
        fault = check(self.state_dir) if info is not None else None
        if info is not None and fault is None:
            objects = StatusBoard(self.state_dir).read_all()
            errors = list(info.spec_errors)
            return Snapshot(objects, self.clock(), events, info, info.root, errors)
        stale = f"the daemon cannot publish ({fault})" if fault is not None else ""
        reconciler = self.reconciler()
        result = reconciler.run_pass(dry_run=True)
        failed = failed_slots(events, result)
        objects = published_objects(result, result.stored, self.clock(), failed)
        errors = [str(e) for e in result.desired.errors]
        root = str(reconciler.fs.root)
        return Snapshot(objects, self.clock(), events, None, root, errors, stale)

    def list(self, kind: str) -> list[dict[str, Any]]:
        """Every published object of a kind (`Job`, `Slot`)."""
        return self.snapshot().of_kind(KINDS.get(kind, kind))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """One object as `wnr get KIND NAME -o json` prints it, or None; from a running
        daemon, only that object's file is read (`wait` polls this)."""
        key = (KINDS.get(kind, kind), name)
        if running_daemon(self.state_dir) is not None and check(self.state_dir) is None:
            return StatusBoard(self.state_dir).read_one(key)
        return self.snapshot().objects.get(key)

    def wait(self, kind: str, name: str, condition: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the object meets `condition` (`phase=Succeeded`, `condition=SpecValid`,
        `condition=SpecValid=False`, `delete`); returns it (or {} once deleted). Raises
        WaitTimeoutError when `timeout` seconds pass first, WnrError on a bad condition."""
        wanted = WaitFor.parse(condition)
        deadline = self.clock() + timeout
        while True:
            obj = self.get(kind, name)
            if wanted.met(obj):
                return obj or {}
            if self.clock() >= deadline:
                raise WaitTimeoutError(wanted.describe(KINDS.get(kind, kind), name, obj, timeout))
            self.sleep(0.2)

    def logs(
        self, job: str, attempt: int | None = None, tail: int | None = None, *, follow: bool = False
    ) -> Iterator[bytes]:
        """A job's output (stdout and stderr as the wrapper copied them), oldest first across
        its rotated files; with `follow`, more as it comes until the attempt ends. Raises
        LogsError (a WnrError) naming the attempts there are."""
        try:
            return follow_logs(self.state_dir, job, attempt, tail, follow=follow, sleep=self.sleep)
        except NotStartedError:
            where = f"no attempt in state dir {self.state_dir}"
            known = ("Job", job) in ObjectStore(self.state_dir).objects()
            if known or job in SpecLoader([self.specs]).load().jobs:
                raise LogsError(f"job {job} has not started yet ({where})") from None
            raise LogsError(f"job {job} is unknown ({where}, no spec in {self.specs})") from None

    def read_logs(self, job: str, attempt: int | None = None, tail: int | None = None) -> bytes:
        """A job's output so far, as one bytes object."""
        return b"".join(self.logs(job, attempt, tail))

    def apply_text(
        self, text: str | bytes, source_name: str = "<stdin>", target: str | None = None
    ) -> Applied:
        """Validate objects (YAML text) and write them into the spec dir as one file, `target`
        or `<kind>-<name>.yaml` after the first (what `wnr apply -f -` does). Raises
        SpecWriteError (a WnrError) with `file:line:col` errors, writing nothing."""
        trust = not self.trust_any_writer
        return apply_file(self.specs, text, source_name, target, trust=trust)

    def apply_path(self, path: Path | str) -> Applied:
        """`wnr apply -f FILE`: the file's objects, written under its own name."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_INPUT + 1)
        except OSError as exc:
            raise SpecWriteError(f"cannot read {path}: {exc.strerror}") from exc
        return self.apply_text(data, str(path), os.path.basename(path))

    def delete(self, kind: str, name: str) -> Deleted:
        """Remove one object's document from the spec dir (`wnr delete`); the daemon stops or
        drains it. Raises SpecWriteError naming what is wrong."""
        return delete_object(self.specs, kind, name, trust=not self.trust_any_writer)


class WaitTimeoutError(WnrError):
    """`wait` gave up: the condition was not met in time."""


def failed_slots(events: EventLog, result: PassResult) -> dict[str, str]:
    """Slots whose last event is a failed action that the plan still has to do: Failed, with
    the error (a dry pass cannot see failures itself)."""
    last = {e.obj: e for e in events.read() if e.obj.startswith("Slot/")}
    pending = {a.obj for a in result.plan.actions}
    return {
        obj: event.message
        for obj, event in last.items()
        if event.type == WARNING and event.reason.startswith("Failed") and obj in pending
    }
