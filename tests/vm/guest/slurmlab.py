"""A real Slurm 22.05 inside the guest for test_slurm.py: munged, slurmctld and slurmd run by hand.

Debian's packages are installed on the host by tests/vm/setup (no service starts
there); the guest sees them through its read-only root and runs them with its own
config, key and state on tmpfs under /run/wnr-slurm. The recipe follows Slurm's
needs without systemd: an IPv4 address other than 127.0.0.1 (Slurm resolves with
AI_ADDRCONFIG), `/sys/fs/cgroup/system.slice` with `+cpuset +cpu +io +memory +pids`
(so that "memory" is not the last controller: Slurm bug 16151), `IgnoreSystemd=yes`.
Each mechanism gets its own slurm.conf; switching restarts slurmctld and slurmd.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.vm.guest.harness import MOUNT, REPO

NODE, ADDRESS = "testvm", "10.99.0.1"
USER, UID = "pilot", 2000
RUN = Path("/run/wnr-slurm")
ETC = RUN / "etc"
HOME = RUN / "home"
SCOPE = MOUNT / "system.slice" / f"{NODE}_slurmstepd.scope"
MANIFESTS = REPO / "manifests" / "slurm"
WNR_CONF = Path("/etc/slurm/wnr.conf")
HELPER_LOG = RUN / "wnr-slurm.log"
# Per mechanism: the lines it adds to slurm.conf, and what plugstack.conf holds.
MECHANISMS = {
    "plugin": ("", f"required {MANIFESTS / 'wnr_spank.so'}\n"),
    "plugin-cpu-memory": ("", f"required {MANIFESTS / 'wnr_spank.so'} controllers=cpu,memory\n"),
    "plugin-bad-args": (
        "",
        f"required {MANIFESTS / 'wnr_spank.so'} scope=/sys/fs/cgroup/nope x=1\n",
    ),
    "prolog": (f"Prolog={MANIFESTS / 'prolog.sh'}\nEpilog={MANIFESTS / 'epilog.sh'}\n", ""),
    "prolog-without-epilog": (f"Prolog={MANIFESTS / 'prolog.sh'}\n", ""),
}
SLURM_CONF = f"""\
ClusterName=wnrvm
SlurmctldHost={NODE}({ADDRESS})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={RUN}/ctld
SlurmdSpoolDir={RUN}/d
SlurmctldPidFile={RUN}/slurmctld.pid
SlurmdPidFile={RUN}/slurmd.pid
SlurmctldLogFile={RUN}/slurmctld.log
SlurmdLogFile={RUN}/slurmd.log
PlugStackConfig={ETC}/plugstack.conf
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
KillWait=5
SlurmdParameters=config_overrides
NodeName={NODE} NodeAddr={ADDRESS} CPUs=1 RealMemory=1800 State=UNKNOWN
PartitionName=main Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
CGROUP_CONF = """\
CgroupPlugin=cgroup/v2
IgnoreSystemd=yes
CgroupAutomount=yes
ConstrainCores=yes
ConstrainRAMSpace=yes
"""


