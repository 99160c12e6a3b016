"""Quoting what an admin wrote in an error message, cut short: a value can be megabytes long.

Pure, below the models: the quantity parser, the field types and the spec
parser's messages (reconciler.specs.positions) all quote values through `quoted`.
"""

from __future__ import annotations


def quoted(value: object, limit: int = 80) -> str:
    """A string's repr, a number as written, anything else by its type; cut to about `limit`
    characters with the full length said."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[: limit - 10]}... ({len(text)} characters)"
