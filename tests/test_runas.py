"""Jobs run as the slot's user (issue 14): the wrapper's switch, and the daemon's choice of user.

Real processes on the real cgroup2 mount, as root (the tests' own user): the
wrapper switches the payload to another uid after it entered the cgroup, the
payload then cannot write its cgroup's files or leave it; the daemon picks the
Slot's user or the Node's default (`nobody`), refuses an unknown one and flags
root. The daemon tests use a world-traversable directory of their own, as a
site's /var/lib/wnr is, since pytest's tmp dirs are root's alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.host.process import credentials_argument
from reconciler.host.users import look_up
from tests.conftest import WRAPPER, WRAPPER_BASE, run_wrapper, wait_for
from tests.helpers import REPO, DaemonProcess, common, job_text, wnr

NOBODY = look_up("nobody")
NODE = "apiVersion: wnr.dev/v1alpha1\nkind: Node\nmetadata: {name: n}\nspec: {}\n"


def slot_yaml(name: str, user: str | None) -> str:
    """A slot, with a `user` when given."""
    spec = f"{{user: {user}}}" if user is not None else "{}"
    return f"apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def job_yaml(name: str, slot: str, script: str) -> str:
    """A job running a shell script."""
    return job_text(name, slot, ["sh", "-c", script])


@pytest.fixture
def job_and_sibling(cgroup_root: Path) -> tuple[Path, Path]:
    """Two cgroups under the test's root: a job's, and a sibling it must not move into."""
    cgroup_root.mkdir()
    job, sibling = cgroup_root / "job", cgroup_root / "other"
    job.mkdir()
    sibling.mkdir()
    return job, sibling


def test_the_payload_runs_as_the_credentials_and_the_wrapper_stays_root(
    job_and_sibling: tuple[Path, Path], tmp_path: Path
) -> None:
    """With CREDENTIALS the payload has that uid, gid and groups; the wrapper records as root."""
    job, _ = job_and_sibling
    record, log = tmp_path / "attempt-1.json", tmp_path / "attempt-1.log"
    script = "id -u; id -g; id -G; grep ^0:: /proc/self/cgroup"
    wrapper = run_wrapper(
        record, job / "cgroup.procs", tmp_path, "sh", "-c", script,
        credentials=credentials_argument(NOBODY),
    )  # fmt: skip
    assert 0 == wrapper.wait(timeout=30)
    assert 0 == json.loads(record.read_text())["exitCode"]
    cgroup = f"0::/{job.parent.name}/job"
    expected = [str(NOBODY.uid), str(NOBODY.gid), " ".join(map(str, NOBODY.groups)), cgroup]
    assert expected == log.read_text().splitlines()
    assert 0 == record.stat().st_uid


def test_a_payload_run_as_nobody_can_neither_write_its_cgroup_files_nor_leave(
    job_and_sibling: tuple[Path, Path], tmp_path: Path
) -> None:
    """Its cgroup's files stay root's: each write is refused, and the payload is still inside."""
    job, sibling = job_and_sibling
    record, log = tmp_path / "attempt-1.json", tmp_path / "attempt-1.log"
    targets = [
        job / "cgroup.max.depth",
        job / "cgroup.max.descendants",
        job / "cgroup.subtree_control",
        job / "cgroup.freeze",
        sibling / "cgroup.procs",
        job.parent / "cgroup.procs",
    ]
    tries = "; ".join(
        f"if {{ echo $$ > {t}; }} 2>/dev/null; then echo wrote {t}; else echo refused {t}; fi"
        for t in targets
    )
    script = f"{tries}; grep ^0:: /proc/self/cgroup"
    wrapper = run_wrapper(
        record, job / "cgroup.procs", tmp_path, "sh", "-c", script,
        credentials=credentials_argument(NOBODY),
    )  # fmt: skip
    assert 0 == wrapper.wait(timeout=30)
    expected = [f"refused {t}" for t in targets] + [f"0::/{job.parent.name}/job"]
    assert expected == log.read_text().splitlines()


def test_a_wrapper_without_the_privilege_to_switch_fails_the_start_and_says_why(
    job_and_sibling: tuple[Path, Path], tmp_path: Path
) -> None:
    """Root without CAP_SETUID/CAP_SETGID cannot switch: failed-start names the uid and the error."""
    job, _ = job_and_sibling
    record = tmp_path / "attempt-1.json"
    limited = shutil.which("setpriv")
    assert limited is not None, "setpriv (util-linux) is needed"
    drop = [limited, "--bounding-set=-setuid,-setgid", "--inh-caps=-setuid,-setgid", "--"]
    limits = [str(record.with_suffix(".log")), str(10 * 2**20), "2"]
    args = [*drop, WRAPPER, str(record), str(job / "cgroup.procs"), str(tmp_path), WRAPPER_BASE]
    args += [*limits, "65534:65534:65534", "-", "--", "true"]
    assert 0 != subprocess.run(args, check=False, timeout=30).returncode
    data = json.loads(record.read_text())
    assert "failed-start" == data["phase"]
    assert "cannot run 'true' as uid 65534 gid 65534: Operation not permitted" == data["message"]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may traverse (0755, as /var/lib/wnr), removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="wnr-test-runas-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def open_daemon(open_dir: Path, cgroup_root: Path) -> Iterator[DaemonProcess]:
    """A daemon whose specs and state dir are in `open_dir`; killed at the end."""
    (open_dir / "specs").mkdir()
    process = DaemonProcess(
        open_dir / "specs", cgroup_root, open_dir / "state", open_dir / "daemon.log"
    )
    try:
        yield process
    finally:
        process.kill()


def phase_of(state: Path, job: str) -> str:
    """The first attempt's recorded phase ("" before it has one)."""
    try:
        return str(json.loads((state / "jobs" / job / "attempt-1.json").read_text())["phase"])
    except (FileNotFoundError, ValueError):
        return ""


