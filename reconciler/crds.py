"""CustomResourceDefinitions generated from the models: models -> `wnr crds` and `crds/`.

The pydantic JSON schema is turned into a structural OpenAPI v3 schema (refs
inlined, `anyOf [X, null]` as `nullable`, no titles) so the same objects can
live in a Kubernetes API server. `strict_schema` turns a CRD back into a plain
JSON schema that, like `kubectl --validate=strict`, rejects unknown fields.
"""

from __future__ import annotations

import copy
import io
from typing import Any

from ruamel.yaml import YAML

from reconciler.models import API_VERSION, Job, Node, Slot

GROUP, VERSION = API_VERSION.split("/")
_NAMES = {
    "Node": ("nodes", "wnrnode"),
    "Slot": ("slots", "wnrslot"),
    "Job": ("jobs", "wnrjob"),
}
_COLUMNS = {
    "Node": [],
    "Slot": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "State", "type": "string", "jsonPath": ".spec.state"},
    ],
    "Job": [
        {"name": "Slot", "type": "string", "jsonPath": ".spec.slot"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
    ],
}
_DROP = {"title", "default", "$defs"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Resolve `$ref`s, drop titles and defaults' noise, and express optional values as nullable."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        extra = {k: _inline(v, defs) for k, v in node.items() if k != "$ref" and k not in _DROP}
        return {**target, **extra}
    result = {k: _inline(v, defs) for k, v in node.items() if k not in _DROP}
    return _structural(result)


def _structural(result: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one schema node into what a structural CRD schema allows."""
    # Structural schemas may not close objects (Kubernetes prunes unknown fields instead;
    # strict_schema puts the rule back for validation). Maps keep their value schema.
    if result.get("additionalProperties") is False:
        del result["additionalProperties"]
    # Kubernetes has no patternProperties: a map keeps its value schema, and wnr itself
    # checks the keys (environment variable names).
    patterns = result.pop("patternProperties", None)
    if isinstance(patterns, dict) and len(patterns) == 1:
        result["additionalProperties"] = next(iter(patterns.values()))
    options = result.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) < len(options):
            result.pop("anyOf")
            if len(kept) == 1:
                result = {**kept[0], **result, "nullable": True}
            else:
                result = {**result, "anyOf": kept, "nullable": True}
    options = result.get("anyOf")
    if isinstance(options, list) and "type" not in result:
        types = {o.get("type") for o in options if isinstance(o, dict)}
        if len(types) == 1 and None not in types:
            result["type"] = types.pop()
    if "const" in result:
        result["enum"] = [result.pop("const")]
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    return result


def openapi_schema(model: type[Node | Slot | Job]) -> dict[str, Any]:
    """The structural schema of one kind, with a free-form status."""
    raw = model.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    properties = schema["properties"]
    # Kubernetes validates metadata itself; a CRD may only constrain name and generateName.
    name = properties["metadata"]["properties"]["name"]
    properties["metadata"] = {"type": "object", "properties": {"name": name}}
    properties["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.pop("additionalProperties", None)
    return schema


def crd_for(model: type[Node | Slot | Job]) -> dict[str, Any]:
    """An apiextensions.k8s.io/v1 CustomResourceDefinition for one kind."""
    kind = model.__name__
    plural, short = _NAMES[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _COLUMNS[kind],
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """The CRDs of every kind, Node, Slot, Job."""
    return [crd_for(model) for model in (Node, Slot, Job)]


def crd_filename(crd: dict[str, Any]) -> str:
    """The committed file name of a CRD, e.g. `wnr.dev_slots.yaml`."""
    return f"{GROUP}_{crd['spec']['names']['plural']}.yaml"


def render(documents: list[dict[str, Any]]) -> str:
    """Block-style YAML, one document per CRD."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    buffer = io.StringIO()
    yaml.dump_all(documents, buffer)
    return buffer.getvalue()


def render_crds() -> str:
    """What `wnr crds` prints."""
    return render(all_crds())


def strict_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """A plain JSON schema of a CRD that rejects unknown fields (kubectl's strict validation)."""
    schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    strict: dict[str, Any] = _strict(schema, top=True)
    return strict


def _strict(node: Any, top: bool = False) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if result.pop("nullable", False):
        return {"anyOf": [result, {"type": "null"}]}
    properties = result.get("properties")
    if isinstance(properties, dict):
        if top:
            properties["metadata"]["additionalProperties"] = True
        if "x-kubernetes-preserve-unknown-fields" not in node:
            result.setdefault("additionalProperties", False)
        if top:
            properties["status"] = {"type": "object"}
    return result
