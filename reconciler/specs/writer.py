"""Writing the spec directory: `wnr apply -f` adds or replaces a file (and `deletion`, on
the same rules, cuts one object out); the daemon sees the change (inotify) and reconciles.

Beside spec loading, on the same rules: the input is parsed by `parse`, the
spec set it would make is assembled by a real `SpecLoader` (the daemon's own
code) over the directory with the new file in place, and only then is the
file renamed in (`host.atomicfile`: a dot-named temporary file, which the
loader's listing skips, synced, mode 0644, owned like the directory when
written by root). Writers of one directory take turns (a flock on it).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.host.atomicfile import (
    commit_file,
    directory_lock,
    discard_file,
    stage_file,
)
from reconciler.model.api import ApiObject, SpecLimits
from reconciler.model.desired import Desired, Source
from reconciler.model.errors import WnrError
from reconciler.specs.loader import SUFFIXES, SpecLoader, guarded_parse, is_spec_file
from reconciler.specs.parse import Parsed

SPEC_MODE = 0o644


class SpecWriteError(WnrError):
    """An apply or delete that was refused; nothing was written. The message says why."""


@dataclass(frozen=True)
class AppliedObject:
    """One object of an applied file and what applying did to it."""

    kind: str
    name: str
    outcome: str  # created, configured, unchanged, or deleted (gone from a replaced file)

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} {self.outcome}"


@dataclass(frozen=True)
class Applied:
    """What `apply_file` wrote: the file, its objects, and the other files' errors."""

    path: Path
    objects: list[AppliedObject]
    warnings: list[str]


def apply_file(
    spec_dir: Path,
    text: str | bytes,
    source_name: str,
    target: str | None = None,
    *,
    trust: bool = True,
) -> Applied:
    """Write `text` as the spec file `target` of `spec_dir` (None: `<kind>-<name>.yaml` after
    its first object), replacing a file of that name; refused with a `SpecWriteError`, and
    nothing written, when the text or the spec set it would make has an error of its own.

    Errors name `source_name` (the file as given, or `<stdin>`). With `trust`, files are
    trusted as the daemon trusts them when it runs as the directory's owner.
    """
    spec_dir = Path(spec_dir)
    data = text.encode() if isinstance(text, str) else text
    trusted_uid = trusted_uid_for(spec_dir, trust)
    with directory_lock(str(spec_dir)):
        loader = SpecLoader([spec_dir], trusted_uid=trusted_uid)
        before = loader.load()
        _refuse_unlisted(before, spec_dir)
        parsed = _parse_input(data, source_name, loader.limits)
        name = target if target is not None else _derived_name(parsed.objects[0][0])
        path = _target_path(spec_dir, name)
        refuse_symlink(path)
        _refuse_collisions(parsed, before, path, source_name)
        warnings = _write_checked(spec_dir, path, data, source_name, trusted_uid)
    objects = [
        AppliedObject(o.kind, o.metadata.name, _outcome(o, before)) for o, _ in parsed.objects
    ]
    return Applied(Path(path), objects + _dropped(parsed, before, path), warnings)