def test_the_daemon_runs_a_slot_as_nobody_by_default_and_as_root_only_when_asked(
    open_daemon: DaemonProcess, open_dir: Path, cgroup_root: Path
) -> None:
    """No `user`: jobs and agents run as nobody, in work dirs of their own (0700), with its HOME; `user: root`: root, flagged in plan and doctor."""
    specs, state = open_dir / "specs", open_dir / "state"
    script = 'id -u; echo "$HOME $USER"; stat -c "%u %a" .'
    agent = (
        "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: plain}\n"
        "spec: {agents: {replicas: 1, command: [sh, -c, 'id -u; exec sleep 600']}}\n"
    )
    (specs / "a.yaml").write_text("---\n".join([NODE, agent, job_yaml("j", "plain", script)]))
    (specs / "b.yaml").write_text(
        "---\n".join([slot_yaml("privileged", "root"), job_yaml("r", "privileged", "id -u")])
    )
    flags = common(specs, cgroup_root, state)
    planned = wnr("plan", *flags, check=2).stdout
    assert "Slot/privileged: runs-as-root: runs as root (uid 0, gid 0)" in planned, planned
    open_daemon.start()
    wait_for(lambda: phase_of(state, "j") == "exited" and phase_of(state, "r") == "exited", 30)
    expected = [str(NOBODY.uid), f"{NOBODY.home} nobody", f"{NOBODY.uid} 700"]
    assert expected == (state / "jobs" / "j" / "attempt-1.log").read_text().splitlines()
    assert ["0"] == (state / "jobs" / "r" / "attempt-1.log").read_text().splitlines()
    agent_log = state / "agents" / "plain" / "0" / "run.log"
    wait_for(lambda: agent_log.exists() and agent_log.read_text().strip() != "")
    assert [str(NOBODY.uid)] == agent_log.read_text().split()
    assert NOBODY.uid == (state / "agents" / "plain" / "0" / "work").stat().st_uid
    shown = json.loads(wnr("get", "jobs", "j", *flags, "-o", "json").stdout)["status"]
    assert {"user": "nobody", "uid": NOBODY.uid} == shown["runAs"]
    described = wnr("describe", "slot", "plain", *flags).stdout
    assert f"User:    nobody (uid {NOBODY.uid}, gid {NOBODY.gid}" in described, described
    doctor = wnr("doctor", *flags, check=None).stdout
    assert "[warn] user of Slot/privileged: runs as root (uid 0, gid 0)" in doctor, doctor
    assert "[  ok] user of Slot/plain: runs as nobody" in doctor, doctor
    assert 0 == open_daemon.terminate()


