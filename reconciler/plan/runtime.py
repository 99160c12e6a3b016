"""Runtimes: turn a job (argv, image, working dir, binds, GPUs) into the argv the wrapper execs.

Pure, so `wnr plan` shows the exact command. wnr places the wrapper in the
job cgroup before any of this runs and the runtime inherits it: no runtime
is ever asked to manage cgroups (Apptainer's --apply-cgroups or a systemd
cgroup manager would move the payload out of the slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WORKDIR = "/workdir"
# The variable that tells a payload which image it runs in, so a nested container
# (JAliEn's JobWrapper starting the payload) uses the same one.
IMAGE_VARIABLE = "WNR_CONTAINER_IMAGE"
NVIDIA_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


@dataclass(frozen=True)
class Launch:
    """Everything a runtime needs to run one payload."""

    argv: tuple[str, ...]
    workdir: str
    image: str | None = None
    binds: tuple[tuple[str, str], ...] = ()
    gpus: tuple[str, ...] = ()
    # apptainer --containall starts from a clean environment: these are passed with --env.
    env: tuple[tuple[str, str], ...] = field(default=())


def gpu_environment(gpus: Sequence[str]) -> dict[str, str]:
    """The variables that confine CUDA to the job's devices."""
    if not gpus:
        return {}
    ids = ",".join(gpus)
    return {"CUDA_VISIBLE_DEVICES": ids, "NVIDIA_VISIBLE_DEVICES": ids}


def none_argv(launch: Launch) -> tuple[str, ...]:
    """No container: the payload as it is."""
    return launch.argv


def bwrap_argv(launch: Launch, bwrap: str = "bwrap") -> tuple[str, ...]:
    """bubblewrap with the image directory as the root, the working dir at /workdir."""
    assert launch.image is not None
    argv = [bwrap, "--ro-bind", launch.image, "/", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--tmpfs", "/tmp", "--bind", launch.workdir, WORKDIR, "--chdir", WORKDIR]
    for source, target in launch.binds:
        argv += ["--bind", source, target]
    for gpu in launch.gpus:
        if gpu.isdigit():
            argv += ["--dev-bind-try", f"/dev/nvidia{gpu}", f"/dev/nvidia{gpu}"]
    if launch.gpus:
        for device in NVIDIA_DEVICES:
            argv += ["--dev-bind-try", device, device]
    # The payload inherits the wrapper's environment through bwrap; only the image is added.
    argv += ["--setenv", IMAGE_VARIABLE, launch.image]
    return (*argv, "--", *launch.argv)


def apptainer_argv(launch: Launch, apptainer: str = "apptainer") -> tuple[str, ...]:
    """`apptainer exec --containall`, binds, /workdir as the working dir, --nv for GPUs."""
    assert launch.image is not None
    binds = [f"{launch.workdir}:{WORKDIR}", *(f"{s}:{t}" for s, t in launch.binds)]
    argv = [apptainer, "exec", "--containall", "--bind", ",".join(binds), "--pwd", WORKDIR]
    if launch.gpus:
        argv.append("--nv")
    for name, value in (*launch.env, (IMAGE_VARIABLE, launch.image)):
        argv += ["--env", f"{name}={value}"]
    return (*argv, launch.image, *launch.argv)


def command_for(runtime: str, launch: Launch) -> tuple[str, ...]:
    """The argv for a resolved runtime (`none`, `bwrap`, `apptainer`)."""
    if launch.image is None or runtime == "none":
        return none_argv(launch)
    if runtime == "bwrap":
        return bwrap_argv(launch)
    return apptainer_argv(launch)


def resolve(requested: str, available: frozenset[str]) -> str:
    """`auto` becomes apptainer if installed, else bwrap, else none."""
    if requested != "auto":
        return requested
    for candidate in ("apptainer", "bwrap"):
        if candidate in available:
            return candidate
    return "none"