def trusted_uid_for(spec_dir: Path, trust: bool) -> int | None:
    """The uid whose files the check trusts: the directory's owner, as the daemon does when it
    runs as that user (root's files are trusted too). Refused unless it is a directory."""
    try:
        st = os.stat(spec_dir)
    except OSError as exc:
        raise SpecWriteError(f"cannot read spec directory {spec_dir}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SpecWriteError(f"spec directory {spec_dir} is not a directory")
    return st.st_uid if trust else None


def _owner(spec_dir: Path) -> tuple[int, int] | None:
    """Root gives what it writes to the directory's owner, whose daemon would refuse a file
    owned by anyone else; others cannot give files away."""
    if os.geteuid() != 0:
        return None
    st = os.stat(spec_dir)
    return st.st_uid, st.st_gid


def _refuse_unlisted(before: Desired, spec_dir: Path) -> None:
    """A directory the daemon cannot list, or refuses (others can write it), would run
    nothing of the new file."""
    refused = [str(error) for error in before.errors if error.path == str(spec_dir)]
    if refused:
        raise SpecWriteError("\n".join(refused))


def _parse_input(data: bytes, source_name: str, limits: SpecLimits) -> Parsed:
    if len(data) > limits.max_file_size:
        raise SpecWriteError(
            f"{source_name}: {len(data)} bytes, over the spec directory's limit of "
            f"{limits.max_file_size} bytes per file (Node spec.specLimits.maxFileSize)"
        )
    parsed = guarded_parse(source_name, data, limits.max_documents)
    if parsed.errors:
        raise SpecWriteError("\n".join(str(error) for error in parsed.errors))
    if not parsed.objects:
        raise SpecWriteError(f"{source_name}: no objects to apply (every document is empty)")
    return parsed


def _derived_name(obj: ApiObject) -> str:
    return f"{obj.kind.lower()}-{obj.metadata.name}.yaml"


def _target_path(spec_dir: Path, name: str) -> str:
    base = os.path.basename(name)
    if not base.endswith(SUFFIXES):
        raise SpecWriteError(f"{name}: a spec file's name must end in .yaml or .yml")
    if not is_spec_file(base):
        raise SpecWriteError(f"{name}: the daemon skips files named like this (dot, #, ~)")
    return f"{spec_dir}/{base}"  # formatted as the loader lists it, so sources compare equal


def _refuse_collisions(parsed: Parsed, before: Desired, path: str, source_name: str) -> None:
    """An object of the input that another file already defines: two files would fight over
    it (the copy in effect wins, and the new file would be an error)."""
    clashes = []
    for obj, source in parsed.objects:
        where = _source_of(before, obj)
        if where is not None and where.path != path:
            clashes.append(
                f"{source_name}: {obj.kind}/{obj.metadata.name} (document {source.document + 1})"
                f" is already defined in {where.path}: edit or delete it there"
            )
    if clashes:
        raise SpecWriteError("\n".join(clashes))


def _source_of(desired: Desired, obj: ApiObject) -> Source | None:
    if obj.kind == "Node" and desired.node is not None:
        return desired.sources.get(("Node", desired.node.metadata.name))
    return desired.sources.get((obj.kind, obj.metadata.name))


def _write_checked(
    spec_dir: Path, path: str, data: bytes, source_name: str, trusted_uid: int | None
) -> list[str]:
    """Stage the file, load the spec set with it in place of `path`, and rename it in when
    none of the errors is the new file's; the other files' errors come back as warnings."""
    tmp = stage_spec(path, data, spec_dir)
    try:
        files = sorted({*_spec_files(spec_dir), path})  # the loader's order, new file in place
        paths = [tmp if p == path else p for p in files]
        checked = SpecLoader(paths, trusted_uid=trusted_uid).load()
        own = [replace(e, path=source_name) for e in checked.errors if e.path == tmp]
        if own:
            raise SpecWriteError("\n".join(str(e).replace(tmp, source_name) for e in own))
        warnings = [str(e).replace(tmp, path) for e in checked.errors if e.path != tmp]
        commit_file(tmp, path)
    except BaseException:
        discard_file(tmp)
        raise
    return warnings


def _spec_files(spec_dir: Path) -> list[str]:
    try:
        return [f"{spec_dir}/{n}" for n in sorted(os.listdir(spec_dir)) if is_spec_file(n)]
    except OSError as exc:
        raise SpecWriteError(f"cannot list spec directory {spec_dir}: {exc.strerror}") from None


def stage_spec(path: str, data: bytes, spec_dir: Path) -> str:
    try:
        return stage_file(path, data, SPEC_MODE, _owner(spec_dir))
    except OSError as exc:
        raise SpecWriteError(f"cannot write {path}: {exc.strerror}") from None


def refuse_symlink(path: str) -> None:
    """A spec file that is a symlink (to a checkout, say) is edited where it points, by hand:
    renaming a new file over it would quietly cut the link."""
    if os.path.islink(path):
        raise SpecWriteError(f"{path} is a symlink to {os.readlink(path)}: edit that file")


def _dropped(parsed: Parsed, before: Desired, path: str) -> list[AppliedObject]:
    """The objects of the replaced file that the new one no longer has: the daemon deletes
    them (a file replaced is a file edited)."""
    now = {(obj.kind, obj.metadata.name) for obj, _ in parsed.objects}
    gone = [key for key, source in before.sources.items() if source.path == path]
    return [
        AppliedObject(kind, name, "deleted")
        for kind, name in sorted(gone)
        if (kind, name) not in now
    ]


def _outcome(obj: ApiObject, before: Desired) -> str:
    if obj.kind == "Node":
        old: ApiObject | None = before.node
    else:
        old = (before.slots if obj.kind == "Slot" else before.jobs).get(obj.metadata.name)
    if old is None or old.metadata.name != obj.metadata.name:
        return "created"
    return "unchanged" if old == obj else "configured"
