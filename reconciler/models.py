"""The API objects (`Node`, `Slot`, `Job`, apiVersion `wnr.dev/v1alpha1`) as pydantic models.

Spec loading validates YAML documents into these; everything downstream (the
planner, the CRD generator) reads them and never sees raw dictionaries. Field
names are the camelCase the admin writes; unknown fields are errors.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from reconciler.quantity import Bytes, LogSize, MilliCPUs

API_VERSION = "wnr.dev/v1alpha1"

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"invalid name {value!r}: must be a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


# A DNS-1123 label: it becomes part of a cgroup name, so it can never hold `/` or `..`.
Name = Annotated[
    str,
    AfterValidator(_dns_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63}),
]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/")]
# Environment variable names as POSIX shells accept them.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PositiveSeconds = Annotated[int, Field(ge=0)]


class Strict(BaseModel):
    """Base of every API model: unknown fields are errors, and models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ObjectMeta(Strict):
    """Kubernetes-style metadata; only `name` is required."""

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Controller(StrEnum):
    """The cgroup v2 controllers wnr knows how to use."""

    cpu = "cpu"
    memory = "memory"
    pids = "pids"
    io = "io"
    cpuset = "cpuset"


class Runtime(StrEnum):
    """How a job's payload is executed: directly or inside a container image."""

    auto = "auto"
    none = "none"
    bwrap = "bwrap"
    apptainer = "apptainer"


class CoreFiles(StrEnum):
    """Whether core files in a job's working directory fail the job."""

    check = "check"
    ignore = "ignore"


class SlotState(StrEnum):
    """What the admin wants a slot to do with new and running work."""

    Active = "Active"
    Cordoned = "Cordoned"
    Draining = "Draining"


class CapacitySpec(Strict):
    """An amount of CPUs and memory (node capacity or reservation)."""

    cpus: MilliCPUs | None = None
    memory: Bytes | None = None


class IdlePolicy(Strict):
    """A job idles when its CPU use stays below a fraction of its cores for a window."""

    window_seconds: int = Field(default=900, alias="windowSeconds", ge=1)
    min_cpu_fraction: float = Field(default=0.10, alias="minCpuFraction", ge=0, le=1)


class BackoffPolicy(Strict):
    """Exponential restart delay for agents (the kubelet's CrashLoopBackOff numbers)."""

    initial_seconds: int = Field(default=10, alias="initialSeconds", ge=0)
    max_seconds: int = Field(default=300, alias="maxSeconds", ge=0)
    reset_after_seconds: int = Field(default=600, alias="resetAfterSeconds", ge=0)


class CpuFeaturePolicy(Strict):
    """CPU features (as /proc/cpuinfo names them) every job on this node requires."""

    required: list[str] = Field(default_factory=list)


class UserSpacePolicy(Strict):
    """Limits the kernel cannot enforce (a missing controller) are sampled and enforced by wnr."""

    interval_seconds: float = Field(default=5.0, alias="intervalSeconds", gt=0)
    # Kill a job whose PSS+swap exceeds memory x this factor (JAliEn uses 1.2).
    memory_factor: float = Field(default=1.0, alias="memoryFactor", ge=1.0)


LOG_MAX_SIZE_DEFAULT, LOG_MAX_FILES_DEFAULT = 10 * 2**20, 2


class LogPolicy(Strict):
    """Each attempt's (and agent's) stdout+stderr is rotated by its wrapper, as the kubelet's
    containerLogMaxSize and containerLogMaxFiles: at most maxFiles files of maxSize each."""

    max_size: LogSize = Field(default=LOG_MAX_SIZE_DEFAULT, alias="maxSize")
    max_files: int = Field(default=LOG_MAX_FILES_DEFAULT, alias="maxFiles", ge=1, le=1000)


class Policies(Strict):
    """Node-wide defaults that Jobs may override."""

    idle: IdlePolicy = Field(default_factory=IdlePolicy)
    user_space: UserSpacePolicy = Field(default_factory=UserSpacePolicy, alias="userSpace")
    max_start_attempts: int = Field(default=3, alias="maxStartAttempts", ge=1)
    core_files: CoreFiles = Field(default=CoreFiles.check, alias="coreFiles")
    agent_backoff: BackoffPolicy = Field(default_factory=BackoffPolicy, alias="agentBackoff")
    logs: LogPolicy = Field(default_factory=LogPolicy)


