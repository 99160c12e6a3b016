"""CustomResourceDefinitions generated from the models: models -> CRDs (`wnr crds`, `crds/`).

The pydantic models are the one source of the API. This module turns their JSON schema
into `apiextensions.k8s.io/v1` CRDs, so that the same objects can live in a Kubernetes
API server, and `strict_schema` turns a CRD back into a plain JSON schema with which the
tests check that a CRD and its model accept the same documents.

An API server takes only *structural* OpenAPI v3.0 schemas: no `$ref`, a type on every
node but none inside `anyOf`, int-or-string only as exactly `anyOf: [{type: integer},
{type: string}]`, a boolean `exclusiveMinimum`, no `patternProperties`. The rewrites below
produce that; `python -m reconciler.crds DIR` writes one file per kind.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from ruamel.yaml import YAML

from reconciler.model.api import API_VERSION, Job, Node, Slot
from reconciler.model.quantity import Bytes, MilliCPUs

GROUP, VERSION = API_VERSION.split("/")
_NAMES = {"Node": ("nodes", "wnrnode"), "Slot": ("slots", "wnrslot"), "Job": ("jobs", "wnrjob")}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "Node": [
        {"name": "Runtime", "type": "string", "jsonPath": ".spec.runtime"},
        {"name": "Cgroup-Root", "type": "string", "jsonPath": ".spec.cgroupRoot"},
    ],
    "Slot": [
        {"name": "State", "type": "string", "jsonPath": ".spec.state"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "CPUs", "type": "string", "jsonPath": ".spec.resources.cpus"},
        {"name": "Memory", "type": "string", "jsonPath": ".spec.resources.memory"},
    ],
    "Job": [
        {"name": "Slot", "type": "string", "jsonPath": ".spec.slot"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
        {"name": "Exit", "type": "integer", "jsonPath": ".status.exitCode", "priority": 1},
    ],
}
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
# Quantities as Kubernetes spells int-or-string (like resource.Quantity), with patterns
# closer to what quantity.py parses than its shared one: bytes take no `m` and a plain
# count is whole (`1.0` is); CPUs take cores (at most 3 decimals) or whole millicores, never zero.
# Kubernetes has no int-or-number, so `cpus: 0.5` must be written "0.5" or "500m" there.
_BYTES = {
    "anyOf": _INT_OR_STRING,
    "minimum": 0,
    "pattern": (
        r"^([0-9]+(\.0+)?|\.0+|([0-9]+(\.[0-9]+)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E))$"
    ),
    "x-kubernetes-int-or-string": True,
}
_CPUS = {
    "anyOf": _INT_OR_STRING,
    "minimum": 1,
    "pattern": r"^(0*[1-9][0-9]*(\.[0-9]{1,3}0*)?|0*\.([1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9])0*"
    r"|0*[1-9][0-9]*m)$",
    "x-kubernetes-int-or-string": True,
}
_QUANTITIES = {
    json.dumps(TypeAdapter(Bytes).json_schema(), sort_keys=True): _BYTES,
    json.dumps(TypeAdapter(MilliCPUs).json_schema(), sort_keys=True): _CPUS,
}
# Text fields the models also read from YAML integers (models._as_text: `cpuset: 3`,
# `gpus: [0, 1]`); their JSON schema says string, so they become int-or-string here.
_TEXT_FROM_INT: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {
    "Slot": {("spec", "cpuset"): {"minimum": 0}, ("spec", "gpus", "items"): {}},
}
_DROP = {"title", "default", "$defs"}
_ORDER = [
    "description", "type", "x-kubernetes-int-or-string", "anyOf", "format", "enum", "pattern",
    "minLength", "maxLength", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
    "minItems", "maxItems", "nullable", "x-kubernetes-preserve-unknown-fields", "items",
    "additionalProperties", "properties", "required",
]  # fmt: skip


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Resolve `$ref`s, drop titles and defaults, and make each schema node structural."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if (quantity := _QUANTITIES.get(json.dumps(node, sort_keys=True))) is not None:
        return json.loads(json.dumps(quantity))
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        extra = {k: _inline(v, defs) for k, v in node.items() if k != "$ref" and k not in _DROP}
        return _structural({**target, **extra})
    return _structural({k: _inline(v, defs) for k, v in node.items() if k not in _DROP})


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one schema node (whose children are done) into what a structural schema allows."""
    # Kubernetes prunes unknown fields instead of closing objects; strict_schema closes them.
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    # No patternProperties either: a map keeps its value schema, and only wnr checks the keys.
    if patterns := node.pop("patternProperties", None):
        (node["additionalProperties"],) = patterns.values()
    if "const" in node:
        node["enum"] = [node.pop("const")]
    options = node.pop("anyOf", None)
    if options and {"type": "null"} in options:
        options = [o for o in options if o != {"type": "null"}]
        node["nullable"] = True
        if len(options) == 1:  # `X | None`: X itself, nullable (X is already structural)
            inner = options[0]
            options = inner.get("anyOf")
            node = {**{k: v for k, v in inner.items() if k != "anyOf"}, **node}
    if node.get("x-kubernetes-int-or-string") or options == _INT_OR_STRING:
        # Only the exact pair is allowed; each branch's bounds move up, where `minimum`
        # still applies to numbers only and `pattern` to strings only.
        for option in options or []:
            node.update({k: v for k, v in option.items() if k != "type"})
        node.pop("type", None)
        node["anyOf"] = _INT_OR_STRING
    elif options:
        types = {o.get("type") for o in options}
        if len(types) != 1 or None in types:
            raise ValueError(f"no structural form for anyOf {options}")
        node["type"] = types.pop()
        node["anyOf"] = [{k: v for k, v in o.items() if k not in {"type", "description"}}
                         for o in options]  # fmt: skip
    for bound in ("Minimum", "Maximum"):  # OpenAPI v3.0: a number plus a boolean flag
        value = node.get(f"exclusive{bound}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[bound.lower()] = value
            node[f"exclusive{bound}"] = True
    if "enum" in node:
        node.setdefault("type", "string")
        # An API server checks a null against the enum and fails it; without `nullable`
        # it prunes the null instead, which the model reads as unset, the same thing.
        node.pop("nullable", None)
    return node


def _ordered(node: Any) -> Any:
    """A schema with its keywords in one fixed order (fields keep the models' order)."""
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    if not isinstance(node, dict):
        return node
    rank = {key: index for index, key in enumerate(_ORDER)}
    result = {}
    for key in sorted(node, key=lambda k: (rank.get(k, len(rank)), k)):
        value = node[key]
        if key == "properties":
            value = {name: _ordered(field) for name, field in value.items()}
        elif key not in {"enum", "required"}:
            value = _ordered(value)
        result[key] = value
    return result


def openapi_schema(model: type[Node | Slot | Job]) -> dict[str, Any]:
    """The structural schema of one kind, with a free-form status."""
    raw = model.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    for path, extra in _TEXT_FROM_INT.get(model.__name__, {}).items():
        field = schema
        for part in path:
            field = field["items"] if part == "items" else field["properties"][part]
        field.pop("type")
        field.update({"anyOf": _INT_OR_STRING, "x-kubernetes-int-or-string": True, **extra})
    properties = schema["properties"]
    # The API server validates metadata itself; a CRD may only constrain name and generateName.
    name = properties["metadata"]["properties"]["name"]
    properties["metadata"] = {"type": "object", "properties": {"name": name}}
    properties["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    ordered: dict[str, Any] = _ordered(schema)
    return ordered


def crd_for(model: type[Node | Slot | Job]) -> dict[str, Any]:
    """An apiextensions.k8s.io/v1 CustomResourceDefinition for one kind."""
    kind = model.__name__
    plural, short = _NAMES[kind]
    version = {"name": VERSION, "served": True, "storage": True, "subresources": {"status": {}}}
    version["additionalPrinterColumns"] = [*_COLUMNS[kind], _AGE]
    version["schema"] = {"openAPIV3Schema": openapi_schema(model)}
    names = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {**names, "shortNames": [short]},
            "scope": "Cluster",
            "versions": [version],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """The CRDs of every kind, in the order Node, Slot, Job."""
    return [crd_for(model) for model in (Node, Slot, Job)]


def crd_filename(crd: dict[str, Any]) -> str:
    """The committed file name of a CRD, e.g. `wnr.dev_slots.yaml`."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def render(documents: list[dict[str, Any]]) -> str:
    """Block-style YAML, one document per object, keys in the order they were built."""
    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # never fold a long pattern onto its own line
    buffer = io.StringIO()
    yaml.dump_all(documents, buffer)
    return buffer.getvalue()


def render_crds() -> str:
    """What `wnr crds` prints: every CRD as one multi-document YAML stream."""
    return render(all_crds())


def write_crds(directory: Path) -> list[Path]:
    """Write one file per CRD into `directory` (the committed `crds/`)."""
    paths = []
    for crd in all_crds():
        path = directory / crd_filename(crd)
        path.write_text(render([crd]))
        paths.append(path)
    return paths


def strict_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD's schema as plain JSON Schema (2020-12), validating like an API server would.

    kubectl's server-side field validation (`--validate=strict`, kubectl's default) rejects
    unknown fields where the schema alone would prune them, so every object with fields
    is closed here, except `metadata`, which the server owns and fills (uid, namespace...).
    """
    schema: dict[str, Any] = _strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    metadata = schema["properties"]["metadata"]
    del metadata["additionalProperties"]
    # The server's own metadata check: an object needs a name (or a generateName).
    metadata["anyOf"] = [{"required": ["name"]}, {"required": ["generateName"]}]
    return schema


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    for bound in ("Minimum", "Maximum"):
        if result.pop(f"exclusive{bound}", False):
            result[f"exclusive{bound}"] = result.pop(bound.lower())
    if isinstance(result.get("additionalProperties"), dict):
        result["additionalProperties"] = _or_null(result["additionalProperties"])
    if "properties" in result:
        # The server prunes a null in a field that is not nullable, as if it were absent.
        required = set(result.get("required", []))
        for name, field in result["properties"].items():
            if name not in required:
                result["properties"][name] = _or_null(field)
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    if result.pop("nullable", False):
        return _or_null(result)
    return result


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    if {"type": "null"} in schema.get("anyOf", []):
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


if __name__ == "__main__":
    for written in write_crds(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(written)
