"""Fields the models accept but wnr does not act on yet: the planner reports them, never drops them.

Each entry is a dotted field path (as the admin writes it). When a feature
lands, its paths leave this table; a set field still listed here shows up in
`wnr plan` as "not enforced yet".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from pydantic import BaseModel

from reconciler.model.api import ApiObject

NOT_ENFORCED_YET: dict[str, frozenset[str]] = {
    # Node capacity and reservations: slots are taken as given; nothing checks their sum yet.
    "Node": frozenset({"spec.capacity", "spec.reserved"}),
    # Slot-wide disk (jobs' own disk limits are enforced).
    "Slot": frozenset({"spec.resources.disk"}),
    "Job": frozenset(),
}


def explicit_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted alias paths of every field the admin wrote, nested models included."""
    paths: list[str] = []
    for name in sorted(model.model_fields_set):
        info = type(model).model_fields[name]
        path = f"{prefix}{info.alias or name}"
        paths.append(path)
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            paths.extend(explicit_fields(value, f"{path}."))
    return paths


class _Known:
    """The answers for the objects of the last desired state, by id (holding each object, so
    its id cannot be reused while the entry lives). Objects are frozen and the spec loader
    hands out the same object while its file is unchanged, so an answer is worked out once;
    objects that left the desired state leave this too (churn must not grow memory)."""

    answers: ClassVar[dict[int, tuple[ApiObject, tuple[str, ...]]]] = {}


def unenforced_fields(objects: Iterable[ApiObject]) -> list[tuple[ApiObject, tuple[str, ...]]]:
    """Each object with its fields that are set but not acted on yet."""
    before = _Known.answers
    now: dict[int, tuple[ApiObject, tuple[str, ...]]] = {}
    for obj in objects:
        hit = before.get(id(obj))
        now[id(obj)] = hit if hit is not None and hit[0] is obj else (obj, _unenforced(obj))
    _Known.answers = now
    return list(now.values())


def _unenforced(obj: ApiObject) -> tuple[str, ...]:
    pending = NOT_ENFORCED_YET[obj.kind]
    return tuple(path for path in explicit_fields(obj) if path in pending) if pending else ()
