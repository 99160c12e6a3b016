"""The API objects (`Node`, `Slot`, `Job`, apiVersion `wnr.dev/v1alpha1`) as pydantic models.

Spec loading validates YAML documents into these; everything downstream (the
planner, the CRD generator) reads them and never sees raw dictionaries. Field
names are the camelCase the admin writes; unknown fields are errors.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from reconciler.model.fields import (
    MAX_COUNT,
    MAX_EXEC_BYTES,
    MAX_SECONDS,
    PID_MAX_LIMIT,
    AbsolutePath,
    Arg,
    Bind,
    CpuList,
    DeviceId,
    EnvName,
    Name,
    PositiveSeconds,
    Strict,
    Text,
)
from reconciler.model.quantity import Bytes, LogSize, MilliCPUs

API_VERSION = "wnr.dev/v1alpha1"


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
    """A job idles when its CPU use stays below a fraction of its cores for a window, and it
    was not stalled on memory or I/O meanwhile (PSI, where the kernel has it)."""

    window_seconds: int = Field(default=900, alias="windowSeconds", ge=1, le=MAX_SECONDS)
    min_cpu_fraction: float = Field(default=0.10, alias="minCpuFraction", ge=0, le=1)
    # Where the kernel has PSI: a job whose tasks waited on memory or I/O for at least this
    # share of a sample's time is stalled, not idle (its `Stalled` condition says so).
    min_stall_fraction: float = Field(default=0.10, alias="minStallFraction", gt=0, le=1)


class BackoffPolicy(Strict):
    """Exponential restart delay for agents (the kubelet's CrashLoopBackOff numbers)."""

    initial_seconds: PositiveSeconds = Field(default=10, alias="initialSeconds")
    max_seconds: PositiveSeconds = Field(default=300, alias="maxSeconds")
    reset_after_seconds: PositiveSeconds = Field(default=600, alias="resetAfterSeconds")


class CpuFeaturePolicy(Strict):
    """CPU features (as /proc/cpuinfo names them) every job on this node requires."""

    required: list[Text] = Field(default_factory=list)


class UserSpacePolicy(Strict):
    """Limits the kernel cannot enforce (a missing controller) are sampled and enforced by wnr."""

    interval_seconds: float = Field(default=5.0, alias="intervalSeconds", gt=0, le=MAX_SECONDS)
    # Kill a job whose working set (anon+shmem+swap) exceeds memory x this factor (JAliEn: 1.2).
    memory_factor: float = Field(default=1.0, alias="memoryFactor", ge=1.0, le=1000.0)


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
    max_start_attempts: int = Field(default=3, alias="maxStartAttempts", ge=1, le=MAX_COUNT)
    core_files: CoreFiles = Field(default=CoreFiles.check, alias="coreFiles")
    agent_backoff: BackoffPolicy = Field(default_factory=BackoffPolicy, alias="agentBackoff")
    logs: LogPolicy = Field(default_factory=LogPolicy)


class SpecLimits(Strict):
    """What one spec file, and the whole spec set, may hold; beyond it a file is refused
    whole (never partly read) and keeps its last good objects."""

    max_file_size: Bytes = Field(default=4 * 2**20, alias="maxFileSize", ge=1, le=2**30)
    max_documents: int = Field(default=1000, alias="maxDocuments", ge=1, le=100_000)
    # Objects in the whole spec set: a node runs tens of jobs (the kubelet's maxPods is 110).
    max_objects: int = Field(default=10_000, alias="maxObjects", ge=1, le=1_000_000)


class NodeSpec(Strict):
    """The node-wide configuration; every field has a default."""

    cgroup_root: Literal["auto", "self"] | AbsolutePath = Field(default="auto", alias="cgroupRoot")
    controllers: list[Controller] = Field(
        default_factory=lambda: [Controller.cpu, Controller.memory, Controller.pids, Controller.io]
    )
    capacity: CapacitySpec = Field(default_factory=CapacitySpec)
    reserved: CapacitySpec = Field(default_factory=CapacitySpec)
    architecture: Text = "auto"
    cpu_features: CpuFeaturePolicy = Field(default_factory=CpuFeaturePolicy, alias="cpuFeatures")
    runtime: Runtime = Runtime.auto
    # platform -> architecture -> image path, e.g. el9 -> x86_64 -> /cvmfs/.../compat_el9-x86_64
    images: dict[Text, dict[Text, AbsolutePath]] = Field(default_factory=dict)
    # Extra bind mounts for containers, "source" or "source:target" (e.g. /cvmfs).
    binds: list[Bind] = Field(default_factory=list)
    site_overrides: AbsolutePath | None = Field(default=None, alias="siteOverrides")
    # Who a root wnr runs a slot's jobs and agents as when the Slot names no `user`; never
    # root (only a Slot's explicit `user: root` is).
    default_user: Text = Field(default="nobody", alias="defaultUser")
    policies: Policies = Field(default_factory=Policies)
    spec_limits: SpecLimits = Field(default_factory=SpecLimits, alias="specLimits")


class SlotResources(Strict):
    """Slot limits; each maps to one cgroup interface file."""

    cpus: MilliCPUs | None = None
    memory: Bytes | None = None
    memory_high: Bytes | None = Field(default=None, alias="memoryHigh")
    swap: Bytes | None = None
    pids: int | None = Field(default=None, ge=1, le=PID_MAX_LIMIT)
    io_weight: int | None = Field(default=None, alias="ioWeight", ge=1, le=10000)
    disk: Bytes | None = None


class AgentSpec(Strict):
    """Long-running per-slot processes (a pilot's JobAgent), restarted with backoff."""

    replicas: int = Field(default=1, ge=0, le=1024)
    command: list[Arg] = Field(min_length=1)
    env: dict[EnvName, Arg] = Field(default_factory=dict)
    resources: SlotResources = Field(default_factory=SlotResources)


class SlotSpec(Strict):
    """A share of the node handed out by the batch system."""

    resources: SlotResources = Field(default_factory=SlotResources)
    cpuset: CpuList | None = None
    gpus: list[DeviceId] = Field(default_factory=list)
    platform: Text | None = None
    image: AbsolutePath | None = None
    user: Text | None = None
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
    # memory.swap.max of the job; unset, the job gets none unless its slot sets `swap`.
    swap: Bytes | None = None
    pids: int | None = Field(default=None, ge=1, le=PID_MAX_LIMIT)
    disk: Bytes | None = None
    gpus: int | None = Field(default=None, ge=0, le=MAX_COUNT)


class JobSpec(Strict):
    """One payload to run to completion inside a slot."""

    slot: Name
    command: list[Arg] = Field(min_length=1)
    env: dict[EnvName, Arg] = Field(default_factory=dict)
    working_dir: AbsolutePath | None = Field(default=None, alias="workingDir")
    platform: Text | None = None
    image: AbsolutePath | None = None
    architecture: Text | None = None
    cpu_features: list[Text] = Field(default_factory=list, alias="cpuFeatures")
    resources: JobResources = Field(default_factory=JobResources)
    active_deadline_seconds: int | None = Field(
        default=None, alias="activeDeadlineSeconds", ge=1, le=MAX_SECONDS
    )
    idle: IdlePolicy | None = None
    max_start_attempts: int | None = Field(
        default=None, alias="maxStartAttempts", ge=1, le=MAX_COUNT
    )
    core_files: CoreFiles | None = Field(default=None, alias="coreFiles")

    @field_validator("command")
    @classmethod
    def _no_empty_program(cls, command: list[str]) -> list[str]:
        if not command[0]:
            raise ValueError("the program (first element) must not be empty")
        return command

    @model_validator(mode="after")
    def _fits_exec(self) -> JobSpec:
        size = sum(len(a.encode("utf-8", "surrogatepass")) + 1 for a in self.command)
        size += sum(
            len(k) + len(v.encode("utf-8", "surrogatepass")) + 2 for k, v in self.env.items()
        )
        if size > MAX_EXEC_BYTES:
            raise ValueError(
                f"command and env take {size} bytes; exec(2) is given at most {MAX_EXEC_BYTES} "
                "here (the rest of ARG_MAX is the wrapper's and the runtime's)"
            )
        return self


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
