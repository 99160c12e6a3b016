"""The object store in the state dir: each object's identity and last good spec, and its status.

Host layer, below the pass (reconciler.apply.registry keeps the identities;
reconciler.reconcile publishes the statuses) and the CLI (reconciler.client
reads them). Layout, each file written atomically (write, rename):

    <state>/objects/<kind>/<name>.json   uid, creationTimestamp, generation, the
                                         normalized spec and its file (model.stored)
    <state>/status/<kind>/<name>.json    the object as the daemon last published it:
                                         metadata, spec, status with observedGeneration
    <state>/daemon.json                  the daemon: pid, spec dirs, root, version, last pass

`<kind>` is `nodes`, `slots` or `jobs`. The stored objects are read once per
process and then kept in memory beside the files; a file that does not parse
is logged and left out (as if the object had never been seen).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.host.atomicfile import read_json, write_json
from reconciler.model.api import ApiObject
from reconciler.model.desired import Source
from reconciler.model.stored import ObjectKey, StoredObject

log = logging.getLogger("wnr.store")

FOLDERS = {"Node": "nodes", "Slot": "slots", "Job": "jobs"}
DAEMON_RECORD = "daemon.json"


def _entries(directory: Path) -> Iterator[tuple[str, str, Path]]:
    """(kind, name, path) of every `<kind>/<name>.json` under `directory`."""
    for kind, folder in FOLDERS.items():
        try:
            names = sorted(os.listdir(directory / folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                yield kind, name.removesuffix(".json"), directory / folder / name


class ObjectStore:
    """`<state>/objects`: the identities and last good specs, read once, then kept in memory."""

    def __init__(self, state_root: Path | str) -> None:
        self.directory = Path(state_root) / "objects"
        self._objects: dict[ObjectKey, StoredObject] | None = None

    def path(self, key: ObjectKey) -> Path:
        """The file of one object (names are validated DNS labels)."""
        return self.directory / FOLDERS[key[0]] / f"{key[1]}.json"

    def objects(self) -> Mapping[ObjectKey, StoredObject]:
        """Every stored object."""
        if self._objects is None:
            self._objects = {}
            for kind, name, path in _entries(self.directory):
                data = read_json(str(path))
                try:
                    stored = StoredObject.from_json(data) if data is not None else None
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("%s: not a stored object (%s); ignored", path, exc)
                    continue
                if stored is not None and stored.key == (kind, name):
                    self._objects[stored.key] = stored
        return self._objects

    def last_good(self, path: str) -> Sequence[tuple[ApiObject, Source]]:
        """The stored objects of one spec file that are not being deleted, validated again,
        in document order: what the file held when it last validated."""
        found: list[tuple[ApiObject, Source]] = []
        for stored in self.objects().values():
            if stored.source.path != path or stored.deleted_at is not None:
                continue
            try:
                found.append((stored.api_object(), stored.source))
            except ValidationError as exc:
                # Only a stored spec from another wnr version can fail: then the file's
                # objects are unknown, which freezes deletions (the loader's rule).
                log.warning("%s/%s: the stored spec no longer validates: %s", *stored.key, exc)
                return ()
        return sorted(found, key=lambda pair: pair[1])

    def save(self, stored: StoredObject) -> None:
        """Write one object (raises OSError; memory follows only a successful write)."""
        path = self.path(stored.key)
        os.makedirs(path.parent, exist_ok=True)
        write_json(str(path), stored.to_json())
        self._known()[stored.key] = stored

    def remove(self, key: ObjectKey) -> None:
        """Forget one object for good (raises OSError but for an absent file)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(key))
        self._known().pop(key, None)

    def _known(self) -> dict[ObjectKey, StoredObject]:
        self.objects()
        assert self._objects is not None
        return self._objects


class StatusBoard:
    """`<state>/status` and `<state>/daemon.json`: what the daemon publishes, written only
    when it differs from what the file holds."""

    def __init__(self, state_root: Path | str) -> None:
        self.root = Path(state_root)
        self.directory = self.root / "status"
        self._written: dict[ObjectKey, dict[str, Any]] | None = None
        self._daemon: dict[str, Any] | None = None
        self._last_pass = 0.0

    def read_all(self) -> dict[ObjectKey, dict[str, Any]]:
        """Every published object, by (kind, name)."""
        found: dict[ObjectKey, dict[str, Any]] = {}
        for kind, name, path in _entries(self.directory):
            data = read_json(str(path))
            if data is not None:
                found[(kind, name)] = data
        return found

    def read_one(self, key: ObjectKey) -> dict[str, Any] | None:
        """One published object, if there is one."""
        return read_json(str(self._path(key)))

    def publish(self, objects: Mapping[ObjectKey, dict[str, Any]]) -> int:
        """Make the published set `objects`: write the changed ones, remove the gone ones;
        returns how many files changed (raises OSError, leaving the rest for the next call)."""
        if self._written is None:
            self._written = self.read_all()
        changed = 0
        for key in [k for k in self._written if k not in objects]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(key))
            del self._written[key]
            changed += 1
        for key, data in objects.items():
            written = self._written.get(key)
            if written is data:
                continue
            if written == data:
                # Read back from disk (a restarted daemon) or made anew alike: compared by
                # identity from now on, not key by key on every publishing pass.
                self._written[key] = data
                continue
            path = self._path(key)
            os.makedirs(path.parent, exist_ok=True)
            write_json(str(path), data)
            self._written[key] = data
            changed += 1
        return changed

    def forget(self) -> None:
        """Forget what was written (the files went with a deleted state dir): the next
        `publish` and `write_daemon` write everything again."""
        self._written, self._daemon = {}, None

    def _path(self, key: ObjectKey) -> Path:
        return self.directory / FOLDERS[key[0]] / f"{key[1]}.json"

    def write_daemon(self, record: dict[str, Any], last_pass: float | None) -> bool:
        """Write the daemon's record (with `lastPass`) when it changed, or when `last_pass`
        is given (a heartbeat); returns whether it wrote."""
        if record == self._daemon and last_pass is None:
            return False
        written = self._last_pass if last_pass is None else last_pass
        write_json(str(self.root / DAEMON_RECORD), {**record, "lastPass": written})
        self._daemon, self._last_pass = record, written
        return True

    def read_daemon(self) -> dict[str, Any] | None:
        """The daemon's record, if one was written."""
        return read_json(str(self.root / DAEMON_RECORD))
