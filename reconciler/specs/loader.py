"""Spec loading: a directory of YAML files becomes the desired state the planner reads.

Each pass calls `SpecLoader.load()`. Unchanged files (same inode, size and
mtime) are not parsed again; told nothing changed (the daemon's inotify watch),
it does not even look. A file that turns invalid keeps its last good
objects; a file that was never valid, or a directory that cannot be read,
marks the desired state incomplete, which freezes every deletion. A file that
has no last good version in this process may still have one in the object
store (`fallback`, reconciler.host.objectstore): a daemon restarted, or a
one-shot `wnr plan` or `apply`, meeting a file broken since before it began,
plans with the objects that file held when it last validated.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.model.api import ApiObject, SpecLimits
from reconciler.model.desired import Desired, Source, SpecError
from reconciler.specs.assembly import assemble
from reconciler.specs.parse import Parsed, parse_text
from reconciler.specs.read import Content, FileKey, Outcome, Unreadable, read_spec, untrusted
from reconciler.specs.yamlbounds import Refusal, decode

log = logging.getLogger("wnr.specs")

SUFFIXES = (".yaml", ".yml")


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

    def __init__(
        self,
        paths: Iterable[Path | str],
        trusted_uid: int | None = None,
        fallback: Callable[[str], Sequence[tuple[ApiObject, Source]]] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.trusted_uid = trusted_uid
        self.fallback = fallback
        self.limits = SpecLimits()
        self._cache: dict[str, _Cached] = {}
        self._last_good: dict[str, Parsed] = {}
        self._last: Desired | None = None
        self._seen: list[tuple[str, Parsed]] = []
        self._refused: dict[str, Parsed] = {}
        # Whether the last load met only what it can trust unchanged until told otherwise:
        # every directory listed, every file read (an unreadable one is looked at again).
        self._settled = False

    def load(self, unchanged: bool = False) -> Desired:
        """Read what changed since the last call and assemble the desired state.

        `unchanged`: the caller knows no spec file or directory changed since the last call
        (the daemon's inotify watch, between resyncs); the last desired state is returned
        without looking, unless that call met a directory or file it must look at again."""
        if unchanged and self._settled and self._last is not None:
            return self._last
        self._settled = True
        before = (dict(self._last_good), self._last, self._seen)
        desired = self._load()
        limits = desired.node.spec.spec_limits if desired.node is not None else SpecLimits()
        if limits != self.limits:
            # Files refused under the old limits may pass the new ones, and the reverse; what
            # this call read under the old limits is no one's last good spec.
            self.limits = limits
            self._cache.clear()
            self._last_good, self._last, self._seen = before
            desired = self._load()
        return desired

    def _load(self) -> Desired:
        files, listing_errors = self._list()
        if listing_errors:
            # An unreadable or vanished directory freezes the desired state.
            self._settled = False
            previous = self._last or Desired()
            return Desired(
                previous.node,
                previous.slots,
                previous.jobs,
                previous.sources,
                tuple(listing_errors),
                complete=False,
            )
        seen = self._parse_within_budget(files)
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
                kept = good.objects if good is not None else self._stored(path)
                objects.extend(kept)
                if good is None and not kept:
                    complete = False
            else:
                self._last_good[path] = parsed
                objects.extend(parsed.objects)
        present = {path for path, _ in seen}
        self._cache = {p: c for p, c in self._cache.items() if p in present}
        self._last_good = {p: g for p, g in self._last_good.items() if p in present}
        self._refused = {p: r for p, r in self._refused.items() if p in present}
        known = self._last.sources if self._last is not None else {}
        desired = assemble(objects, errors, complete, known, self._text)
        self._last = desired
        return desired

    def _stored(self, path: str) -> Sequence[tuple[ApiObject, Source]]:
        """The objects the store kept of a file this process never saw valid."""
        return self.fallback(path) if self.fallback is not None else ()

    def _parse_within_budget(self, files: list[str]) -> list[tuple[str, Parsed]]:
        """Each file's parse, in spec order, until the node holds `maxObjects` objects: later
        files are that many errors, not read (100,000 jobs once stalled the loop for 35 s);
        like any error, they keep their last good objects, which count too."""
        limit = self.limits.max_objects
        seen: list[tuple[str, Parsed]] = []
        taken = 0
        for path in files:
            if taken >= limit:
                seen.append((path, self._over_budget(path, f"not read: {_full(limit)}")))
                taken += len(self._last_good[path].objects) if path in self._last_good else 0
                continue
            parsed = self._parse(path)
            if parsed is None:
                continue
            count = len(parsed.objects) or (
                len(self._last_good[path].objects) if path in self._last_good else 0
            )
            if taken + count > limit and parsed.objects:
                message = f"its {count} objects are refused: {_full(limit)}"
                parsed = self._over_budget(path, message)
            taken += count
            seen.append((path, parsed))
        return seen

    def _over_budget(self, path: str, message: str) -> Parsed:
        """The same error object while the reason is the same (so an unchanged spec set is
        recognised as unchanged)."""
        known = self._refused.get(path)
        if known is not None and known.errors[0].message == message:
            return known
        self._refused[path] = Parsed((), (SpecError(path, 1, 1, message),))
        return self._refused[path]

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
            self._settled = False
            return Parsed((), (SpecError(path, 1, 1, got.message),))
        assert isinstance(got, Content)
        parsed = guarded_parse(path, got.data, self.limits.max_documents)
        self._cache[path] = _Cached(got.key, parsed)
        return parsed


def _full(limit: int) -> str:
    return f"the spec set already holds {limit} objects (Node spec.specLimits.maxObjects)"


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
