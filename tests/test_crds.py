"""The generated CRDs: committed files in sync, structural schemas, and agreement with the models."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError
from ruamel.yaml import YAML

from reconciler.crds import all_crds, crd_filename, crd_for, render, render_crds, strict_schema
from reconciler.model.api import API_VERSION, KINDS, Slot
from reconciler.model.quantity import parse_bytes, parse_millicpus

REPO = Path(__file__).resolve().parent.parent
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in all_crds()}
SCHEMAS = {kind: strict_schema(crd) for kind, crd in CRDS.items()}
REGENERATE = "regenerate with `.venv/bin/python -m reconciler.crds crds` (see crds/README.md)"


def openapi(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of a CRD's only version."""
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def load(text: str) -> Any:
    """One YAML document, read the way the tests read every document."""
    return YAML(typ="safe").load(text)


def jsonable(value: Any) -> Any:
    """YAML timestamps as the ISO strings that kubectl sends to an API server."""
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
    """Whether the strict CRD schema of the document's kind validates it (Slot's for an unknown kind)."""
    schema = SCHEMAS.get(document.get("kind"), SCHEMAS["Slot"])
    return jsonschema.Draft202012Validator(schema).is_valid(jsonable(document))


def test_committed_crds_match_the_models() -> None:
    """crds/ holds exactly what the generator makes from the models."""
    for crd in all_crds():
        path = REPO / "crds" / crd_filename(crd)
        assert path.is_file(), f"{path} is missing; {REGENERATE}"
        assert render([crd]) == path.read_text(), f"{path} drifted from the models; {REGENERATE}"


def test_render_crds_is_every_crd_in_kind_order() -> None:
    """`wnr crds` prints the Node, Slot and Job CRDs as one multi-document YAML stream."""
    documents = list(YAML(typ="safe").load_all(render_crds()))
    assert ["Node", "Slot", "Job"] == [d["spec"]["names"]["kind"] for d in documents]
    assert all_crds() == documents


