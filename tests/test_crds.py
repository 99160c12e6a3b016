"""The generated CRDs: committed files in sync, structural schemas, and agreement with the models."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from reconciler.crds import all_crds, crd_filename, render, strict_schema
from reconciler.models import KINDS

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = {crd["spec"]["names"]["kind"]: strict_schema(crd) for crd in all_crds()}


def jsonable(value: Any) -> Any:
    """YAML timestamps as the ISO strings a Kubernetes API server stores."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


def model_accepts(document: dict[str, Any]) -> bool:
    """Whether the pydantic model of the document's kind validates it."""
    try:
        KINDS[document["kind"]].model_validate(document)
    except ValidationError:
        return False
    return True


def crd_accepts(document: dict[str, Any]) -> bool:
    """Whether the CRD schema (with kubectl's strict field validation) validates it."""
    try:
        jsonschema.validate(jsonable(document), SCHEMAS[document["kind"]])
    except jsonschema.ValidationError:
        return False
    return True


def test_committed_crds_match_the_models() -> None:
    """crds/ holds exactly what the generator makes from the models (regenerate: see crds/README.md)."""
    for crd in all_crds():
        path = REPO / "crds" / crd_filename(crd)
        assert render([crd]) == path.read_text(), f"{path} drifted; regenerate it (crds/README.md)"


def walk(node: Any, path: str) -> list[str]:
    """Places in a schema that a structural CRD schema forbids."""
    problems: list[str] = []
    if isinstance(node, dict):
        if "$ref" in node or "patternProperties" in node:
            problems.append(path)
        if "properties" in node and node.get("additionalProperties") is False:
            problems.append(path)
        untyped = "type" not in node and not node.get("x-kubernetes-int-or-string")
        if untyped and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(path)
        for key, value in node.get("properties", {}).items():
            problems += walk(value, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                problems += walk(node[key], f"{path}.{key}")
    return problems


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_schemas_are_structural(crd: dict[str, Any]) -> None:
    """Every schema node has a type (or is int-or-string), with no $ref, patternProperties or closed objects."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert [] == walk(schema, "$")


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every YAML document under examples/."""
    yaml = YAML(typ="safe")
    found = []
    for path in sorted((REPO / "examples").rglob("*.y*ml")):
        for index, document in enumerate(yaml.load_all(path.read_text())):
            if document is not None:
                found.append((f"{path.relative_to(REPO)}#{index}", document))
    return found


def test_examples_exist() -> None:
    """There are example documents to check (the quickstart at least)."""
    assert len(example_documents()) >= 3


@pytest.mark.parametrize(
    ("where", "document"), example_documents(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_examples_are_valid_for_models_and_crds(where: str, document: dict[str, Any]) -> None:
    """Each example document is valid against both its model and its CRD schema."""
    assert (True, True) == (model_accepts(document), crd_accepts(document)), where


JOB = {
    "apiVersion": "wnr.dev/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "j"},
    "spec": {"slot": "s", "command": ["true"]},
}
SLOT = {"apiVersion": "wnr.dev/v1alpha1", "kind": "Slot", "metadata": {"name": "s"}, "spec": {}}
NODE = {"apiVersion": "wnr.dev/v1alpha1", "kind": "Node", "metadata": {"name": "n"}, "spec": {}}


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of a document with one dotted field set (or removed, for ...)."""
    import copy  # noqa: PLC0415 - only this helper needs it

    document = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return document


INVALID = [
    with_(JOB, "extra", 1),
    with_(JOB, "spec.extra", 1),
    with_(JOB, "spec.resources", {"memory": "1Gi", "bogus": 1}),
    with_(SLOT, "spec.resources", {"memory": "8Gx"}),
    with_(SLOT, "spec.resources", {"memory": -1}),
    with_(SLOT, "spec.resources", {"cpus": 0}),
    with_(JOB, "metadata.name", "Upper"),
    with_(JOB, "metadata.name", "x" * 64),
    with_(JOB, "metadata.name", "-leading"),
    with_(SLOT, "spec.state", "Sleeping"),
    with_(NODE, "spec.runtime", "docker"),
    with_(JOB, "spec.command", "echo hi"),
    with_(JOB, "spec.command", []),
    with_(JOB, "spec.slot", ...),
    with_(JOB, "apiVersion", "wnr.dev/v1"),
    with_(SLOT, "spec.resources", {"pids": 0}),
    with_(SLOT, "spec.resources", {"ioWeight": 20000}),
    with_(NODE, "spec.cgroupRoot", "relative/path"),
    with_(NODE, "spec.policies", {"maxStartAttempts": 0}),
]
VALID = [
    JOB,
    SLOT,
    NODE,
    with_(SLOT, "spec.resources", {"cpus": "500m", "memory": "8Gi", "pids": 100, "ioWeight": 200}),
    with_(SLOT, "spec.resources", {"cpus": 0.5, "memory": 1073741824}),
    with_(JOB, "spec.env", {"A_B": "1"}),
    with_(NODE, "spec.cgroupRoot", "/sys/fs/cgroup/wnr"),
    with_(NODE, "spec.images", {"el9": {"x86_64": "/cvmfs/x/el9"}}),
    with_(SLOT, "spec.agents", {"replicas": 2, "command": ["sleep", "1"]}),
    with_(SLOT, "spec.deadline", "2026-12-01T00:00:00Z"),
]


@pytest.mark.parametrize("document", INVALID, ids=lambda d: str(d)[:60])
def test_models_and_crds_reject_the_same_invalid_documents(document: dict[str, Any]) -> None:
    """The model and the CRD schema both reject each invalid document."""
    assert (False, False) == (model_accepts(document), crd_accepts(document))


@pytest.mark.parametrize("document", VALID, ids=lambda d: str(d)[:60])
def test_models_and_crds_accept_the_same_valid_documents(document: dict[str, Any]) -> None:
    """The model and the CRD schema both accept each valid document."""
    assert (True, True) == (model_accepts(document), crd_accepts(document))


def test_env_key_patterns_are_checked_by_wnr_only() -> None:
    """Kubernetes schemas cannot constrain map keys, so a bad env name is caught by the model alone."""
    document = with_(JOB, "spec.env", {"bad-name": "x"})
    assert (False, True) == (model_accepts(document), crd_accepts(document))
