"""Positions in a composed YAML tree: which line and column a field is at, and which field a
line and column belong to.

Part of spec parsing (`specfile` calls it once a document is known to be
wrong). The tree is composed by the same C parser as the load, from text that
`yamlbounds` already bounded in depth, so walking it recursively is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.model.quoting import quoted

# A kind or name is shown as written up to this length, else quoted short.
MAX_LABEL = 80


def clip(value: object) -> str:
    """A value an admin wrote, quoted short for a message."""
    return quoted(value)


@dataclass(frozen=True)
class Located:
    """A place in a file: 1-based line and column, and the dotted field there."""

    line: int
    column: int
    field: str


def position(node: Node | None) -> tuple[int, int]:
    """A node's 1-based line and column (1:1 without a node)."""
    if node is None:
        return 1, 1
    return node.start_mark.line + 1, node.start_mark.column + 1


def locate(
    tree: Node | None, loc: Sequence[str | int], on_key: bool, missing: bool = False
) -> Located:
    """Walk a pydantic error location down the tree: the deepest node it names.

    `on_key` points at the last key rather than its value (an unknown field);
    `missing` names a last step that has no node (a required field left out).
    """
    node = tree
    line, column = position(tree)
    field: list[str] = []
    for index, step in enumerate(loc):
        following = loc[index + 1] if index + 1 < len(loc) else None
        pair = entry(node, step) if isinstance(node, MappingNode) else None
        if pair is not None:
            key_wanted = following == "[key]" or (following is None and on_key)
            line, column = position(pair[0] if key_wanted else pair[1])
            field.append(str(step))
            node = pair[1]
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line, column = position(node)
            field[-1:] = [f"{field[-1]}[{step}]"] if field else [f"[{step}]"]
        elif missing and following is None and isinstance(step, str):
            field.append(step)
        # Other steps are pydantic's union and validator tags ("literal['auto']"): no YAML node.
    return Located(line, column, ".".join(field))


def entry(node: MappingNode, step: str | int) -> tuple[Node, Node] | None:
    """The (key, value) nodes of a mapping entry named by a pydantic location step."""
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value == str(step):
            return key, value
    return None


def field_at(tree: Node, line: int, column: int) -> str | None:
    """The dotted field of the node starting at a 1-based line and column, if one does."""
    path = _path_to(tree, (line - 1, column - 1))
    if path is None:
        return None
    parts: list[str] = []
    for part in path:
        if part.startswith("[") and parts:
            parts[-1] += part  # command[1], as pydantic locations are shown
        else:
            parts.append(part)
    return ".".join(parts)


def _path_to(node: Node, mark: tuple[int, int]) -> list[str] | None:
    if (node.start_mark.line, node.start_mark.column) == mark:
        return []
    children: list[tuple[str | None, Node]] = []
    if isinstance(node, MappingNode):
        for key, value in node.value:
            label = key.value if isinstance(key, ScalarNode) else None
            children += [(None, key), (label, value)]
    elif isinstance(node, SequenceNode):
        children = [(f"[{i}]", child) for i, child in enumerate(node.value)]
    for label, child in children:
        found = _path_to(child, mark)
        if found is not None:
            return found if label is None else [label, *found]
    return None


def identity(tree: Node | None) -> tuple[str, str]:
    """The kind and name a document's tree declares, as an error line shows them."""
    if not isinstance(tree, MappingNode):
        return "", ""
    kind = entry(tree, "kind")
    metadata = entry(tree, "metadata")
    name = entry(metadata[1], "name") if metadata and isinstance(metadata[1], MappingNode) else None
    return _label(kind[1] if kind else None), _label(name[1] if name else None)


def _label(node: Node | None) -> str:
    if node is None:
        return ""
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a sequence"
    value = node.value
    return value if value.isprintable() and len(value) <= MAX_LABEL else clip(value)
