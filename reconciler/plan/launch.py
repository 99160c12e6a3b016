"""Planner step: how a job is launched: its image, runtime, binds, GPUs and the final argv.

Image choice (JAliEn's order): the job's `image`; else the site override
`job.container.path`; else the job's (or the slot's) `platform` looked up in
the Node's `images` for the node's architecture; else the slot's `image`.
`disable.enforce=true` in the site overrides runs jobs without a container.
Where the node's architecture or CPU features do not suit a job, it waits as
Unschedulable with the reason. The environment tells thread pools how many
CPUs the job has (THREAD_VARIABLES), unless the spec sets them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.accounts import Account
from reconciler.model.api import Job, NodeSpec, Slot
from reconciler.model.observed import NodeFacts
from reconciler.plan.runtime import IMAGE_VARIABLE, Launch, command_for, gpu_environment, resolve


@dataclass(frozen=True)
class Launched:
    """What StartJob needs: the argv to exec, the environment, the image; or why it cannot start."""

    argv: tuple[str, ...]
    env: dict[str, str]
    image: str | None
    error: str = ""


# The thread-pool sizes that libraries otherwise take from the node's core count: a 1-CPU
# job on a 64-core node would start 64 OpenMP/BLAS threads (HTCondor's
# STARTER_NUM_THREADS_ENV_VARS sets the same family from the slot's cores).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "JULIA_NUM_THREADS",
    "PYTHON_CPU_COUNT",
    "ROOT_MAX_THREADS",
)


def thread_environment(slot: Slot, job: Job) -> dict[str, str]:
    """THREAD_VARIABLES set to the job's whole CPUs (at least 1): its request, else its slot's
    limit; none when neither bounds it (the node's cores are then the job's to use)."""
    millicpus = job.spec.resources.cpus or slot.spec.resources.cpus
    if millicpus is None:
        return {}
    count = str(max(1, millicpus // 1000))
    return dict.fromkeys(THREAD_VARIABLES, count)


def node_architecture(node: NodeSpec, facts: NodeFacts) -> str:
    """The Node's architecture, detected unless the spec sets one."""
    return facts.architecture if node.architecture == "auto" else node.architecture


def placement_refusal(node: NodeSpec, facts: NodeFacts, job: Job) -> str | None:
    """Why this node can never run the job (architecture, CPU features), or None."""
    arch = node_architecture(node, facts)
    if job.spec.architecture is not None and job.spec.architecture != arch:
        return f"requires architecture {job.spec.architecture}; this node is {arch}"
    needed = [*node.cpu_features.required, *job.spec.cpu_features]
    missing = sorted({f for f in needed if f not in facts.cpu_features})
    if missing:
        return f"needs CPU features {', '.join(missing)}, which this node lacks"
    return None


def choose_image(node: NodeSpec, facts: NodeFacts, slot: Slot, job: Job) -> tuple[str | None, str]:
    """The image for a job and, when the choice is impossible, the reason."""
    if (facts.site_value("disable.enforce") or "").lower() == "true":
        return None, ""
    if job.spec.image:
        return job.spec.image, ""
    override = facts.site_value("job.container.path")
    if override:
        return override, ""
    platform = job.spec.platform or slot.spec.platform
    if platform:
        arch = node_architecture(node, facts)
        image = node.images.get(platform, {}).get(arch)
        if image is None:
            return None, f"no image for platform {platform} on {arch} in the Node's images"
        return image, ""
    return slot.spec.image, ""


def binds(node: NodeSpec, facts: NodeFacts) -> tuple[tuple[str, str], ...]:
    """Extra binds from the Node spec and the site overrides' `additional.binds`."""
    listed = list(node.binds)
    listed += [
        b.strip() for b in (facts.site_value("additional.binds") or "").split(",") if b.strip()
    ]
    pairs = []
    for bind in listed:
        source, _, target = bind.partition(":")
        pairs.append((source, target or source))
    return tuple(pairs)


def account_environment(account: Account | None) -> dict[str, str]:
    """HOME, USER and LOGNAME of the user the wrapper switches to (a login would set them);
    none when it keeps wnr's own identity."""
    if account is None:
        return {}
    return {"HOME": account.home, "USER": account.name, "LOGNAME": account.name}


def launch(
    node: NodeSpec,
    facts: NodeFacts,
    slot: Slot,
    job: Job,
    *,
    workdir: str,
    gpus: tuple[str, ...],
    account: Account | None = None,
) -> Launched:
    """The argv and environment of one attempt (the spec's own variables win)."""
    env = {
        **account_environment(account),
        **thread_environment(slot, job),
        **gpu_environment(gpus),
        **dict(sorted(job.spec.env.items())),
    }
    image, error = choose_image(node, facts, slot, job)
    if error:
        return Launched(tuple(job.spec.command), env, None, error)
    runtime = resolve(str(node.runtime), facts.runtimes)
    if image is not None:
        if runtime == "none":
            return Launched(
                tuple(job.spec.command),
                env,
                image,
                f"image {image} needs a container runtime; none is installed or selected",
            )
        if runtime not in facts.runtimes:
            return Launched(
                tuple(job.spec.command), env, image, f"runtime {runtime} is not installed"
            )
        env[IMAGE_VARIABLE] = image
    spec = Launch(
        tuple(job.spec.command), workdir, image, binds(node, facts), gpus, tuple(env.items())
    )
    return Launched(command_for(runtime, spec), env, image)