def test_crds_name_the_group_version_scope_and_status() -> None:
    """Each CRD serves and stores wnr.dev/v1alpha1, cluster-scoped, with a status subresource."""
    for kind, plural in [("Node", "nodes"), ("Slot", "slots"), ("Job", "jobs")]:
        crd = CRDS[kind]
        version = crd["spec"]["versions"][0]
        assert f"{plural}.wnr.dev" == crd["metadata"]["name"]
        assert f"wnr.dev_{plural}.yaml" == crd_filename(crd)
        assert ("wnr.dev", "Cluster") == (crd["spec"]["group"], crd["spec"]["scope"])
        assert [f"wnr{kind.lower()}"] == crd["spec"]["names"]["shortNames"]
        assert ("v1alpha1", True, True) == (version["name"], version["served"], version["storage"])
        assert {"status": {}} == version["subresources"]
        assert {"type": "object", "x-kubernetes-preserve-unknown-fields": True} == openapi(crd)[
            "properties"
        ]["status"]
    columns = {
        c["name"]: c["jsonPath"]
        for c in CRDS["Job"]["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert (".spec.slot", ".status.phase") == (columns["Slot"], columns["Phase"])


# What apiextensions.k8s.io/v1 JSONSchemaProps accepts in a CRD; $ref, patternProperties,
# definitions, dependencies, additionalItems and uniqueItems are rejected by the server.
ALLOWED = {
    "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf",
    "oneOf", "anyOf", "not", "properties", "additionalProperties", "externalDocs", "example",
    "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
    "x-kubernetes-map-type", "x-kubernetes-validations",
}  # fmt: skip
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
# Under anyOf/allOf/oneOf/not only value validations may appear.
NOT_NESTED = {"type", "description", "title", "default", "nullable", "additionalProperties"}


def node_problems(node: dict[str, Any], path: str, nested: bool) -> list[str]:
    """What one schema node (not its children) does that a structural CRD schema forbids."""
    found = [f"{path}: {key} is not allowed in a CRD" for key in node if key not in ALLOWED]
    int_or_string = bool(node.get("x-kubernetes-int-or-string"))
    if nested:
        found += [
            f"{path}: {key} inside anyOf/allOf/oneOf/not"
            for key in node
            if key in NOT_NESTED or key.startswith("x-")
        ]
    elif not (
        {"type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields"} & set(node)
    ):
        found.append(f"{path}: no type")
    if int_or_string and ("type" in node or node.get("anyOf", INT_OR_STRING) != INT_OR_STRING):
        found.append(f"{path}: int-or-string must be exactly anyOf [integer, string], with no type")
    if node.get("type") == "array" and "items" not in node:
        found.append(f"{path}: an array without items")
    if "properties" in node and "additionalProperties" in node:
        found.append(f"{path}: properties and additionalProperties together")
    found += [
        f"{path}: {key} must be a boolean in OpenAPI v3.0"
        for key in ("exclusiveMinimum", "exclusiveMaximum")
        if not isinstance(node.get(key, False), bool)
    ]
    return found


def problems(node: dict[str, Any], path: str = "$", nested: bool = False) -> list[str]:
    """Where a schema breaks the API server's structural-schema rules (after apiextensions' ValidateStructural)."""
    found = node_problems(node, path, nested)
    int_or_string = bool(node.get("x-kubernetes-int-or-string"))
    for key in ("anyOf", "allOf", "oneOf"):
        for index, option in enumerate(node.get(key, [])):
            if not (int_or_string and key == "anyOf" and option in INT_OR_STRING):
                found += problems(option, f"{path}.{key}[{index}]", nested=True)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            found += problems(node[key], f"{path}.{key}", nested=nested or key == "not")
    for name, field in node.get("properties", {}).items():
        found += problems(field, f"{path}.{name}", nested)
    return found


def root_problems(schema: dict[str, Any]) -> list[str]:
    """Structural problems, plus the rules for the root: an object whose metadata restricts only the name."""
    found = problems(schema)
    if schema.get("type") != "object" or "additionalProperties" in schema:
        found.append("$: the root must be an object without additionalProperties")
    metadata = schema.get("properties", {}).get("metadata", {"type": "object"})
    if {k: v for k, v in metadata.items() if k != "properties"} != {"type": "object"}:
        found.append("$.metadata: may only be {type: object} with properties")
    if not set(metadata.get("properties", {})) <= {"name", "generateName"}:
        found.append("$.metadata: may only restrict name and generateName")
    return found


@pytest.mark.parametrize("kind", ["Node", "Slot", "Job"])
def test_crd_schemas_are_structural(kind: str) -> None:
    """Every schema node has a type or is int-or-string, with no $ref, nested types, or other non-structural parts."""
    assert [] == root_problems(openapi(CRDS[kind]))


# fmt: off
NOT_STRUCTURAL = [
    pytest.param({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}, id="ref"),
    pytest.param({"type": "object", "properties": {"a": {"description": "untyped"}}}, id="no-type"),
    pytest.param({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}}}, id="int-or-string-with-bounds-inside"),
    pytest.param({"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"type": "string", "pattern": "^/"}]}}}, id="type-inside-anyOf"),
    pytest.param({"type": "object", "properties": {"a": {"type": "number", "exclusiveMinimum": 0}}}, id="numeric-exclusiveMinimum"),
    pytest.param({"type": "object", "properties": {"a": {"type": "object", "patternProperties": {"^x$": {"type": "string"}}}}}, id="patternProperties"),
    pytest.param({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}, id="metadata-labels"),
]
# fmt: on


@pytest.mark.parametrize("schema", NOT_STRUCTURAL)
def test_structural_check_catches_what_an_api_server_rejects(schema: dict[str, Any]) -> None:
    """The structural check above is not vacuous: it flags each kind of schema an API server refuses."""
    assert root_problems(schema) != []


def test_strict_schema_closes_every_object_but_metadata() -> None:
    """strict_schema forbids unknown fields in every object with fields, except the server-owned metadata."""
    open_objects: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path)
        elif isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, value in node.items():
                walk(
                    value, f"{path}.{key}" if key not in {"properties", "anyOf", "items"} else path
                )

    for schema in SCHEMAS.values():
        walk(schema, "$")
    assert ["$.metadata"] * 3 == open_objects


def example_documents() -> list[tuple[str, Any]]:
    """Every YAML document in every file under examples/, with where it comes from."""
    yaml = YAML(typ="safe")
    found = []
    paths = sorted([*(REPO / "examples").rglob("*.yaml"), *(REPO / "examples").rglob("*.yml")])
    for path in paths:
        for index, document in enumerate(yaml.load_all(path.read_text())):
            if document is not None:
                found.append((f"{path.relative_to(REPO)} document {index + 1}", document))
    return found


def test_examples_are_valid_for_models_and_crds() -> None:
    """Each example document is valid against both its model and its strict CRD schema (vacuous if there are none)."""
    verdicts = {where: (model_accepts(doc), crd_accepts(doc)) for where, doc in example_documents()}
    assert dict.fromkeys(verdicts, (True, True)) == verdicts


def document(kind: str, spec: str = "", *, name: str = "x", extra: str = "") -> str:
    """A one-line YAML document of `kind` with the given spec body (flow style)."""
    return f"{{apiVersion: {API_VERSION}, kind: {kind}, metadata: {{name: {name}}}, spec: {{{spec}}}{extra}}}"


RUN = "slot: s, command: [run]"

# fmt: off
INVALID = [
    pytest.param(document("Job", RUN, extra=", extra: 1"), id="unknown-field-top-level"),
    pytest.param(document("Job", f"{RUN}, extra: 1"), id="unknown-field-in-spec"),
    pytest.param(document("Job", f"{RUN}, resources: {{memory: 1Gi, bogus: 1}}"), id="unknown-field-nested"),
    pytest.param(document("Slot", "agents: {command: [a], restart: always}"), id="unknown-field-in-agents"),
    pytest.param(document("Node", "policies: {idle: {window: 5}}"), id="unknown-field-two-deep"),
    pytest.param(document("Slot", "resources: {memory: 8Gx}"), id="bad-quantity-suffix"),
    pytest.param(document("Slot", "resources: {memory: -1}"), id="negative-memory"),
    pytest.param(document("Slot", "resources: {memory: -1Gi}"), id="negative-memory-string"),
    pytest.param(document("Slot", "resources: {memory: 500m}"), id="memory-in-millis"),
    pytest.param(document("Slot", "resources: {memory: '1.5'}"), id="fractional-bytes"),
    pytest.param(document("Slot", "resources: {cpus: 0}"), id="zero-cpus"),
    pytest.param(document("Slot", "resources: {cpus: '0'}"), id="zero-cpus-string"),
    pytest.param(document("Slot", "resources: {cpus: 0m}"), id="zero-millicpus"),
    pytest.param(document("Slot", "resources: {cpus: 2Gi}"), id="cpus-with-byte-suffix"),
    pytest.param(document("Slot", "resources: {cpus: 1.5m}"), id="cpus-finer-than-a-millicore"),
    pytest.param(document("Slot", "resources: {cpus: '0.0005'}"), id="cpus-finer-than-a-millicore-in-cores"),
    pytest.param(document("Job", RUN, name="Upper"), id="name-uppercase"),
    pytest.param(document("Job", RUN, name="x" * 64), id="name-too-long"),
    pytest.param(document("Job", RUN, name="-leading"), id="name-leading-dash"),
    pytest.param(document("Job", RUN, name="a.b"), id="name-with-dot"),
    pytest.param(document("Job", "slot: Bad, command: [run]"), id="slot-reference-not-a-name"),
    pytest.param(document("Slot", "state: Sleeping"), id="bad-state"),
    pytest.param(document("Node", "runtime: docker"), id="bad-runtime"),
    pytest.param(document("Node", "controllers: [cpu, gpu]"), id="bad-controller"),
    pytest.param(document("Job", "slot: s, coreFiles: keep, command: [run]"), id="bad-core-files"),
    pytest.param(document("Job", "slot: s, command: echo hi"), id="command-not-a-list"),
    pytest.param(document("Job", "slot: s, command: []"), id="empty-command"),
    pytest.param(document("Slot", "agents: {replicas: 1}"), id="agent-without-command"),
    pytest.param(document("Job", "command: [run]"), id="missing-slot"),
    pytest.param(f"{{apiVersion: {API_VERSION}, kind: Job, spec: {{{RUN}}}}}", id="missing-metadata"),
    pytest.param(f"{{apiVersion: {API_VERSION}, kind: Job, metadata: {{}}, spec: {{{RUN}}}}}", id="missing-name"),
    pytest.param(f"{{apiVersion: {API_VERSION}, kind: Job, metadata: {{name: j}}}}", id="job-without-spec"),
    pytest.param(document("Job", RUN).replace("wnr.dev/v1alpha1", "wnr.dev/v1"), id="wrong-api-version"),
    pytest.param(document("Slot", "resources: {pids: 0}"), id="zero-pids"),
    pytest.param(document("Slot", "resources: {ioWeight: 20000}"), id="io-weight-too-high"),
    pytest.param(document("Node", "cgroupRoot: relative/path"), id="relative-cgroup-root"),
    pytest.param(document("Node", "images: {el9: {x86_64: relative}}"), id="relative-image"),
    pytest.param(document("Node", "binds: ['cvmfs']"), id="relative-bind"),
    pytest.param(document("Node", "policies: {maxStartAttempts: 0}"), id="zero-start-attempts"),
    pytest.param(document("Node", "policies: {idle: {minCpuFraction: 1.5}}"), id="cpu-fraction-above-one"),
    pytest.param(document("Node", "policies: {userSpace: {intervalSeconds: 0}}"), id="zero-sampling-interval"),
    pytest.param(document("Node", "policies: {logs: {maxFiles: 0}}"), id="zero-log-files"),
    pytest.param(document("Node", "policies: {logs: {maxSize: 100}}"), id="log-size-below-the-minimum"),
    pytest.param(document("Node", "policies: {logs: {maxSize: 10Xi}}"), id="bad-log-size"),
    pytest.param(document("Slot", "cpuset: '0-3;5'"), id="bad-cpuset"),
    pytest.param(document("Slot", "cpuset: -1"), id="negative-cpuset"),
    pytest.param(document("Slot", "drainGracePeriodSeconds: -1"), id="negative-grace-period"),
    pytest.param(document("Slot", "agents: {replicas: -1, command: [a]}"), id="negative-replicas"),
    pytest.param(document("Slot", "deadline: [2026]"), id="deadline-not-a-time"),
]

VALID = [
    pytest.param(document("Job", RUN), id="minimal-job"),
    pytest.param(document("Slot"), id="minimal-slot"),
    pytest.param(document("Node"), id="minimal-node"),
    pytest.param(f"{{apiVersion: {API_VERSION}, kind: Slot, metadata: {{name: s}}}}", id="slot-without-spec"),
    pytest.param(document("Slot", "resources: {cpus: 500m, memory: 8Gi, memoryHigh: 7Gi, swap: 0, pids: 100, ioWeight: 200, disk: 20G}"), id="every-slot-resource"),
    pytest.param(document("Slot", "resources: {cpus: 2, memory: 1073741824}"), id="plain-numbers"),
    pytest.param(document("Slot", "resources: {cpus: '0.5', memory: 1.5Gi}"), id="fractions-as-strings"),
    pytest.param(document("Slot", "resources: {cpus: '0.125', memory: 1k}"), id="three-decimal-cpus"),
    pytest.param(document("Job", f"{RUN}, env: {{A_B: '1', _x: y}}"), id="env"),
    pytest.param(document("Job", f"{RUN}, workingDir: /tmp, image: /cvmfs/img, architecture: x86_64, cpuFeatures: [avx2]"), id="job-placement"),
    pytest.param(document("Job", f"{RUN}, activeDeadlineSeconds: 60, idle: {{windowSeconds: 60}}, maxStartAttempts: 2, coreFiles: ignore"), id="job-policies"),
    pytest.param(document("Job", f"{RUN}, resources: {{cpus: 1, memory: 2Gi, pids: 10, disk: 1Gi, gpus: 0}}"), id="job-resources"),
    pytest.param(document("Job", f"{RUN}, coreFiles: null, workingDir: null"), id="nulls-for-optional-fields"),
    pytest.param(document("Job", f"{RUN}, image: null, resources: {{memory: null}}"), id="null-quantity"),
    pytest.param(document("Node", "cgroupRoot: /sys/fs/cgroup/wnr"), id="absolute-cgroup-root"),
    pytest.param(document("Node", "cgroupRoot: self"), id="cgroup-root-self"),
    pytest.param(document("Node", "controllers: [cpu, memory], runtime: apptainer, architecture: aarch64"), id="node-basics"),
    pytest.param(document("Node", "capacity: {cpus: 64, memory: 256Gi}, reserved: {cpus: 2, memory: 4Gi}"), id="capacity-and-reserved"),
    pytest.param(document("Node", "images: {el9: {x86_64: /cvmfs/x/el9}}, binds: [/cvmfs, '/a:/b'], siteOverrides: /etc/wnr/c.properties"), id="images-and-binds"),
    pytest.param(document("Node", "policies: {userSpace: {intervalSeconds: 0.5, memoryFactor: 1.2}, agentBackoff: {initialSeconds: 0}}"), id="policies"),
    pytest.param(document("Slot", "agents: {replicas: 2, command: [sleep, '1'], env: {A: b}, resources: {memory: 1Gi}}"), id="agents"),
    pytest.param(document("Node", "policies: {logs: {maxSize: 10Mi, maxFiles: 5}}"), id="log-rotation"),
    pytest.param(document("Node", "policies: {logs: {maxSize: 4096, maxFiles: 1}}"), id="smallest-log-rotation"),
    pytest.param(
        f"apiVersion: {API_VERSION}\nkind: Slot\nmetadata: {{name: x}}\nspec:\n  deadline: 2026-12-01T00:00:00Z\n  state: Draining\n",
        id="yaml-timestamp-deadline",
    ),
    pytest.param(document("Slot", "deadline: '2026-12-01T00:00:00+01:00'"), id="string-deadline"),
    pytest.param(document("Slot", "cpuset: '0-3,8', gpus: ['0', GPU-1234]"), id="cpuset-and-gpu-ids"),
    pytest.param(document("Slot", "cpuset: 3, gpus: [0, 1]"), id="cpuset-and-gpus-as-yaml-integers"),
    pytest.param(document("Slot", "user: alice, platform: el9, image: /cvmfs/img"), id="slot-defaults-for-jobs"),
    pytest.param(document("Job", RUN, name="a" * 63), id="longest-name"),
]
# fmt: on


@pytest.mark.parametrize("text", INVALID)
def test_models_and_crds_reject_the_same_invalid_documents(text: str) -> None:
    """The model and the strict CRD schema both reject each invalid document."""
    document = load(text)
    assert (False, False) == (model_accepts(document), crd_accepts(document))


@pytest.mark.parametrize("text", VALID)
def test_models_and_crds_accept_the_same_valid_documents(text: str) -> None:
    """The model and the strict CRD schema both accept each valid document."""
    document = load(text)
    assert (True, True) == (model_accepts(document), crd_accepts(document))


# Where a model and an API server cannot agree, each case says (model, CRD) and why; a change
# that makes them agree fails here, and the case moves to VALID or INVALID.
# fmt: off
DIFFERENCES = [
    # Kubernetes cannot constrain map keys: patternProperties is forbidden, and a CEL rule over
    # an unbounded map of unbounded keys exceeds the API server's cost budget. wnr checks them.
    pytest.param(document("Job", f"{RUN}, env: {{bad-name: x}}"), (False, True), id="env-key-with-dash"),
    # int-or-string holds integers only; a Kubernetes object writes fractional CPUs as "0.5".
    pytest.param(document("Slot", "resources: {cpus: 0.5}"), (True, False), id="fractional-cpus-as-number"),
    # Kubernetes keeps status in the object; wnr keeps it in its state dir, never in spec files.
    pytest.param(document("Slot", extra=", status: {phase: Ready}"), (False, True), id="status-in-spec-file"),
    # The server owns metadata (namespace, uid, labels syntax); the model allows name, labels, annotations.
    pytest.param(document("Slot").replace("{name: x}", "{name: x, namespace: y}"), (False, True), id="server-metadata"),
    # A regular expression cannot compare the two ends of a CPU range.
    pytest.param(document("Slot", "cpuset: 3-1"), (False, True), id="descending-cpu-range"),
    # A pattern cannot tell whether a binary fraction is a whole number of bytes (0.1Ki = 102.4).
    pytest.param(document("Slot", "resources: {memory: 0.1Ki}"), (False, True), id="fraction-of-a-byte"),
    # A pattern cannot compare a quantity string with the log size minimum (4Ki); integers are checked.
    pytest.param(document("Node", "policies: {logs: {maxSize: 1Ki}}"), (False, True), id="log-size-string-below-the-minimum"),
    # The model's own check that the program is not empty has no schema.
    pytest.param(document("Job", "slot: s, command: ['']"), (False, True), id="empty-program"),
    # The API server prunes a null in a non-nullable field as if it were absent; the model wants an object.
    pytest.param(document("Job", f"{RUN}, resources: null"), (False, True), id="null-resources"),
    # The models are lax (strict=False): numeric strings and Unix times become integers and datetimes.
    pytest.param(document("Slot", "resources: {pids: '100'}"), (True, False), id="numeric-string-for-integer"),
    pytest.param(document("Slot", "deadline: 1767225600"), (True, False), id="unix-time-deadline"),
]
# fmt: on


@pytest.mark.parametrize(("text", "verdicts"), DIFFERENCES)
def test_known_differences_between_models_and_crds(text: str, verdicts: tuple[bool, bool]) -> None:
    """Each documented difference between a model and its CRD is still exactly as documented."""
    document = load(text)
    assert verdicts == (model_accepts(document), crd_accepts(document))


def pattern(field: str) -> str:
    """The CRD pattern of one quantity field of Slot's resources."""
    value: str = openapi(crd_for(Slot))["properties"]["spec"]["properties"]["resources"][
        "properties"
    ][field]["pattern"]
    return value


def parses(parse: Any, text: str) -> bool:
    """Whether a quantity parser accepts the text."""
    try:
        parse(text)
    except ValueError:
        return False
    return True


QUANTITY_TEXT = st.text(alphabet="0123456789.mkMGTPEi", max_size=8)


def over_maximum(parse: Any, text: str) -> bool:
    """Whether the parser refuses the text only for its size (a pattern cannot say that)."""
    try:
        parse(text)
    except ValueError as exc:
        return "maximum" in str(exc) or "million" in str(exc)
    return False


@given(QUANTITY_TEXT)
def test_cpu_pattern_accepts_what_the_parser_accepts(text: str) -> None:
    """The CRD's CPU pattern accepts exactly the strings parse_millicpus accepts, but for more than a million CPUs."""
    accepted = parses(parse_millicpus, text) or over_maximum(parse_millicpus, text)
    assert accepted == bool(re.search(pattern("cpus"), text))


@given(QUANTITY_TEXT)
@example(".0")
@example("1.00")
def test_bytes_pattern_accepts_what_the_parser_accepts(text: str) -> None:
    """The CRD's byte pattern accepts what parse_bytes accepts, and more only for suffixed fractions and values over 8Ei."""
    model, crd = parses(parse_bytes, text), bool(re.search(pattern("memory"), text))
    fraction = "." in text and not text[-1].isdigit()
    assert model == crd or (crd and (fraction or over_maximum(parse_bytes, text)))
