"""Bounds on a spec file's YAML, checked before the C loader builds anything from it.

The second step of spec loading (`specread` reads the bytes, this module
decodes and bounds them, `specfile` parses and validates, `specs` assembles
a directory). Anyone who can write a spec file can write any bytes; none of
them may cost the daemon more than a bounded amount of time and memory, or
reach code that raises or crashes on them:

- the text must be UTF-8 made of the characters YAML allows (a NUL or a
  Latin-1 byte is reported at its line and column, not at 1:1);
- collections may nest at most `MAX_DEPTH` deep: ruamel's C composer and the
  constructor recurse, and a million `[` crashed the interpreter (SIGSEGV);
- aliases may add at most `MAX_EXPANDED_NODES` nodes to a file, and
  never to a node that contains them (YAML's billion laughs: validation and
  error messages walk the expanded tree);
- a file holds at most the Node's `specLimits.maxDocuments` documents.

The check walks libyaml's event stream (`YAML.parse`), which keeps explicit
stacks instead of recursing, so it is safe on input of any depth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    ScalarEvent,
)

# Specs nest about eight levels (Node.spec.images.<platform>.<arch>); 64 leaves room.
MAX_DEPTH = 64
# Nodes that aliases may add: about ten times the largest spec file a site writes by
# hand; pydantic validates that many in well under a second.
MAX_EXPANDED_NODES = 100_000
# A character YAML 1.2 does not allow in a stream (§5.1), C0 controls but TAB, LF, CR.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Refusal:
    """Why a file's text is refused, and where (1-based line and column)."""

    line: int
    column: int
    message: str


def decode(data: bytes) -> str | Refusal:
    """The file's text, or where it stops being UTF-8 text that YAML accepts."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data[: exc.start].decode("utf-8", errors="replace"), None)
        byte = data[exc.start]
        return Refusal(line, column, f"not UTF-8: byte 0x{byte:02x} ({exc.reason})")
    text = text.removeprefix("\ufeff")
    bad = _UNPRINTABLE.search(text)
    if bad is not None:
        line, column = _position(text, bad.start())
        code = ord(bad.group())
        return Refusal(line, column, f"character U+{code:04X} is not allowed in YAML")
    return text


def _position(text: str, offset: int | None) -> tuple[int, int]:
    """Line and column (1-based) of a character offset, or of the end of `text`."""
    head = text if offset is None else text[:offset]
    line_start = head.rfind("\n") + 1
    return head.count("\n") + 1, len(head) - line_start + 1


def check(text: str, max_documents: int) -> Refusal | None:
    """Walk the event stream: syntax, documents, depth and alias expansion within bounds."""
    try:
        return _walk(_events(text), max_documents)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return Refusal(line, column, f"YAML syntax error: {exc.problem or exc.context}")
    except YAMLError as exc:
        return Refusal(1, 1, f"YAML error: {_first_line(exc)}")


def _events(text: str) -> Iterator[Event]:
    # A fresh instance per file: a shared one keeps a DocInfo per document ever parsed.
    yield from YAML(typ="safe", pure=False).parse(text)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _walk(events: Iterable[Event], max_documents: int) -> Refusal | None:
    walk = _Walk(max_documents)
    for event in events:
        refusal = walk.step(event)
        if refusal is not None:
            return refusal
    return None


class _Walk:
    """The running counts of one file's event stream."""

    def __init__(self, max_documents: int) -> None:
        self.max_documents = max_documents
        self.documents = 0
        self.aliased = 0  # nodes that aliases add to the file
        # One entry per open collection: its expanded size so far and its anchor.
        self.open: list[tuple[list[int], str | None]] = []
        self.sizes: dict[str, int] = {}  # the expanded size of each anchored node

    def step(self, event: Event) -> Refusal | None:
        """Account for one event; the refusal when it crosses a bound."""
        size = 0
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > self.max_documents:
                return _at(event, f"more than {self.max_documents} documents in one file")
            self.sizes = {}  # anchors do not cross documents
        elif isinstance(event, CollectionStartEvent):
            if len(self.open) >= MAX_DEPTH:
                return _at(event, f"nested more than {MAX_DEPTH} levels deep")
            self.open.append(([1], event.anchor))
        elif isinstance(event, CollectionEndEvent):
            (size,), anchor = self.open.pop()
            if anchor is not None:
                self.sizes[anchor] = size
        elif isinstance(event, ScalarEvent):
            size = 1
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            return self._alias(event)
        if size and self.open:
            self.open[-1][0][0] += size
        return None

    def _alias(self, event: AliasEvent) -> Refusal | None:
        if any(anchor == event.anchor for _, anchor in self.open):
            return _at(event, f"alias *{event.anchor} refers to a node that contains it")
        size = self.sizes.get(event.anchor, 1)
        self.aliased += size
        if self.aliased > MAX_EXPANDED_NODES:
            return _at(event, f"aliases expand the file past {MAX_EXPANDED_NODES} nodes")
        if self.open:
            self.open[-1][0][0] += size
        return None


def _at(event: Event, message: str) -> Refusal:
    mark = event.start_mark
    return Refusal(mark.line + 1, mark.column + 1, message)
