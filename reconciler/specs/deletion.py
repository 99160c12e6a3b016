"""`wnr delete job|slot NAME`: one object cut out of the spec file that defines it.

Beside spec loading, on the rules of `writer` (whose atomic write, trust and
owner it shares): the file is found by a real `SpecLoader`, read and parsed
again by the loader's rules, and refused unless it parses now. The document
is cut out by `documents`, and the rest must parse into exactly the other
objects before it replaces the file; a file left without objects is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.host.atomicfile import commit_file, directory_lock, remove_file
from reconciler.model.api import ApiObject, SpecLimits
from reconciler.model.desired import Desired
from reconciler.specs.documents import without_document
from reconciler.specs.loader import SpecLoader, guarded_parse
from reconciler.specs.parse import Parsed, parse_text
from reconciler.specs.read import Content, Unreadable, read_spec
from reconciler.specs.writer import SpecWriteError, refuse_symlink, stage_spec, trusted_uid_for

# `wnr delete job|slot` and the plurals, as `wnr get` takes them.
KINDS = {"job": "Job", "jobs": "Job", "slot": "Slot", "slots": "Slot"}


@dataclass(frozen=True)
class Deleted:
    """What `delete_object` did: the file it edited or removed, and what to warn about."""

    kind: str
    name: str
    path: Path
    file_removed: bool
    warnings: list[str]

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} deleted"


def delete_object(spec_dir: Path, kind: str, name: str, *, trust: bool = True) -> Deleted:
    """Remove the Job or Slot `name` from the spec file that defines it: the file goes when
    that was its only object, else that document is cut out and every other byte stays."""
    spec_dir = Path(spec_dir)
    kind = KINDS.get(kind.lower(), kind)
    if kind not in ("Job", "Slot"):
        raise SpecWriteError(f"cannot delete a {kind}: only jobs and slots are deleted this way")
    trusted_uid = trusted_uid_for(spec_dir, trust)
    with directory_lock(str(spec_dir)):
        loader = SpecLoader([spec_dir], trusted_uid=trusted_uid)
        desired = loader.load()
        source = desired.sources.get((kind, name))
        if source is None:
            raise SpecWriteError(_unknown(desired, spec_dir, kind, name))
        text, parsed = _read_parsed(source.path, trusted_uid, loader.limits)
        index = next(
            (s.document for o, s in parsed.objects if (o.kind, o.metadata.name) == (kind, name)),
            None,
        )
        if index is None:  # rewritten since the loader read it
            raise SpecWriteError(f"{source.path}: {kind}/{name} is no longer defined there")
        others = [o for o, s in parsed.objects if s.document != index]
        if others:
            _rewrite_without(source.path, text, index, others, loader.limits)
        else:
            _unlink(source.path)
        warnings = _orphans(desired, kind, name) + _still_defined(spec_dir, trusted_uid, kind, name)
    return Deleted(kind, name, Path(source.path), not others, warnings)


def _unknown(desired: Desired, spec_dir: Path, kind: str, name: str) -> str:
    objects = desired.jobs if kind == "Job" else desired.slots
    known = ", ".join(sorted(objects)) or "none"
    message = f"no {kind} named {name!r} in {spec_dir}; known {kind.lower()}s: {known}"
    loaded = {source.path for source in desired.sources.values()}
    unloaded = [str(error) for error in desired.errors if error.path not in loaded]
    if unloaded:
        # A file that fails to parse now is not edited blind; its error says what to fix.
        shown = "\n".join(unloaded[:10])
        message += f"\nthese do not load now, and may define it:\n{shown}"
    return message


def _read_parsed(path: str, trusted_uid: int | None, limits: SpecLimits) -> tuple[str, Parsed]:
    """A spec file's text and parse by the loader's rules; refused unless it parses now (its
    objects are then frozen at their last good spec, and editing it blind could lose text)."""
    got = read_spec(path, trusted_uid=trusted_uid, max_bytes=limits.max_file_size)
    if isinstance(got, Unreadable):
        raise SpecWriteError(f"{path}: {got.message}")
    if not isinstance(got, Content):
        raise SpecWriteError(f"{path}: removed meanwhile")
    parsed = guarded_parse(path, got.data, limits.max_documents)
    if parsed.errors:
        errors = "\n".join(str(error) for error in parsed.errors)
        raise SpecWriteError(f"refusing to edit {path}, which does not parse now:\n{errors}")
    return got.data.decode("utf-8").removeprefix("\ufeff"), parsed


def _rewrite_without(
    path: str, text: str, index: int, others: list[ApiObject], limits: SpecLimits
) -> None:
    """Replace the file with its text less document `index`, once the rest is known to parse
    into exactly the other objects."""
    refuse_symlink(path)
    remaining = without_document(text, index)
    kept = parse_text(path, remaining, limits.max_documents)
    if kept.errors or [o for o, _ in kept.objects] != others:
        raise SpecWriteError(
            f"{path}: cannot cut document {index + 1} out without changing the others; "
            "edit the file by hand"
        )
    tmp = stage_spec(path, remaining.encode(), Path(path).parent)
    try:
        commit_file(tmp, path)
    except OSError as exc:
        raise SpecWriteError(f"cannot write {path}: {exc.strerror}") from None


def _unlink(path: str) -> None:
    try:
        remove_file(path)
    except OSError as exc:
        raise SpecWriteError(f"cannot remove {path}: {exc.strerror}") from None


def _still_defined(spec_dir: Path, trusted_uid: int | None, kind: str, name: str) -> list[str]:
    """A name defined twice (an error, both reported) is still defined after one copy goes."""
    after = SpecLoader([spec_dir], trusted_uid=trusted_uid).load()
    source = after.sources.get((kind, name))
    if source is None:
        return []
    return [f"{kind.lower()}/{name} is still defined in {source.path}"]


def _orphans(desired: Desired, kind: str, name: str) -> list[str]:
    """A deleted Slot drains; the Jobs that still name it then have no slot to run in."""
    if kind != "Slot":
        return []
    jobs = [job.metadata.name for job in desired.slot_jobs(name)]
    if not jobs:
        return []
    named = ", ".join(f"job/{job}" for job in jobs)
    verb = "names" if len(jobs) == 1 else "name"
    return [f"slot/{name} drains, but {named} still {verb} it and cannot run without it"]
