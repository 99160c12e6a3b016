"""The real-kernel tier (DESIGN §6, tier 3) seen from the host: one VM boot runs tests/vm/guest.

tests/vm/setup prepares Debian's 6.1 kernel and a busybox initramfs (once; it
needs root for apt-get), tests/vm/run boots it under QEMU TCG with pure cgroup v2
and every controller, and the guest suite drives `python -m reconciler` in there.
A VM that cannot start FAILS this test. The one way to leave the tier out is the
explicit switch WNR_SKIP_VM=1 (for machines without QEMU or the Debian mirror).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VM = REPO / "tests" / "vm"
PYTHON = ".venv/bin/python"
# --durations=0: each scenario's time (every guest test's call) goes into the CI log.
GUEST_PYTEST = [
    PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0", "--tb=short",
    "tests/vm/guest",
]  # fmt: skip


def guest_failures(output: str, limit: int = 40_000) -> str:
    """The guest pytest's tracebacks and summary (its FAILURES/ERRORS sections onwards), so a
    failing guest test is readable from the CI log's tail; the whole output if it has none."""
    starts = [output.find(f"= {section} =") for section in ("ERRORS", "FAILURES")]
    found = [i for i in starts if i >= 0]
    start = output.rfind("\n", 0, min(found)) + 1 if found else 0
    return output[start:][-limit:]


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


def boot(capsys: pytest.CaptureFixture[str], label: str, command: list[str], **env: str) -> None:
    """tests/vm/setup, then one VM boot running `command`; prints its time and output tail."""
    if os.environ.get("WNR_SKIP_VM") == "1":
        pytest.skip("WNR_SKIP_VM=1: the real-kernel VM tier is switched off explicitly")
    setup = subprocess.run(
        [str(VM / "setup")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert 0 == setup.returncode, f"tests/vm/setup failed:\n{setup.stdout}{setup.stderr}"
    started = time.monotonic()
    # Its own session, so that a timeout or an interrupted test stops it as a group: SIGTERM
    # lets tests/vm/run end QEMU (its trap), where a SIGKILL of the script alone would leave
    # QEMU running.
    vm = subprocess.Popen(
        [str(VM / "run"), *command],
        cwd=REPO,
        env={**os.environ, "VM_TIMES": "1", "VM_TIMEOUT": "1500", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = vm.communicate(timeout=1800)
    finally:
        if vm.poll() is None:
            _stop_group(vm)
    run = subprocess.CompletedProcess(vm.args, vm.returncode, output)
    with capsys.disabled():  # the tier's run time is reported in every CI log, pass or fail
        print(f"\n{label}: {time.monotonic() - started:.1f}s wall (boot, guest tests, shutdown)")
        timed = ("[slurm]", " call ", "wnr-vm: ")
        print(
            "".join(line for line in run.stdout.splitlines(True) if any(t in line for t in timed))
        )
        print(guest_failures(run.stdout) if run.returncode else run.stdout[-2000:])
    assert 0 == run.returncode, (
        f"{label}: tests/vm/run exited {run.returncode} (125: the VM itself failed):\n{run.stdout}"
    )


def test_guest_suite_passes_inside_a_real_kernel_vm(capsys: pytest.CaptureFixture[str]) -> None:
    """Booted once with Debian's 6.1 kernel and pure cgroup v2, the guest suite (tests/vm/guest) passes inside the VM."""
    # 2 GiB: the real-Slurm scenario (tests/vm/guest/test_slurm.py) runs a 500M pilot job
    # beside slurmd and slurmctld; its wnr pilots take minutes under TCG.
    boot(capsys, "VM tier", GUEST_PYTEST, VM_MEMORY="2G")


# The second boot: Debian bullseye's 5.10 kernel (no cgroup.kill) for the guest tests marked
# `oldkernel` (the freeze+kill fallback), which the 6.1 boot above runs too.
OLD_KERNEL_PYTEST = [*GUEST_PYTEST, "-m", "oldkernel"]


def test_fallback_suite_passes_inside_a_5_10_kernel_vm(capsys: pytest.CaptureFixture[str]) -> None:
    """Booted with Debian bullseye's 5.10 kernel (no cgroup.kill), the guest tests marked oldkernel pass inside the VM."""
    boot(capsys, "VM tier, 5.10", OLD_KERNEL_PYTEST, VM_KERNEL="5.10")


# The third boot: the host's systemd 252 as the guest's PID 1 (tests/vm/init's boot_systemd),
# manifests/wnr.service installed and driven with systemctl (tests/vm/guest/test_systemd.py).
SYSTEMD_PYTEST = [*GUEST_PYTEST[:-1], "tests/vm/guest/test_systemd.py"]


def test_the_unit_behaves_under_real_systemd_inside_a_vm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Booted with systemd as PID 1, manifests/wnr.service starts, notifies, runs jobs, stops and is watched as tests/vm/guest/test_systemd.py says."""
    boot(capsys, "VM tier, systemd", SYSTEMD_PYTEST, VM_INIT="systemd", VM_MEMORY="2G")
