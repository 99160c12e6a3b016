"""Steady state with N running jobs: daemon memory, per-job overhead, idle CPU; and their peers.

- daemon memory: the daemon's VmRSS (and Pss) from /proc, next to
  supervisord's managing the same number of `sleep 600` programs.
- per-job overhead: the median VmRSS (and Pss: the interpreter's pages are
  shared between the wrappers) of the job wrappers while their payloads
  sleep; peers: a JVM started with JAliEn's JobAgent flags
  (`-client -Xms50M -Xmx50M -XX:+UseSerialGC`) running a trivial class that
  sleeps (compiled with javac at run time), and `sh` waiting for a `sleep`.
- idle CPU: CPU time of every thread of the daemon (schedstat) over a
  window with nothing to do, as a percentage of one core; supervisord's over
  the very same window. Then the daemon restarted with `--metrics-address`
  (it adopts the same jobs), over windows as long: not scraped (it samples
  nothing for metrics then), and scraped every 15 s.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import BenchError, Sandbox, cpu_seconds, median, pss_kib, status_kib, wait_until
from bench.supervisor import Supervisor
from bench.wnr import WnrDaemon

# Prometheus' default scrape interval.
SCRAPE_SECONDS = 15.0
JVM_FLAGS = ("-client", "-Xms50M", "-Xmx50M", "-XX:+UseSerialGC")
IDLE_CLASS = """\
public class Idle {
    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(600000L);
    }
}
"""


@dataclass(frozen=True)
class Memory:
    """RSS and Pss in MiB."""

    rss: float
    pss: float


def _mib(kib: float) -> float:
    return kib / 1024


def daemon_memory(daemon: WnrDaemon) -> Memory:
    """The daemon's own RSS and Pss."""
    return Memory(_mib(status_kib(daemon.pid)), _mib(pss_kib(daemon.pid)))


def supervisord_memory(sup: Supervisor) -> Memory:
    """supervisord's own RSS and Pss."""
    return Memory(_mib(sup.rss_kib()), _mib(sup.pss_kib()))


def wrapper_memory(daemon: WnrDaemon, names: list[str]) -> Memory:
    """Median RSS and Pss over the wrappers of the given (running) jobs."""
    rss, pss = [], []
    for name in names:
        record = daemon.record(name) or {}
        pid = record.get("wrapperPid")
        if isinstance(pid, int):
            rss.append(_mib(status_kib(pid)))
            pss.append(_mib(pss_kib(pid)))
    if not rss:
        raise BenchError("no running wrapper to measure")
    return Memory(median(rss), median(pss))


def compile_idle(box: Sandbox) -> Path | None:
    """Compile the trivial class once; None when no JDK is installed."""
    if shutil.which("javac") is None or shutil.which("java") is None:
        return None
    directory = box.tmp / "jvm"
    directory.mkdir(exist_ok=True)
    if not (directory / "Idle.class").exists():
        (directory / "Idle.java").write_text(IDLE_CLASS)
        done = subprocess.run(
            ["javac", "Idle.java"], cwd=directory, capture_output=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"javac failed: {done.stderr.decode(errors='replace')[-500:]}")
    return directory


def jvm_memory(box: Sandbox, classes: Path, tag: str) -> Memory:
    """RSS and Pss of a JobAgent-flagged JVM once its trivial class is running."""
    cgroup = box.cgroup(f"peer.jvm.{tag}")
    try:
        argv = ["java", *JVM_FLAGS, "-cp", str(classes), "Idle"]
        proc = box.popen(argv, cgroup, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise BenchError("the JVM did not start its class")
        time.sleep(0.5)  # let start-up threads (JIT, GC) settle
        return Memory(_mib(status_kib(proc.pid)), _mib(pss_kib(proc.pid)))
    finally:
        box.remove(cgroup)


def sh_memory(box: Sandbox, tag: str) -> Memory:
    """RSS and Pss of `sh` waiting for its `sleep`."""
    cgroup = box.cgroup(f"peer.sh.{tag}")
    try:
        proc = box.popen(["sh", "-c", "sleep 600; exit 0"], cgroup)
        procs = cgroup / "cgroup.procs"
        wait_until("sh and its sleep", lambda: len(procs.read_text().split()) >= 2, 10)
        time.sleep(0.1)
        return Memory(_mib(status_kib(proc.pid)), _mib(pss_kib(proc.pid)))
    finally:
        box.remove(cgroup)


def idle_cpu_scraped(
    daemon: WnrDaemon, address: str, window: float, every: float = SCRAPE_SECONDS
) -> float:
    """Percent of one core the daemon used over `window` while scraped every `every` seconds
    (Prometheus' default interval), once it had two seconds to settle."""
    time.sleep(2.0)
    began, before = time.perf_counter(), cpu_seconds(daemon.pid)
    end = began + window
    while time.perf_counter() < end:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            response.read()
        time.sleep(min(every, max(0.0, end - time.perf_counter())))
    elapsed = time.perf_counter() - began
    return 100 * (cpu_seconds(daemon.pid) - before) / elapsed


def idle_cpu(daemon: WnrDaemon, sup: Supervisor | None, window: float) -> tuple[float, float]:
    """Percent of one core used by the daemon and by supervisord (NaN if absent) over a window
    that begins once both have had two seconds to settle."""
    time.sleep(2.0)
    before = time.perf_counter(), cpu_seconds(daemon.pid), sup.cpu_seconds() if sup else 0.0
    time.sleep(window)
    after = time.perf_counter(), cpu_seconds(daemon.pid), sup.cpu_seconds() if sup else 0.0
    elapsed = after[0] - before[0]
    ours = 100 * (after[1] - before[1]) / elapsed
    theirs = 100 * (after[2] - before[2]) / elapsed if sup else float("nan")
    return ours, theirs
