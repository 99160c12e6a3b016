"""Spec loading: a directory of YAML files becomes the desired state the planner reads.

Each pass calls `SpecLoader.load()`. Unchanged files (same inode, size and
mtime) are not parsed again. A file that turns invalid keeps its last good
objects; a file that was never valid, or a directory that cannot be read,
marks the desired state incomplete, which freezes every deletion.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.error import YAMLError

from reconciler.models import ApiObject, Job, Node, Slot
from reconciler.specfile import Parsed, Source, SpecError, locate_field, parse_text

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
    key: tuple[int, int, int]
    parsed: Parsed


def untrusted(st: os.stat_result, trusted_uid: int) -> str | None:
    """Why a spec file or directory may not be trusted (someone else can write it), or None."""
    if st.st_uid not in (0, trusted_uid):
        return f"owned by uid {st.st_uid}, not by wnr's user (uid {trusted_uid}) or root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.filemode(st.st_mode)})"
    return None


class SpecLoader:
    """Loads spec files from directories and explicit files, remembering the last good version.

    With `trusted_uid`, files and directories that anyone but that user or root
    can write are refused like invalid files: a Job spec runs a command.
    """

    def __init__(self, paths: Iterable[Path | str], trusted_uid: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.trusted_uid = trusted_uid
        self._cache: dict[str, _Cached] = {}
        self._last_good: dict[str, Parsed] = {}
        self._last: Desired | None = None
        self._seen: list[tuple[str, Parsed]] = []

    def load(self) -> Desired:
        """Read what changed since the last call and assemble the desired state."""
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
        complete = True
        errors: list[SpecError] = []
        objects: list[tuple[ApiObject, Source]] = []
        seen = [(path, self._parse(path)) for path in files]
        if self._last is not None and _same(seen, self._seen):
            # Not one file changed: the same objects assemble into the same desired state.
            return self._last
        self._seen = seen
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
        for gone in set(self._cache) - set(files):
            del self._cache[gone]
            self._last_good.pop(gone, None)
        known = self._last.sources if self._last is not None else {}
        desired = _assemble(objects, errors, complete, known)
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
            reason = self._distrust(st)
            if reason is not None:
                errors.append(SpecError(str(path), 1, 1, f"refusing spec directory: {reason}"))
                continue
            try:
                names = sorted(e.name for e in os.scandir(path) if e.is_file())
            except OSError as exc:
                errors.append(SpecError(str(path), 1, 1, f"cannot list directory: {exc.strerror}"))
                continue
            prefix = f"{path}/"
            files.extend(prefix + n for n in names if is_spec_file(n))
        return files, errors

    def _distrust(self, st: os.stat_result) -> str | None:
        if self.trusted_uid is None:
            return None
        return untrusted(st, self.trusted_uid)

    def _parse(self, path: str) -> Parsed:
        try:
            st = os.stat(path)
            reason = self._distrust(st)
            if reason is not None:
                return Parsed((), (SpecError(path, 1, 1, f"refusing spec file: {reason}"),))
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._cache.get(path)
            if cached is not None and cached.key == key:
                return cached.parsed
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            return Parsed((), (SpecError(path, 1, 1, f"cannot read file: {reason}"),))
        parsed = parse_text(path, text)
        self._cache[path] = _Cached(key, parsed)
        return parsed


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
                errors.append(
                    _field_error(source, obj, ("metadata", "name"), _duplicate(obj, winner[1]))
                )
                errors.append(
                    _field_error(winner[1], obj, ("metadata", "name"), _duplicate(obj, source))
                )
    return kept


def _assemble(
    objects: list[tuple[ApiObject, Source]],
    errors: list[SpecError],
    complete: bool,
    previous: Mapping[tuple[str, str], Source],
) -> Desired:
    """Check names across files: duplicates, a second Node, Jobs naming missing Slots."""
    node: Node | None = None
    slots: dict[str, Slot] = {}
    jobs: dict[str, Job] = {}
    sources: dict[tuple[str, str], Source] = {}
    kept = _winners(objects, previous, errors)
    for obj, source in sorted(objects, key=lambda pair: pair[1]):
        key = (obj.kind, obj.metadata.name)
        if source not in kept:
            continue
        if isinstance(obj, Node):
            if node is not None:
                message = (
                    f"at most one Node may exist; Node/{node.metadata.name} is already defined"
                )
                errors.append(_field_error(source, obj, ("kind",), message))
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
            errors.append(_field_error(source, job, ("spec", "slot"), message))
    return Desired(node, slots, jobs, sources, tuple(errors), complete)


def _duplicate(obj: ApiObject, other: Source) -> str:
    return f"duplicate {obj.kind} name {obj.metadata.name!r} (also defined in {other.path})"


def _field_error(source: Source, obj: ApiObject, loc: tuple[str, ...], message: str) -> SpecError:
    try:
        with open(source.path, encoding="utf-8") as handle:
            line, column = locate_field(source.path, handle.read(), source.document, loc)
    except (OSError, IndexError, YAMLError):
        # The file changed since its objects were last good (it may not even parse now):
        # the error still names the object and field, at the top of the file.
        line, column = 1, 1
    return SpecError(source.path, line, column, message, obj.kind, obj.metadata.name, ".".join(loc))
