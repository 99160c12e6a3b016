"""Fields the models accept but wnr does not act on yet: the planner reports them, never drops them.

Each entry is a dotted field path (as the admin writes it). When a feature
lands, its paths leave this table; a set field still listed here shows up in
`wnr plan` as "not enforced yet".
"""

from __future__ import annotations

from pydantic import BaseModel

from reconciler.models import ApiObject

NOT_ENFORCED_YET: dict[str, frozenset[str]] = {
    "Node": frozenset(
        {
            "spec.capacity",
            "spec.reserved",
            "spec.architecture",
            "spec.cpuFeatures",
            "spec.runtime",
            "spec.images",
            "spec.siteOverrides",
        }
    ),
    "Slot": frozenset(
        {
            "spec.resources.disk",
            "spec.gpus",
            "spec.platform",
            "spec.image",
            "spec.user",
        }
    ),
    "Job": frozenset(
        {
            "spec.platform",
            "spec.image",
            "spec.architecture",
            "spec.cpuFeatures",
            "spec.resources.gpus",
        }
    ),
}

# Values that mean "do the default" and so need no enforcement.
_DEFAULT_VALUES = {"spec.architecture": "auto", "spec.runtime": "auto"}


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


def unenforced_fields(obj: ApiObject) -> list[str]:
    """The fields of an object that are set but not acted on yet."""
    pending = NOT_ENFORCED_YET[obj.kind]
    found: list[str] = []
    for path in explicit_fields(obj):
        if path in pending and _DEFAULT_VALUES.get(path) != _value(obj, path):
            found.append(path)
    return found


def _value(obj: BaseModel, path: str) -> object:
    value: object = obj
    for part in path.split("."):
        model = value if isinstance(value, BaseModel) else None
        if model is None:
            return None
        field = next(
            (n for n, f in type(model).model_fields.items() if (f.alias or n) == part), part
        )
        value = getattr(model, field, None)
    return value
