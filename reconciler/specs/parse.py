"""Parse one spec file's text into API objects, or into errors that point at the offending value.

The third step of spec loading (`specread` reads a file's bytes,
`yamlbounds` decodes and bounds them, this module parses and validates,
`specs` assembles a directory). The text is loaded with ruamel's C safe
loader, whose constructor here refuses (with a position) the integers and
dates that would otherwise raise without one. Only when a document is
invalid is the text composed again by the same parser, whose node marks
turn a pydantic error location into `file:line:col`. A file's errors are
capped at `MAX_ERRORS_PER_FILE` and a summary line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import Node

from reconciler.model.api import KINDS, ApiObject, SpecLimits
from reconciler.model.desired import Source, SpecError
from reconciler.specs import positions as specnodes
from reconciler.specs import yamlbounds
from reconciler.specs.positions import clip

DEFAULT_MAX_DOCUMENTS = SpecLimits().max_documents


@dataclass(frozen=True)
class Parsed:
    """The outcome of one file: its objects (with sources), or the errors that reject it."""

    objects: tuple[tuple[ApiObject, Source], ...]
    errors: tuple[SpecError, ...]


# A file's errors beyond these are summed up in one more line: 100,000 bad documents once
# produced hundreds of megabytes of log.
MAX_ERRORS_PER_FILE = 20


class _BoundedConstructor(SafeConstructor):
    """ruamel's safe constructor, refusing with a position what would raise without one."""

    def construct_yaml_int(self, node: Any) -> int:
        """No field takes a 64-bit-plus number; past 4,300 digits `int()` itself refuses."""
        if len(node.value) > 40:
            raise ConstructorError(
                None,
                None,
                f"an integer of {len(node.value)} characters is too large",
                node.start_mark,
            )
        return int(super().construct_yaml_int(node))

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        """`2030-02-30` matches YAML's timestamp pattern but is no date."""
        try:
            return super().construct_yaml_timestamp(node, values)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(
                None, None, f"invalid date or time {clip(node.value)}: {exc}", node.start_mark
            ) from None


_BoundedConstructor.add_constructor("tag:yaml.org,2002:int", _BoundedConstructor.construct_yaml_int)
_BoundedConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", _BoundedConstructor.construct_yaml_timestamp
)


def _yaml() -> YAML:
    # A fresh instance per file: ruamel's YAML objects keep a DocInfo per document ever
    # loaded (memory that grew with every spec seen) and are not safe to share between threads.
    yaml = YAML(typ="safe", pure=False)
    yaml.Constructor = _BoundedConstructor
    return yaml


def parse_text(path: str, text: str, max_documents: int = DEFAULT_MAX_DOCUMENTS) -> Parsed:
    """Parse and validate every document of a file's text, within yamlbounds' limits."""
    refusal = yamlbounds.check(text, max_documents)
    if refusal is not None:
        return Parsed((), (SpecError(path, refusal.line, refusal.column, refusal.message),))
    try:
        documents = list(_yaml().load_all(text))
    except MarkedYAMLError as exc:
        return Parsed((), (_constructor_error(path, text, exc),))
    except YAMLError as exc:
        return Parsed((), (SpecError(path, 1, 1, f"YAML error: {str(exc)[:200]}"),))

    objects: list[tuple[ApiObject, Source]] = []
    errors: list[SpecError] = []
    tree: list[Node] | None = None
    for index, document in enumerate(documents):
        if document is None:
            continue  # an empty document, e.g. a trailing `---`
        problem = _validate(document)
        if isinstance(problem, list):
            if tree is None:
                # The same parser as the load, so this cannot fail where the load did not.
                tree = list(_yaml().compose_all(text))
            errors.extend(_locate(path, tree[index], issue) for issue in problem)
        else:
            objects.append((problem, Source(path, index)))
    if errors:
        return Parsed((), _summarized(path, errors))
    return Parsed(tuple(objects), ())


def _summarized(path: str, errors: list[SpecError]) -> tuple[SpecError, ...]:
    if len(errors) <= MAX_ERRORS_PER_FILE:
        return tuple(errors)
    shown = errors[:MAX_ERRORS_PER_FILE]
    last = shown[-1]
    more = len(errors) - len(shown)
    summary = SpecError(path, last.line, last.column, f"... and {more} more errors in this file")
    return (*shown, summary)


@dataclass(frozen=True)
class _Issue:
    """A validation problem before it is given a position."""

    loc: tuple[str | int, ...]
    message: str
    error_type: str


def _validate(document: object) -> ApiObject | list[_Issue]:
    if not isinstance(document, dict):
        return [
            _Issue((), "a document must be a mapping with apiVersion, kind, metadata, spec", "type")
        ]
    kind = document.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return [
            _Issue(
                ("kind",), f"unknown kind {clip(kind)}: expected one of {', '.join(KINDS)}", "kind"
            )
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


def _locate(path: str, tree: Node | None, issue: _Issue) -> SpecError:
    """The error of one issue, at the node its location names."""
    on_key = issue.error_type == "extra_forbidden"
    where = specnodes.locate(tree, issue.loc, on_key, missing=issue.error_type == "missing")
    kind, name = specnodes.identity(tree)
    return SpecError(path, where.line, where.column, issue.message, kind, name, where.field)


def _constructor_error(path: str, text: str, exc: MarkedYAMLError) -> SpecError:
    """A value the constructor refused, named by its object and field where the tree says."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = f"{exc.problem or exc.context or 'invalid YAML'}"
    try:
        trees = list(_yaml().compose_all(text))
    except YAMLError:
        return SpecError(path, line, column, f"YAML error: {message}")
    for tree in trees:
        field = specnodes.field_at(tree, line, column) if tree is not None else None
        if field is not None:
            kind, name = specnodes.identity(tree)
            return SpecError(path, line, column, message, kind, name, field)
    return SpecError(path, line, column, f"YAML error: {message}")


def locate_field(
    path: str, text: str, document: int, loc: tuple[str | int, ...]
) -> tuple[int, int]:
    """The position of a field (e.g. `spec.slot`) in a valid file, for cross-object errors."""
    tree = list(_yaml().compose_all(text))[document]
    located = specnodes.locate(tree, loc, on_key=False)
    return located.line, located.column
