"""Spec loading: a directory of YAML files becomes the desired state the planner reads.

Each pass calls `SpecLoader.load()`. Unchanged files (same inode, size and
mtime) are not parsed again. A file that turns invalid keeps its last good
objects; a file that was never valid, or a directory that cannot be read,
marks the desired state incomplete, which freezes every deletion.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.error import YAMLError

from reconciler.models import ApiObject, Job, Node, Slot, SpecLimits
from reconciler.specfile import Parsed, Source, SpecError, locate_field, parse_text
from reconciler.specread import Content, FileKey, Outcome, Unreadable, read_spec, untrusted
from reconciler.yamlbounds import Refusal, decode

log = logging.getLogger("wnr.specs")
# Reads a file's text again, by the loader's rules; None when it cannot.
Reader = Callable[[str], str | None]

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Desired:
    """What the admin asked for, as validated objects in spec order (file path, then document)."""

    node: Node | None = None
    slots: Mapping[str, Slot] = field(default_factory=dict)
    jobs: Mapping[str, Job] = field(default_factory=dict)
    sources: Mapping[tuple[str, str], Source] = field(default_factory=dict)
    errors: tuple[SpecError, ...] = ()
    # False when objects may exist that we cannot see (a file never parsed, an
    # unreadable directory): the planner then deletes nothing.
    complete: bool = True


def is_spec_file(name: str) -> bool:
    """Whether a directory entry is a spec file; dotfiles, editor backups and temp files are not."""
    return name.endswith(SUFFIXES) and not name.startswith((".", "#", "~"))


@dataclass
class _Cached:
    key: FileKey
    parsed: Parsed


class SpecLoader:
    """Loads spec files from directories and explicit files, remembering the last good version.

    With `trusted_uid`, files and directories that anyone but that user or root
    can write are refused like invalid files: a Job spec runs a command. The
    Node's `specLimits` bound every file as soon as the Node is loaded.
    """

    def __init__(self, paths: Iterable[Path | str], trusted_uid: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.trusted_uid = trusted_uid
        self.limits = SpecLimits()
        self._cache: dict[str, _Cached] = {}
        self._last_good: dict[str, Parsed] = {}
        self._last: Desired | None = None
        self._seen: list[tuple[str, Parsed]] = []

    def load(self) -> Desired:
        """Read what changed since the last call and assemble the desired state."""
        desired = self._load()
        limits = desired.node.spec.spec_limits if desired.node is not None else SpecLimits()
        if limits != self.limits:
            # Files refused under the old limits may pass the new ones, and the reverse.
            self.limits = limits
            self._cache.clear()
            desired = self._load()
        return desired

    def _load(self) -> Desired:
        files, listing_errors = self._list()
        if listing_errors:
            # An unreadable or vanished directory freezes the desired state.
            previous = self._last or Desired()
            return Desired(
                previous.node,
                previous.slots,
                previous.jobs,
                previous.sources,
                tuple(listing_errors),
                complete=False,
            )
        seen = [(path, parsed) for path in files if (parsed := self._parse(path)) is not None]
        if self._last is not None and _same(seen, self._seen):
            # Not one file changed: the same objects assemble into the same desired state.
            return self._last
        self._seen = seen
        complete = True
        errors: list[SpecError] = []
        objects: list[tuple[ApiObject, Source]] = []
        for path, parsed in seen:
            if parsed.errors:
                errors.extend(parsed.errors)
                good = self._last_good.get(path)
                if good is None:
                    complete = False
                else:
                    objects.extend(good.objects)
            else:
                self._last_good[path] = parsed
                objects.extend(parsed.objects)
        present = {path for path, _ in seen}
        self._cache = {p: c for p, c in self._cache.items() if p in present}
        self._last_good = {p: g for p, g in self._last_good.items() if p in present}
        known = self._last.sources if self._last is not None else {}
        desired = _assemble(objects, errors, complete, known, self._text)
        self._last = desired
        return desired

    def _list(self) -> tuple[list[str], list[SpecError]]:
        files: list[str] = []
        errors: list[SpecError] = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError as exc:
                errors.append(SpecError(str(path), 1, 1, f"cannot read: {exc.strerror}"))
                continue
            if not stat.S_ISDIR(st.st_mode):
                files.append(str(path))
                continue
            reason = untrusted(st, self.trusted_uid) if self.trusted_uid is not None else None
            if reason is not None:
                errors.append(SpecError(str(path), 1, 1, f"refusing spec directory: {reason}"))
                continue
            try:
                # Every entry with a spec file's name, whatever its type: a FIFO or a dangling
                # symlink is that path's error (its objects freeze), never silently skipped.
                names = sorted(e.name for e in os.scandir(path) if is_spec_file(e.name))
            except OSError as exc:
                errors.append(SpecError(str(path), 1, 1, f"cannot list directory: {exc.strerror}"))
                continue
            files.extend(f"{path}/{n}" for n in names)
        return files, errors

    def _read(self, path: str, known: FileKey | None = None) -> Content | Unreadable | Outcome:
        return read_spec(
            path, trusted_uid=self.trusted_uid, max_bytes=self.limits.max_file_size, known=known
        )

    def _text(self, path: str) -> str | None:
        """A file's text again (for positions of cross-object errors), by the same rules."""
        got = self._read(path)
        text = decode(got.data) if isinstance(got, Content) else None
        return text if isinstance(text, str) else None

    def _parse(self, path: str) -> Parsed | None:
        """The parse of one file, from the cache while unchanged; None when it is gone."""
        cached = self._cache.get(path)
        got = self._read(path, cached.key if cached is not None else None)
        if got is Outcome.GONE:
            return None
        if got is Outcome.UNCHANGED and cached is not None:
            return cached.parsed
        if isinstance(got, Unreadable):
            # Not cached: the next pass looks again (a dangling symlink's target may return).
            return Parsed((), (SpecError(path, 1, 1, got.message),))
        assert isinstance(got, Content)
        parsed = guarded_parse(path, got.data, self.limits.max_documents)
        self._cache[path] = _Cached(got.key, parsed)
        return parsed


