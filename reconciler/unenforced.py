"""Fields the models accept but wnr does not act on yet: the planner reports them, never drops them.

Each entry is a dotted field path (as the admin writes it). When a feature
lands, its paths leave this table; a set field still listed here shows up in
`wnr plan` as "not enforced yet".
"""

from __future__ import annotations

from pydantic import BaseModel

from reconciler.models import ApiObject

NOT_ENFORCED_YET: dict[str, frozenset[str]] = {
    # Node capacity and reservations: slots are taken as given; nothing checks their sum yet.
    "Node": frozenset({"spec.capacity", "spec.reserved"}),
    # Slot-wide disk (jobs' own disk limits are enforced) and running as another user.
    "Slot": frozenset({"spec.resources.disk", "spec.user"}),
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


# Objects are frozen and the spec loader hands out the same object while its file is
# unchanged, so each object's answer is worked out once. Keyed by id, holding the object so
# that its id cannot be reused while the entry lives; dropped whole past a fleet's size.
_KNOWN: dict[int, tuple[ApiObject, tuple[str, ...]]] = {}
_KNOWN_SIZE = 16384


def unenforced_fields(obj: ApiObject) -> tuple[str, ...]:
    """The fields of an object that are set but not acted on yet."""
    hit = _KNOWN.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    pending = NOT_ENFORCED_YET[obj.kind]
    fields = tuple(path for path in explicit_fields(obj) if path in pending) if pending else ()
    if len(_KNOWN) >= _KNOWN_SIZE:
        _KNOWN.clear()
    _KNOWN[id(obj)] = (obj, fields)
    return fields
