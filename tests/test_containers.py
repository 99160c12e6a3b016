"""Images, runtimes, architectures and GPUs: golden argv, real bubblewrap, scheduling by node facts."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.model.api import Job, NodeSpec, Slot
from reconciler.model.observed import NodeFacts
from reconciler.plan.launch import launch, placement_refusal
from reconciler.plan.runtime import Launch, apptainer_argv, bwrap_argv
from tests.helpers import common, wnr

PAYLOAD = ("python3", "run.py")


def slot(**spec: Any) -> Slot:
    """A slot model."""
    return Slot.model_validate(
        {"apiVersion": "wnr.dev/v1alpha1", "kind": "Slot", "metadata": {"name": "s"}, "spec": spec}
    )


def job(**spec: Any) -> Job:
    """A job model in slot s."""
    body = {"slot": "s", "command": list(PAYLOAD), **spec}
    return Job.model_validate(
        {"apiVersion": "wnr.dev/v1alpha1", "kind": "Job", "metadata": {"name": "j"}, "spec": body}
    )


def test_bwrap_golden_argv_plain() -> None:
    """A plain bwrap launch: image as read-only root, /proc, /dev, private /tmp, workdir at /workdir."""
    expected = (
        "bwrap", "--ro-bind", "/img", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        "--bind", "/w", "/workdir", "--chdir", "/workdir",
        "--setenv", "WNR_CONTAINER_IMAGE", "/img", "--", *PAYLOAD,
    )  # fmt: skip
    assert expected == bwrap_argv(Launch(PAYLOAD, "/w", "/img"))


def test_bwrap_golden_argv_binds_and_gpus() -> None:
    """Binds come after the workdir; GPU device nodes are bound only when GPUs are assigned."""
    argv = bwrap_argv(Launch(PAYLOAD, "/w", "/img", binds=(("/cvmfs", "/cvmfs"),), gpus=("1",)))
    expected_tail = (
        "--bind", "/cvmfs", "/cvmfs",
        "--dev-bind-try", "/dev/nvidia1", "/dev/nvidia1",
        "--dev-bind-try", "/dev/nvidiactl", "/dev/nvidiactl",
        "--dev-bind-try", "/dev/nvidia-uvm", "/dev/nvidia-uvm",
        "--dev-bind-try", "/dev/nvidia-uvm-tools", "/dev/nvidia-uvm-tools",
        "--setenv", "WNR_CONTAINER_IMAGE", "/img", "--", *PAYLOAD,
    )  # fmt: skip
    assert expected_tail == argv[-len(expected_tail) :]


def test_apptainer_golden_argv_plain_and_gpus() -> None:
    """apptainer exec --containall with the workdir bound at /workdir, --nv for GPUs, env via --env."""
    plain = apptainer_argv(Launch(PAYLOAD, "/w", "/img", env=(("A", "1"),)))
    assert (
        "apptainer", "exec", "--containall", "--bind", "/w:/workdir", "--pwd", "/workdir",
        "--env", "A=1", "--env", "WNR_CONTAINER_IMAGE=/img", "/img", *PAYLOAD,
    ) == plain  # fmt: skip
    gpus = apptainer_argv(Launch(PAYLOAD, "/w", "/img", binds=(("/cvmfs", "/cvmfs"),), gpus=("0",)))
    assert (
        "apptainer",
        "exec",
        "--containall",
        "--bind",
        "/w:/workdir,/cvmfs:/cvmfs",
        "--pwd",
        "/workdir",
        "--nv",
    ) == gpus[:8]
    assert "--apply-cgroups" not in plain + gpus


FACTS = NodeFacts(
    architecture="x86_64",
    cpu_features=frozenset({"sse4_2", "avx"}),
    runtimes=frozenset({"apptainer", "bwrap"}),
)
NODE = NodeSpec.model_validate(
    {
        "images": {"el9": {"x86_64": "/cvmfs/el9-x86_64", "aarch64": "/cvmfs/el9-aarch64"}},
        "binds": ["/cvmfs"],
    }
)


def test_image_from_platform_catalog_with_nested_image_variable() -> None:
    """A job's platform picks the node architecture's image; the payload learns it for nested containers."""
    how = launch(NODE, FACTS, slot(), job(platform="el9"), workdir="/w", gpus=())
    assert ("/cvmfs/el9-x86_64", "") == (how.image, how.error)
    assert "/cvmfs/el9-x86_64" == how.env["WNR_CONTAINER_IMAGE"]
    assert ("apptainer", "exec", "--containall", "--bind", "/w:/workdir,/cvmfs:/cvmfs") == how.argv[
        :5
    ]


def test_site_overrides_replace_the_image_and_add_binds() -> None:
    """container.properties' job.container.path wins over the catalog and additional.binds are added."""
    facts = NodeFacts(
        runtimes=frozenset({"bwrap"}),
        site=(("job.container.path", "/site/img"), ("additional.binds", "/scratch:/data")),
    )
    how = launch(NODE, facts, slot(platform="el9"), job(), workdir="/w", gpus=())
    assert "/site/img" == how.image
    assert ("--bind", "/scratch", "/data") == how.argv[
        how.argv.index("/scratch") - 1 : how.argv.index("/scratch") + 2
    ]
    disabled = NodeFacts(runtimes=frozenset({"bwrap"}), site=(("disable.enforce", "true"),))
    assert (
        PAYLOAD == launch(NODE, disabled, slot(platform="el9"), job(), workdir="/w", gpus=()).argv
    )


