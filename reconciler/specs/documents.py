"""Document boundaries in a spec file's text, so that one document can be cut out of it.

Used by `writer` (`wnr delete`) after spec parsing: the text of every other
document stays byte for byte, comments included. Boundaries come from
libyaml's event stream, the same parser whose documents `parse` numbers, so
document N here is `Source.document` N there (empty documents included).

A document's text starts at its `---` line, or at its first line of content,
and takes with it the comment lines directly above (a comment written just
above a document describes it); it ends where the next document's text starts.
Lines before the first document's text (a file header set off by a blank
line) belong to no document and stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    ScalarEvent,
)

# The line breaks libyaml counts lines by (YAML 1.1, which also breaks on NEL, LS and PS).
_BREAK = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")


@dataclass(frozen=True)
class Span:
    """Where one document's text lies: characters [start, end) of the file."""

    start: int
    end: int


def line_starts(text: str) -> list[int]:
    """The offset each line begins at, by libyaml's line breaks; one more for the end."""
    return [0, *(match.end() for match in _BREAK.finditer(text)), len(text)]


def document_spans(text: str) -> list[Span]:
    """The span of every document of a text that parses (the caller has checked it does)."""
    firsts, lasts = _document_lines(text)
    starts = line_starts(text)
    lines = [text[starts[i] : starts[i + 1]] for i in range(len(starts) - 1)]
    begin: list[int] = []
    for index, first in enumerate(firsts):
        floor = lasts[index - 1] + 1 if index > 0 else 0
        line = first
        while line > floor and lines[line - 1].lstrip().startswith("#"):
            line -= 1  # the comment block directly above goes with the document
        begin.append(starts[line])
    ends = [*begin[1:], len(text)]
    return [Span(start, end) for start, end in zip(begin, ends, strict=True)]


def _document_lines(text: str) -> tuple[list[int], list[int]]:
    """For each document, its first line (the `---`, else its first content) and the last
    line its content or `...` marker reaches (0-based)."""
    firsts: list[int] = []
    lasts: list[int] = []
    flow: list[bool] = []  # whether each open collection is a flow one (`[...]`, `{...}`)
    for event in YAML(typ="safe", pure=False).parse(text):
        if isinstance(event, DocumentStartEvent):
            firsts.append(event.start_mark.line)
            lasts.append(event.start_mark.line)
        elif isinstance(event, ScalarEvent | AliasEvent):
            lasts[-1] = max(lasts[-1], _last_line(event.end_mark.line, event.end_mark.column))
        elif isinstance(event, CollectionStartEvent):
            flow.append(bool(event.flow_style))
            lasts[-1] = max(lasts[-1], event.start_mark.line)
        elif isinstance(event, CollectionEndEvent) and flow.pop():
            # A block collection ends at the next token, past the comments that follow it.
            lasts[-1] = max(lasts[-1], event.end_mark.line)
        elif isinstance(event, DocumentEndEvent) and event.explicit:
            lasts[-1] = max(lasts[-1], event.start_mark.line)
    return firsts, lasts


def _last_line(line: int, column: int) -> int:
    """The line a node's content ends on: a mark at column 0 is the start of the next line
    (a block scalar's end)."""
    return line - 1 if column == 0 and line > 0 else line


def without_document(text: str, index: int) -> str:
    """The text with document `index` cut out, every other byte kept."""
    span = document_spans(text)[index]
    return text[: span.start] + text[span.end :]