def guarded_parse(path: str, data: bytes, max_documents: int) -> Parsed:
    """Decode and parse a file's bytes; whatever goes wrong is that file's error, never the
    caller's exception (a parser bug must not stop the node's reconciler)."""
    try:
        text = decode(data)
        if isinstance(text, Refusal):
            return Parsed((), (SpecError(path, text.line, text.column, text.message),))
        return parse_text(path, text, max_documents)
    except Exception as exc:  # RecursionError and MemoryError included
        log.exception("%s: unexpected error while parsing", path)
        message = f"cannot parse: {type(exc).__name__}: {str(exc)[:200]}"
        return Parsed((), (SpecError(path, 1, 1, message),))


def _same(now: list[tuple[str, Parsed]], before: list[tuple[str, Parsed]]) -> bool:
    """Whether the same files gave the very same parse results (the cache hands out one
    object per unchanged file)."""
    if len(now) != len(before):
        return False
    pairs = zip(now, before, strict=True)
    return all(path == old_path and parsed is old for (path, parsed), (old_path, old) in pairs)


def _winners(
    objects: list[tuple[ApiObject, Source]],
    previous: Mapping[tuple[str, str], Source],
    errors: list[SpecError],
    reader: Reader,
) -> set[Source]:
    """For each name defined twice, report both places and keep one: the copy that was
    already in effect (so adding a duplicate never replaces running work), else the first."""
    places: dict[tuple[str, str], list[tuple[ApiObject, Source]]] = {}
    for obj, source in sorted(objects, key=lambda pair: pair[1]):
        places.setdefault((obj.kind, obj.metadata.name), []).append((obj, source))
    kept: set[Source] = set()
    for key, found in places.items():
        before = previous.get(key)
        winner = next((pair for pair in found if before and pair[1].path == before.path), found[0])
        kept.add(winner[1])
        for obj, source in found:
            if source != winner[1]:
                name = ("metadata", "name")
                errors.append(_field_error(source, obj, name, _duplicate(obj, winner[1]), reader))
                errors.append(_field_error(winner[1], obj, name, _duplicate(obj, source), reader))
    return kept


def _assemble(
    objects: list[tuple[ApiObject, Source]],
    errors: list[SpecError],
    complete: bool,
    previous: Mapping[tuple[str, str], Source],
    reader: Reader,
) -> Desired:
    """Check names across files: duplicates, a second Node, Jobs naming missing Slots."""
    node: Node | None = None
    slots: dict[str, Slot] = {}
    jobs: dict[str, Job] = {}
    sources: dict[tuple[str, str], Source] = {}
    kept = _winners(objects, previous, errors, reader)
    for obj, source in sorted(objects, key=lambda pair: pair[1]):
        key = (obj.kind, obj.metadata.name)
        if source not in kept:
            continue
        if isinstance(obj, Node):
            if node is not None:
                message = (
                    f"at most one Node may exist; Node/{node.metadata.name} is already defined"
                )
                errors.append(_field_error(source, obj, ("kind",), message, reader))
                continue
            node = obj
        elif isinstance(obj, Slot):
            slots[obj.metadata.name] = obj
        else:
            jobs[obj.metadata.name] = obj
        sources[key] = source
    for name, job in jobs.items():
        if job.spec.slot not in slots:
            source = sources[("Job", name)]
            message = f"Slot {job.spec.slot!r} does not exist"
            errors.append(_field_error(source, job, ("spec", "slot"), message, reader))
    return Desired(node, slots, jobs, sources, tuple(errors), complete)


def _duplicate(obj: ApiObject, other: Source) -> str:
    return f"duplicate {obj.kind} name {obj.metadata.name!r} (also defined in {other.path})"


def _field_error(
    source: Source, obj: ApiObject, loc: tuple[str, ...], message: str, reader: Reader
) -> SpecError:
    text = reader(source.path)
    line, column = 1, 1
    if text is not None:
        # The file may have changed since its objects were last good (it may not even parse
        # now): the error then still names the object and field, at the top of the file.
        with contextlib.suppress(IndexError, YAMLError):
            line, column = locate_field(source.path, text, source.document, loc)
    return SpecError(source.path, line, column, message, obj.kind, obj.metadata.name, ".".join(loc))