def test_gpus_reach_the_environment() -> None:
    """Assigned GPUs set CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES."""
    how = launch(NODE, FACTS, slot(), job(), workdir="/w", gpus=("0", "3"))
    assert ("0,3", "0,3") == (how.env["CUDA_VISIBLE_DEVICES"], how.env["NVIDIA_VISIBLE_DEVICES"])


def test_missing_platform_image_or_runtime_is_an_error_before_running() -> None:
    """A platform without an image, or an image without a runtime, is an error (ErrorA at start)."""
    assert (
        "no image for platform el7 on x86_64 in the Node's images"
        == launch(NODE, FACTS, slot(), job(platform="el7"), workdir="/w", gpus=()).error
    )
    bare = NodeFacts(architecture="x86_64")
    assert (
        "needs a container runtime"
        in launch(NODE, bare, slot(), job(image="/img"), workdir="/w", gpus=()).error
    )


@pytest.mark.parametrize(
    ("spec", "node", "expected"),
    [
        ({"architecture": "aarch64"}, {}, "requires architecture aarch64; this node is x86_64"),
        ({"cpuFeatures": ["avx512f"]}, {}, "needs CPU features avx512f, which this node lacks"),
        (
            {},
            {"cpuFeatures": {"required": ["avx", "sve"]}},
            "needs CPU features sve, which this node lacks",
        ),
        ({"architecture": "x86_64", "cpuFeatures": ["avx"]}, {}, None),
    ],
)
def test_architecture_and_cpu_features_decide_placement(
    spec: dict[str, Any], node: dict[str, Any], expected: str | None
) -> None:
    """Jobs for another architecture or needing a CPU feature the node lacks are refused with why."""
    assert expected == placement_refusal(NodeSpec.model_validate(node), FACTS, job(**spec))