def prepare_guest() -> None:
    """As root, once per boot: name, address, user, cgroups, munge key and dirs for Slurm."""
    Path("/proc/sys/kernel/hostname").write_text(NODE)
    with Path("/etc/hosts").open("a") as hosts:
        hosts.write(f"{ADDRESS} {NODE}\n")
    subprocess.run(["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
    with Path("/etc/passwd").open("a") as passwd:
        passwd.write(f"{USER}:x:{UID}:{UID}:wnr pilot:{HOME}:/bin/bash\n")
    with Path("/etc/group").open("a") as group:
        group.write(f"{USER}:x:{UID}:\n")
    (MOUNT / "cgroup.subtree_control").write_text("+cpuset")
    (MOUNT / "system.slice").mkdir(exist_ok=True)
    (MOUNT / "system.slice" / "cgroup.subtree_control").write_text("+cpuset +cpu +io +memory +pids")
    for directory in (RUN, ETC, RUN / "ctld", RUN / "d", HOME):
        directory.mkdir(parents=True, exist_ok=True)
    os.chown(HOME, UID, UID)
    munge = pwd.getpwnam("munge")
    for directory in (RUN / "munge", Path("/run/munge")):
        directory.mkdir(mode=0o700 if directory.parent == RUN else 0o755, exist_ok=True)
        os.chown(directory, munge.pw_uid, munge.pw_gid)
    key = RUN / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    os.chown(key, munge.pw_uid, munge.pw_gid)
    (ETC / "cgroup.conf").write_text(CGROUP_CONF)
    WNR_CONF.parent.mkdir(parents=True, exist_ok=True)
    write_wnr_conf("")
    os.environ["SLURM_CONF"] = str(ETC / "slurm.conf")


def write_wnr_conf(text: str) -> None:
    """/etc/slurm/wnr.conf for prolog.sh, wnr-delegate and epilog.sh; the log always goes to ours."""
    WNR_CONF.write_text(f"# written by tests/vm/guest/slurmlab.py\nlog = {HELPER_LOG}\n{text}")


def wait_until(what: str, predicate: Callable[[], object], timeout: float, every: float) -> None:
    """Poll a cheap check every `every` seconds (a sleep costs ~3x under TCG); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (FileNotFoundError, subprocess.CalledProcessError):
            pass
        time.sleep(every)
    pytest.fail(f"not within {timeout:g}s: {what}\n{logs()}", pytrace=False)


def logs() -> str:
    """The tails of the daemons' and the helper's logs, for a failure message."""
    parts = []
    for name in ("slurmctld.log", "slurmd.log", "wnr-slurm.log", "munged.log"):
        path = RUN / name
        if path.exists():
            parts.append(f"--- {name} ---\n" + "\n".join(path.read_text().splitlines()[-25:]))
    return "\n".join(parts)


def slurm(*argv: str) -> str:
    """Run a Slurm client command as root; its stdout."""
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


@dataclass
class Cluster:
    """munged for the whole boot; slurmctld and slurmd restarted per mechanism."""

    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    munged: subprocess.Popen[bytes] | None = None
    first_job: int = 100
    mechanism: str = ""

    def start_munge(self) -> None:
        """munged in the foreground as the munge user, with the key made for this boot."""
        with (RUN / "munged.log").open("ab") as log:
            self.munged = subprocess.Popen(
                ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged", "-F",
                 f"--key-file={RUN / 'munge' / 'munge.key'}", f"--log-file={RUN / 'munged.log'}",
                 f"--pid-file={RUN / 'munge' / 'munged.pid'}",
                 f"--seed-file={RUN / 'munge' / 'munged.seed'}", "--force"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until("munged's socket", Path("/run/munge/munge.socket.2").exists, 30, 0.2)

    def start(self, mechanism: str) -> None:
        """Write slurm.conf and plugstack.conf for a mechanism, start the daemons, wait for idle."""
        if mechanism == self.mechanism:
            return
        self.stop()
        self.mechanism = mechanism
        extra, plugstack = MECHANISMS[mechanism]
        (ETC / "slurm.conf").write_text(SLURM_CONF + f"FirstJobId={self.first_job}\n" + extra)
        (ETC / "plugstack.conf").write_text(plugstack)
        self.first_job += 100
        conf = str(ETC / "slurm.conf")
        for argv, log in (
            (["slurmctld", "-D", "-c", "-f", conf], "slurmctld.out"),
            (["slurmd", "-D", "-N", NODE, "-f", conf], "slurmd.out"),
        ):
            with (RUN / log).open("ab") as out:
                self.daemons.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
        wait_until("the node idle in sinfo", lambda: "idle" == self.node_state(), 120, 1.0)

    def node_state(self) -> str:
        """The node's state as sinfo prints it (idle, mixed, drained, ...)."""
        return slurm("sinfo", "-h", "-n", NODE, "-o", "%T").strip()

    def stop(self) -> None:
        """SIGTERM slurmd and slurmctld (ours, by PID), SIGKILL after 30 s."""
        for daemon in reversed(self.daemons):
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self.daemons.clear()
        self.mechanism = ""

    def close(self) -> None:
        """Stop every daemon of ours, munged last."""
        self.stop()
        if self.munged is not None:
            self.munged.terminate()
            self.munged.wait(30)

    def srun(self, script: str) -> str:
        """Run a shell script as a one-task srun job of the pilot user (--mem=100M); its output."""
        out = subprocess.run(
            ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "srun",
             "--mem=100M", f"--chdir={HOME}", "bash", "-c", script],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert 0 == out.returncode, out.stdout + out.stderr
        return out.stdout

    def sbatch(self, script: Path, workdir: Path) -> int:
        """Submit a batch script as the pilot user with --mem=500M; its job id."""
        out = subprocess.run(
            ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "sbatch",
             "--parsable", "--mem=500M", f"--chdir={workdir}", f"--output={workdir}/pilot.out",
             str(script)],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return int(out.stdout.strip().split(";")[0])

    def show_job(self, job: int) -> dict[str, str]:
        """`scontrol -o show job` as a dict."""
        text = slurm("scontrol", "-o", "show", "job", str(job))
        return dict(f.split("=", 1) for f in text.split() if "=" in f)

    def listed(self, job: int) -> bool:
        """Whether squeue still lists the job (running or completing)."""
        return bool(slurm("squeue", "-h", "-j", str(job), "-o", "%T").strip())


def user_processes() -> list[str]:
    """`PID comm` of every live process of the pilot user."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != UID or "\nState:\tZ" in (proc / "status").read_text():
                continue
            found.append(f"{proc.name} {(proc / 'comm').read_text().strip()}")
        except FileNotFoundError:
            continue
    return found


def leaks(job: int) -> list[str]:
    """What a finished job left: processes of its user and its job_N cgroups below the scope."""
    left = [f"process {p}" for p in user_processes()]
    job_dir = SCOPE / f"job_{job}"
    left += [f"cgroup {d}" for d, _, _ in os.walk(job_dir)]
    return left


def wait_clean(job: int, timeout: float) -> None:
    """Wait until `leaks(job)` is empty; fail listing what is left otherwise."""
    deadline = time.monotonic() + timeout
    while left := leaks(job):
        if time.monotonic() > deadline:
            pytest.fail(f"left {timeout:g}s after job {job}: {left}\n{logs()}", pytrace=False)
        time.sleep(1)