def test_an_unknown_user_runs_nothing_of_its_slot_until_it_is_fixed(
    open_daemon: DaemonProcess, open_dir: Path, cgroup_root: Path
) -> None:
    """`user: no-such-user`: RunAsUser=False on the slot, the job Pending (RunAsRefused), no attempt; fixed, it runs."""
    specs, state = open_dir / "specs", open_dir / "state"
    spec = specs / "a.yaml"
    spec.write_text("---\n".join([slot_yaml("s", "no-such-user"), job_yaml("j", "s", "id -u")]))
    flags = common(specs, cgroup_root, state)
    open_daemon.start()

    def slot_status() -> dict[str, object]:
        shown = wnr("get", "slots", "s", *flags, "-o", "json", check=None).stdout
        return json.loads(shown)["status"] if shown else {}

    def run_as_condition() -> dict[str, str]:
        conditions = slot_status().get("conditions", [])
        assert isinstance(conditions, list)
        return next((c for c in conditions if c["type"] == "RunAsUser"), {})

    wait_for(lambda: run_as_condition().get("status") == "False", 30)
    assert ("UnknownUser", "the Slot's user: user no-such-user is not in the user database") == (
        run_as_condition()["reason"],
        run_as_condition()["message"],
    )
    job = json.loads(wnr("get", "jobs", "j", *flags, "-o", "json").stdout)["status"]
    assert ("Pending", "RunAsRefused") == (job["phase"], job["reason"])
    assert not (state / "jobs" / "j" / "attempt-1.json").exists()
    spec.write_text("---\n".join([slot_yaml("s", "nobody"), job_yaml("j", "s", "id -u")]))
    wait_for(lambda: phase_of(state, "j") == "exited", 30)
    assert [str(NOBODY.uid)] == (state / "jobs" / "j" / "attempt-1.log").read_text().split()
    assert 0 == open_daemon.terminate()


def test_a_job_runs_in_bubblewrap_as_nobody(
    open_daemon: DaemonProcess, open_dir: Path, cgroup_root: Path
) -> None:
    """Real bubblewrap, started as nobody (a user namespace of its own): the payload sees the image and its work dir."""
    from tests.test_containers import bwrap_image  # noqa: PLC0415

    image = bwrap_image(open_dir)
    specs, state = open_dir / "specs", open_dir / "state"
    node = (
        "apiVersion: wnr.dev/v1alpha1\nkind: Node\nmetadata: {name: n}\n"
        f"spec: {{runtime: bwrap, images: {{bb: {{x86_64: {image}, aarch64: {image}}}}}}}\n"
    )
    slot = "apiVersion: wnr.dev/v1alpha1\nkind: Slot\nmetadata: {name: s}\nspec: {platform: bb}\n"
    script = "cat /etc/image-name; pwd; id -u; touch mine && echo wrote"
    (specs / "a.yaml").write_text("---\n".join([node, slot, job_yaml("boxed", "s", script)]))
    open_daemon.start()
    wait_for(lambda: phase_of(state, "boxed") == "exited", 30)
    log = (state / "jobs" / "boxed" / "attempt-1.log").read_text()
    assert ["busybox-test-image", "/workdir", str(NOBODY.uid), "wrote"] == log.split(), log
    assert NOBODY.uid == (state / "jobs" / "boxed" / "work" / "mine").stat().st_uid
    assert 0 == open_daemon.terminate()


def test_a_non_root_wnr_refuses_a_slot_user_other_than_itself(
    open_dir: Path, cgroup_root: Path
) -> None:
    """Run as nobody, `wnr plan` starts nothing of a slot with `user: root` and says why."""
    specs = open_dir / "specs"
    specs.mkdir()
    (specs / "a.yaml").write_text(
        "---\n".join([slot_yaml("s", "root"), job_yaml("j", "s", "true")])
    )
    state = open_dir / "state"
    args = [*map(str, common(specs, cgroup_root, state))]
    # The tests' own interpreter may live in root's home; the system's of the same version
    # runs this checkout with the virtual environment's packages.
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    assert system.exists(), f"{system} is needed to run wnr as nobody"
    path = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])
    result = subprocess.run(
        [str(system), "-m", "reconciler", "plan", *args],
        user=NOBODY.uid,
        group=NOBODY.gid,
        extra_groups=[],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": path},
        cwd=open_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    refusal = (
        f"wnr runs as uid {NOBODY.uid}, not root: it cannot run jobs as user root; "
        "run wnr as root, or as that user, or remove `user`"
    )
    assert f"Job/j: waiting: RunAsRefused: {refusal}" in result.stdout, result.stdout
    assert "start-job" not in result.stdout