def busybox_image(root: Path) -> Path:
    """A tiny image directory: busybox-static and a marker file."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is missing: install busybox-static")
    image = root / "image"
    for sub in ("bin", "etc", "proc", "dev", "tmp", "workdir"):
        (image / sub).mkdir(parents=True)
    shutil.copy(busybox, image / "bin" / "busybox")
    for tool in ("sh", "cat", "grep", "pwd", "echo", "sleep"):
        (image / "bin" / tool).symlink_to("busybox")
    (image / "etc" / "image-name").write_text("busybox-test-image\n")
    return image


def bwrap_image(directory: Path) -> Path:
    """The busybox image in `directory`, for real bubblewrap, which must be installed."""
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is missing: install the bubblewrap package (make deps)")
    return busybox_image(directory)


def test_job_runs_in_a_bwrap_image_inside_its_cgroup(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Under real bubblewrap the payload sees the image root and /workdir, and every process it forks stays in the job cgroup."""
    image = bwrap_image(tmp_path)
    specs = tmp_path / "specs"
    specs.mkdir()
    script = "cat /etc/image-name; pwd; echo $WNR_CONTAINER_IMAGE; grep ^0:: /proc/self/cgroup; sh -c 'grep ^0:: /proc/self/cgroup'"
    (specs / "specs.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: wnr.dev/v1alpha1
            kind: Node
            metadata: {{name: n}}
            spec: {{runtime: bwrap, images: {{busybox: {{x86_64: {image}, aarch64: {image}}}}}}}
            ---
            apiVersion: wnr.dev/v1alpha1
            kind: Slot
            metadata: {{name: s}}
            spec: {{platform: busybox, user: root}}
            ---
            apiVersion: wnr.dev/v1alpha1
            kind: Job
            metadata: {{name: boxed}}
            spec:
              slot: s
              command: [sh, -c, {json.dumps(script)}]
            """
        )
    )
    flags = common(specs, cgroup_root, state_dir)
    plan = json.loads(wnr("plan", *flags, "-o", "json", check=2).stdout)
    start = next(a for a in plan["actions"] if a["op"] == "start-job")
    assert ["bwrap", "--ro-bind", str(image), "/"] == start["argv"][:4]
    wnr("apply", *flags, "--wait", check=0)
    record = json.loads((state_dir / "jobs" / "boxed" / "attempt-1.json").read_text())
    assert 0 == record["exitCode"]
    cgroup = f"0::/{cgroup_root.name}/slot.s/job.boxed"
    expected = ["busybox-test-image", "/workdir", str(image), cgroup, cgroup]
    assert expected == (state_dir / "jobs" / "boxed" / "attempt-1.log").read_text().split()


def test_missing_image_fails_errora_after_max_start_attempts(
    cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A job whose image does not exist never runs: it is retried maxStartAttempts times, then fails ErrorA."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: s}\n---\n"
        "apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {name: j}\n"
        "spec: {slot: s, command: [sh, -c, 'true'], image: /nonexistent/image, maxStartAttempts: 2}\n"
    )
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", "--timeout", "30", check=0)
    views = json.loads(wnr("plan", *flags, "-o", "json").stdout)["jobs"]
    assert ("Failed", "ErrorA", 2) == (
        views["j"]["phase"],
        views["j"]["reason"],
        views["j"]["attempts"],
    )


def test_gpus_are_divided_between_jobs(cgroup_root: Path, state_dir: Path, tmp_path: Path) -> None:
    """Two jobs asking for one GPU each in a two-GPU slot get different devices; a third waits."""
    specs = tmp_path / "specs"
    specs.mkdir()
    docs = [
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: s}\nspec: {gpus: ['0', '1']}\n"
    ]
    for name in ("a", "b", "c"):
        docs.append(
            f"apiVersion: wnr.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\n"
            f"spec: {{slot: s, command: [sh, -c, 'echo $CUDA_VISIBLE_DEVICES; sleep 600'], resources: {{gpus: 1}}}}\n"
        )
    (specs / "specs.yaml").write_text("---\n".join(docs))
    flags = common(specs, cgroup_root, state_dir)
    wnr("apply", *flags, "--wait", check=0)
    views = json.loads(wnr("plan", *flags, "-o", "json").stdout)["jobs"]
    assert ("Pending", "Unschedulable", "waiting for 1 GPUs (0 free) in slot s") == (
        views["c"]["phase"], views["c"]["reason"], views["c"]["message"],
    )  # fmt: skip
    devices = [
        json.loads((state_dir / "jobs" / n / "attempt-1.json").read_text())["gpus"]
        for n in ("a", "b")
    ]
    assert [["0"], ["1"]] == devices
