"""The real-kernel tier (DESIGN §6, tier 3) seen from the host: VM boots run tests/vm/guest.

tests/vm/setup prepares Debian's 6.1 and 5.10 kernels and a busybox initramfs
(once; it needs root for apt-get), tests/vm/run boots one under QEMU TCG with
pure cgroup v2 and every controller, and the guest suite drives `python -m
reconciler` in there. A VM that cannot start FAILS its test. The one way to
leave the tier out is the explicit switch WNR_SKIP_VM=1 (for machines without
QEMU or the Debian mirror).

Each VM has one emulated CPU, which TCG runs on one host thread: the boots run
side by side, one per host CPU (`WNR_VM_PARALLEL` overrides), the longest
first, so the tier takes about its longest boot on a 2-CPU CI machine instead of
their sum. The 6.1 guest suite is cut in two boots for that reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VM = REPO / "tests" / "vm"
GUEST = "tests/vm/guest"
PYTHON = ".venv/bin/python"
# --durations=0: each scenario's time (every guest test's call) goes into the CI log.
GUEST_PYTEST = [
    PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0", "--tb=short",
]  # fmt: skip
# The 6.1 suite's slowest files (the real-Slurm pilots, the kernel benchmark, the fallback's
# drains: about half its time), booted apart from the rest so that the halves run side by side.
SLOW_FILES = tuple(f"{GUEST}/test_{name}.py" for name in ("slurm", "kernelbench", "oldkernel"))


@dataclass(frozen=True)
class Boot:
    """One VM boot: what it is called in the log, the guest command, tests/vm/run's knobs."""

    label: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