class NodeSpec(Strict):
    """The node-wide configuration; every field has a default."""

    cgroup_root: Literal["auto", "self"] | AbsolutePath = Field(default="auto", alias="cgroupRoot")
    controllers: list[Controller] = Field(
        default_factory=lambda: [Controller.cpu, Controller.memory, Controller.pids, Controller.io]
    )
    capacity: CapacitySpec = Field(default_factory=CapacitySpec)
    reserved: CapacitySpec = Field(default_factory=CapacitySpec)
    architecture: str = "auto"
    cpu_features: CpuFeaturePolicy = Field(default_factory=CpuFeaturePolicy, alias="cpuFeatures")
    runtime: Runtime = Runtime.auto
    # platform -> architecture -> image path, e.g. el9 -> x86_64 -> /cvmfs/.../compat_el9-x86_64
    images: dict[str, dict[str, AbsolutePath]] = Field(default_factory=dict)
    # Extra bind mounts for containers, "source" or "source:target" (e.g. /cvmfs).
    binds: list[Annotated[str, StringConstraints(pattern=r"^/[^:]*(:/[^:]*)?$")]] = Field(
        default_factory=list
    )
    site_overrides: AbsolutePath | None = Field(default=None, alias="siteOverrides")
    policies: Policies = Field(default_factory=Policies)


class SlotResources(Strict):
    """Slot limits; each maps to one cgroup interface file."""

    cpus: MilliCPUs | None = None
    memory: Bytes | None = None
    memory_high: Bytes | None = Field(default=None, alias="memoryHigh")
    swap: Bytes | None = None
    pids: int | None = Field(default=None, ge=1)
    io_weight: int | None = Field(default=None, alias="ioWeight", ge=1, le=10000)
    disk: Bytes | None = None


class AgentSpec(Strict):
    """Long-running per-slot processes (a pilot's JobAgent), restarted with backoff."""

    replicas: int = Field(default=1, ge=0)
    command: list[str] = Field(min_length=1)
    env: dict[EnvName, str] = Field(default_factory=dict)
    resources: SlotResources = Field(default_factory=SlotResources)


def _as_text(value: object) -> object:
    # YAML reads `cpuset: 3` and `gpus: [0, 1]` as integers; admins mean the text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _cpu_list(value: str) -> str:
    for part in value.split(","):
        first, _, last = part.partition("-")
        if last and int(last) < int(first):
            raise ValueError(f"invalid CPU range {part!r} in {value!r}: the end is below the start")
    return value


# A cpuset.cpus list such as "0-3,8"; ranges ascend.
CpuList = Annotated[
    str,
    BeforeValidator(_as_text),
    StringConstraints(pattern=r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$"),
    AfterValidator(_cpu_list),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$"}),
]
# A GPU id as the node names it ("0", "1", or a UUID).
DeviceId = Annotated[str, BeforeValidator(_as_text), WithJsonSchema({"type": "string"})]


class SlotSpec(Strict):
    """A share of the node handed out by the batch system."""

    resources: SlotResources = Field(default_factory=SlotResources)
    cpuset: CpuList | None = None
    gpus: list[DeviceId] = Field(default_factory=list)
    platform: str | None = None
    image: AbsolutePath | None = None
    user: str | None = None
    state: SlotState = SlotState.Active
    drain_grace_period_seconds: PositiveSeconds = Field(
        default=300, alias="drainGracePeriodSeconds"
    )
    termination_grace_period_seconds: PositiveSeconds = Field(
        default=30, alias="terminationGracePeriodSeconds"
    )
    deadline: datetime | None = None
    agents: AgentSpec | None = None


class JobResources(Strict):
    """What a job needs from its slot; it waits until that much is free."""

    cpus: MilliCPUs | None = None
    memory: Bytes | None = None
    pids: int | None = Field(default=None, ge=1)
    disk: Bytes | None = None
    gpus: int | None = Field(default=None, ge=0)


class JobSpec(Strict):
    """One payload to run to completion inside a slot."""

    slot: Name
    command: list[str] = Field(min_length=1)
    env: dict[EnvName, str] = Field(default_factory=dict)
    working_dir: AbsolutePath | None = Field(default=None, alias="workingDir")
    platform: str | None = None
    image: AbsolutePath | None = None
    architecture: str | None = None
    cpu_features: list[str] = Field(default_factory=list, alias="cpuFeatures")
    resources: JobResources = Field(default_factory=JobResources)
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds", ge=1)
    idle: IdlePolicy | None = None
    max_start_attempts: int | None = Field(default=None, alias="maxStartAttempts", ge=1)
    core_files: CoreFiles | None = Field(default=None, alias="coreFiles")

    @field_validator("command")
    @classmethod
    def _no_empty_program(cls, command: list[str]) -> list[str]:
        if not command[0]:
            raise ValueError("the program (first element) must not be empty")
        return command


class Node(Strict):
    """The node object; at most one exists."""

    api_version: Literal["wnr.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Node"]
    metadata: ObjectMeta
    spec: NodeSpec = Field(default_factory=NodeSpec)


class Slot(Strict):
    """A slot object."""

    api_version: Literal["wnr.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Slot"]
    metadata: ObjectMeta
    spec: SlotSpec = Field(default_factory=SlotSpec)


class Job(Strict):
    """A job object."""

    api_version: Literal["wnr.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Job"]
    metadata: ObjectMeta
    spec: JobSpec


ApiObject = Node | Slot | Job
KINDS: dict[str, type[Node] | type[Slot] | type[Job]] = {"Node": Node, "Slot": Slot, "Job": Job}
