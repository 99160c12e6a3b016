"""Spec assembly: the objects of every file become one desired state, checked across files.

The last step of spec loading (`specread` → `yamlbounds` → `specfile` → `specs`,
which calls this). A name defined twice is reported in both places and the copy
already in effect wins (adding a duplicate never replaces running work); a
second Node and a Job naming a missing Slot are errors at their field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from ruamel.yaml.error import YAMLError

from reconciler.model.api import ApiObject, Job, Node, Slot
from reconciler.model.desired import Desired, Source, SpecError
from reconciler.specs.parse import locate_field

# Reads a file's text again, by the loader's rules; None when it cannot.
Reader = Callable[[str], str | None]


def _winners(
    objects: list[tuple[ApiObject, Source]],
    previous: Mapping[tuple[str, str], Source],
    errors: list[SpecError],
    reader: Reader,
) -> set[Source]:
    """For each name defined twice, report both places and keep one: the copy that was
    already in effect (so adding a duplicate never replaces running work), else the first."""
    places: dict[tuple[str, str], list[tuple[ApiObject, Source]]] = {}
    for obj, source in sorted(objects, key=lambda pair: pair[1]):
        places.setdefault((obj.kind, obj.metadata.name), []).append((obj, source))
    kept: set[Source] = set()
    for key, found in places.items():
        if len(found) == 1:
            kept.add(found[0][1])
            continue
        before = previous.get(key)
        winner = next((pair for pair in found if before and pair[1].path == before.path), found[0])
        kept.add(winner[1])
        for obj, source in found:
            if source != winner[1]:
                name = ("metadata", "name")
                errors.append(_field_error(source, obj, name, _duplicate(obj, winner[1]), reader))
                errors.append(_field_error(winner[1], obj, name, _duplicate(obj, source), reader))
    return kept


def assemble(
    objects: list[tuple[ApiObject, Source]],
    errors: list[SpecError],
    complete: bool,
    previous: Mapping[tuple[str, str], Source],
    reader: Reader,
) -> Desired:
    """Check names across files: duplicates, a second Node, Jobs naming missing Slots."""
    node: Node | None = None
    slots: dict[str, Slot] = {}
    jobs: dict[str, Job] = {}
    sources: dict[tuple[str, str], Source] = {}
    kept = _winners(objects, previous, errors, reader)
    for obj, source in sorted(objects, key=lambda pair: pair[1]):
        key = (obj.kind, obj.metadata.name)
        if source not in kept:
            continue
        if isinstance(obj, Node):
            if node is not None:
                message = (
                    f"at most one Node may exist; Node/{node.metadata.name} is already defined"
                )
                errors.append(_field_error(source, obj, ("kind",), message, reader))
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
            errors.append(_field_error(source, job, ("spec", "slot"), message, reader))
    return Desired(node, slots, jobs, sources, tuple(errors), complete)


def _duplicate(obj: ApiObject, other: Source) -> str:
    return f"duplicate {obj.kind} name {obj.metadata.name!r} (also defined in {other.path})"


def _field_error(
    source: Source, obj: ApiObject, loc: tuple[str, ...], message: str, reader: Reader
) -> SpecError:
    text = reader(source.path)
    line, column = 1, 1
    if text is not None:
        # The file may have changed since its objects were last good (it may not even parse
        # now): the error then still names the object and field, at the top of the file.
        with contextlib.suppress(IndexError, YAMLError):
            line, column = locate_field(source.path, text, source.document, loc)
    return SpecError(source.path, line, column, message, obj.kind, obj.metadata.name, ".".join(loc))