# In the order they start (the longest first: measured, TCG on one CPU each, the 6.1 halves
# ~300 s, 5.10 ~230 s, systemd ~140 s). 2 GiB where the real-Slurm scenario runs a
# 500M pilot job beside slurmd and slurmctld.
BOOTS = {
    "slow": Boot("VM tier, 6.1 (Slurm, benchmark, fallback)", (*GUEST_PYTEST, *SLOW_FILES), {"VM_MEMORY": "2G"}),
    "rest": Boot(
        "VM tier, 6.1",
        (*GUEST_PYTEST, *(f"--ignore={path}" for path in SLOW_FILES), GUEST),
        {"VM_MEMORY": "2G"},
    ),
    # Debian bullseye's 5.10 kernel (no cgroup.kill) for the tests marked `oldkernel` (the
    # freeze+kill fallback), which the 6.1 boot runs too.
    "5.10": Boot("VM tier, 5.10", (*GUEST_PYTEST, "-m", "oldkernel", GUEST), {"VM_KERNEL": "5.10"}),
    # systemd 252 as PID 1 (tests/vm/init's boot_systemd): manifests/wnr.service driven with
    # systemctl.
    "systemd": Boot(
        "VM tier, systemd",
        (*GUEST_PYTEST, f"{GUEST}/test_systemd.py"),
        {"VM_INIT": "systemd", "VM_MEMORY": "2G"},
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Booted:
    """What one boot printed and how it ended."""

    returncode: int
    output: str
    wall: float


def guest_failures(output: str, limit: int = 40_000) -> str:
    """The guest pytest's tracebacks and summary (its FAILURES/ERRORS sections onwards), so a
    failing guest test is readable from the CI log's tail; the whole output if it has none."""
    starts = [output.find(f"= {section} =") for section in ("ERRORS", "FAILURES")]
    found = [i for i in starts if i >= 0]
    start = output.rfind("\n", 0, min(found)) + 1 if found else 0
    return output[start:][-limit:]


def parallel_boots() -> int:
    """How many boots run at once: WNR_VM_PARALLEL, else one per CPU this process may use."""
    configured = os.environ.get("WNR_VM_PARALLEL", "")
    return max(1, int(configured) if configured else len(os.sched_getaffinity(0)))


def _stop_group(vm: subprocess.Popen[str]) -> None:
    """SIGTERM to the VM runner's process group, SIGKILL if it is still there after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(vm.pid, signal.SIGTERM)
    try:
        vm.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(vm.pid, signal.SIGKILL)
        vm.wait()


class Tier:
    """The boots this session's selected tests need, run side by side; each is stopped as a
    group (SIGTERM lets tests/vm/run's trap end QEMU) on a timeout or when the module ends."""

    def __init__(self, keys: list[str]) -> None:
        self.closing = threading.Event()
        self.running: set[subprocess.Popen[str]] = set()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(min(parallel_boots(), len(keys)) or 1)
        self.boots: dict[str, Future[Booted]] = {
            k: self.pool.submit(self._boot, BOOTS[k]) for k in keys
        }

    def _boot(self, boot: Boot) -> Booted:
        """One tests/vm/run in its own session, so that it can be stopped as a group."""
        if self.closing.is_set():
            return Booted(-1, "not started: the tier was closing", 0.0)
        started = time.monotonic()
        vm = subprocess.Popen(
            [str(VM / "run"), *boot.command],
            cwd=REPO,
            env={**os.environ, "VM_TIMES": "1", "VM_TIMEOUT": "1500", **boot.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        with self.lock:
            self.running.add(vm)
        try:
            if self.closing.is_set():  # close() ran while this one started: it missed it
                _stop_group(vm)
            output, _ = vm.communicate(timeout=1800)
        except subprocess.TimeoutExpired:
            _stop_group(vm)
            output, _ = vm.communicate()
        finally:
            with self.lock:
                self.running.discard(vm)
        return Booted(vm.returncode, output, time.monotonic() - started)

    def close(self) -> None:
        """Stop the boots still running and wait for the pool."""
        self.closing.set()
        for future in self.boots.values():
            future.cancel()
        with self.lock:
            running = list(self.running)
        for vm in running:
            if vm.poll() is None:
                _stop_group(vm)
        self.pool.shutdown(wait=True)


# Which boot each test of this module reads.
TEST_BOOT = {
    "test_the_slurm_pilots_benchmark_and_fallback_pass_inside_a_6_1_kernel_vm": "slow",
    "test_the_rest_of_the_guest_suite_passes_inside_a_6_1_kernel_vm": "rest",
    "test_the_unit_behaves_under_real_systemd_inside_a_vm": "systemd",
    "test_fallback_suite_passes_inside_a_5_10_kernel_vm": "5.10",
}


@pytest.fixture(scope="module")
def tier(request: pytest.FixtureRequest) -> Iterator[Tier]:
    """tests/vm/setup, then every boot the selected tests of this module need, started at once."""
    if os.environ.get("WNR_SKIP_VM") == "1":
        pytest.skip("WNR_SKIP_VM=1: the real-kernel VM tier is switched off explicitly")
    setup = subprocess.run(
        [str(VM / "setup")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert 0 == setup.returncode, f"tests/vm/setup failed:\n{setup.stdout}{setup.stderr}"
    here = Path(__file__)
    selected = {
        getattr(item, "originalname", item.name)
        for item in request.session.items
        if item.path == here
    }
    needed = {TEST_BOOT[name] for name in selected if name in TEST_BOOT}
    keys = [key for key in BOOTS if key in needed]
    running = Tier(keys)
    try:
        yield running
    finally:
        running.close()


def check(tier: Tier, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Wait for one boot; print its time and output tail; it must have exited 0."""
    label = BOOTS[key].label
    run = tier.boots[key].result()
    with capsys.disabled():  # the tier's run time is reported in every CI log, pass or fail
        print(f"\n{label}: {run.wall:.1f}s wall (boot, guest tests, shutdown)")
        timed = ("[slurm]", " call ", "wnr-vm: ")
        print(
            "".join(line for line in run.output.splitlines(True) if any(t in line for t in timed))
        )
        print(guest_failures(run.output) if run.returncode else run.output[-2000:])
    assert 0 == run.returncode, (
        f"{label}: tests/vm/run exited {run.returncode} (125: the VM itself failed):\n{run.output}"
    )


def test_the_slurm_pilots_benchmark_and_fallback_pass_inside_a_6_1_kernel_vm(
    tier: Tier, capsys: pytest.CaptureFixture[str]
) -> None:
    """Booted with Debian's 6.1 kernel and pure cgroup v2, the real-Slurm pilot tests, the kernel-enforced benchmark and the oldkernel tests pass inside the VM."""
    check(tier, "slow", capsys)


def test_the_rest_of_the_guest_suite_passes_inside_a_6_1_kernel_vm(
    tier: Tier, capsys: pytest.CaptureFixture[str]
) -> None:
    """Booted with Debian's 6.1 kernel and pure cgroup v2, the rest of the guest suite (tests/vm/guest) passes inside the VM."""
    check(tier, "rest", capsys)


def test_the_unit_behaves_under_real_systemd_inside_a_vm(
    tier: Tier, capsys: pytest.CaptureFixture[str]
) -> None:
    """Booted with systemd as PID 1, manifests/wnr.service starts, notifies, runs jobs, stops and is watched as tests/vm/guest/test_systemd.py says."""
    check(tier, "systemd", capsys)


def test_fallback_suite_passes_inside_a_5_10_kernel_vm(
    tier: Tier, capsys: pytest.CaptureFixture[str]
) -> None:
    """Booted with Debian bullseye's 5.10 kernel (no cgroup.kill), the guest tests marked oldkernel pass inside the VM."""
    check(tier, "5.10", capsys)
