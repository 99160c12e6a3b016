"""Parse one spec file into API objects, or into errors that point at the offending value.

The first stage of spec loading (`specs` assembles a directory from these).
Files are read with ruamel's C safe loader; only when something is wrong is
the file parsed again with the round-trip loader, whose node positions turn a
pydantic error location into `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler.models import KINDS, ApiObject


@dataclass(frozen=True, order=True)
class Source:
    """Where an object was written: the file and the index of its document in that file."""

    path: str
    document: int


@dataclass(frozen=True)
class SpecError:
    """A problem with a spec, formatted as `file:line:col: Kind/name: field: message`."""

    path: str
    line: int
    column: int
    message: str
    kind: str = ""
    name: str = ""
    field: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        parts = [where]
        if self.kind or self.name:
            parts.append(f"{self.kind or '?'}/{self.name or '?'}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


@dataclass(frozen=True)
class Parsed:
    """The outcome of one file: its objects (with sources), or the errors that reject it."""

    objects: tuple[tuple[ApiObject, Source], ...]
    errors: tuple[SpecError, ...]


_FAST = YAML(typ="safe", pure=False)


def _round_trip() -> YAML:
    # A fresh instance per call: ruamel's YAML objects are not safe to share between threads.
    return YAML(typ="rt")


def parse_text(path: str, text: str) -> Parsed:
    """Parse and validate every document of a file's text."""
    try:
        documents = list(_FAST.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return Parsed((), (SpecError(path, line, column, f"YAML syntax error: {problem}"),))
    except YAMLError as exc:
        return Parsed((), (SpecError(path, 1, 1, f"YAML error: {exc}"),))

    objects: list[tuple[ApiObject, Source]] = []
    errors: list[SpecError] = []
    tree: list[Any] | None = None
    for index, document in enumerate(documents):
        if document is None:
            continue  # an empty document, e.g. a trailing `---`
        problem = _validate(path, index, document)
        if isinstance(problem, list):
            if tree is None:
                tree = list(_round_trip().load_all(text))
            errors.extend(_locate(path, tree[index], index, document, issue) for issue in problem)
        else:
            objects.append((problem, Source(path, index)))
    if errors:
        return Parsed((), tuple(errors))
    return Parsed(tuple(objects), ())


@dataclass(frozen=True)
class _Issue:
    """A validation problem before it is given a position."""

    loc: tuple[str | int, ...]
    message: str
    error_type: str


def _validate(path: str, index: int, document: object) -> ApiObject | list[_Issue]:
    if not isinstance(document, dict):
        return [
            _Issue((), "a document must be a mapping with apiVersion, kind, metadata, spec", "type")
        ]
    kind = document.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return [
            _Issue(("kind",), f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}", "kind")
        ]
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        issues: dict[tuple[str | int, ...], list[str]] = {}
        types: dict[tuple[str | int, ...], str] = {}
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            issues.setdefault(loc, []).append(message)
            types.setdefault(loc, str(error["type"]))
        return [_Issue(loc, "; ".join(messages), types[loc]) for loc, messages in issues.items()]


def _locate(path: str, tree: Any, index: int, document: Any, issue: _Issue) -> SpecError:
    """Walk the round-trip tree along a pydantic location to find line and column."""
    node = tree
    line, column = _node_position(tree)
    field: list[str] = []
    loc = list(issue.loc)
    for position, step in enumerate(loc):
        following = loc[position + 1] if position + 1 < len(loc) else None
        if isinstance(node, CommentedMap) and isinstance(step, str) and step in node:
            if following == "[key]" or (
                following is None and issue.error_type == "extra_forbidden"
            ):
                line, column = _pair(node.lc.key(step))
            else:
                line, column = _pair(node.lc.value(step))
            field.append(step)
            node = node[step]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and step < len(node):
            line, column = _pair(node.lc.item(step))
            field[-1:] = [f"{field[-1]}[{step}]"] if field else [f"[{step}]"]
            node = node[step]
        elif issue.error_type == "missing" and following is None and isinstance(step, str):
            field.append(step)
        # Other steps are pydantic's union and validator tags ("literal['auto']"): no YAML node.
    kind, name = _identity(document)
    return SpecError(path, line, column, issue.message, kind, name, ".".join(field))


def _identity(document: Any) -> tuple[str, str]:
    if not isinstance(document, dict):
        return "", ""
    kind = document.get("kind")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return (str(kind) if kind is not None else "", str(name) if name is not None else "")


def _node_position(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 1, 1
    return lc.line + 1, lc.col + 1


def _pair(position: Any) -> tuple[int, int]:
    line, column = position
    return int(line) + 1, int(column) + 1


def locate_field(
    path: str, text: str, document: int, loc: tuple[str | int, ...]
) -> tuple[int, int]:
    """The position of a field (e.g. `spec.slot`) in a valid file, for cross-object errors."""
    tree = list(_round_trip().load_all(text))[document]
    located = _locate(path, tree, document, None, _Issue(loc, "", "value"))
    return located.line, located.column
