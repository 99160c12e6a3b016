"""What the node is: architecture, CPU features, runtimes, GPUs and site overrides; part of observe.

Read once at start-up (and the site overrides file again when it changes);
the planner gets them as plain data (`observed.NodeFacts`).
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess

from reconciler.model.observed import NodeFacts

_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
# Java properties: `key=value`, `key: value` or `key value`.
_PROPERTY = re.compile(r"^([^=:\s]+)\s*[=:\s]\s*(.*)$")


_CACHE: dict[str | None, tuple[tuple[int, int] | None, NodeFacts]] = {}


def cached(site_overrides: str | None) -> NodeFacts:
    """`detect`, once per process, again only when the site overrides file changes."""
    stamp = site_overrides_stamp(site_overrides)
    hit = _CACHE.get(site_overrides)
    if hit is None or hit[0] != stamp:
        hit = (stamp, detect(site_overrides))
        _CACHE[site_overrides] = hit
    return hit[1]


def detect(site_overrides: str | None) -> NodeFacts:
    """Read the node's facts; `site_overrides` is the Node's container.properties path."""
    machine = platform.machine()
    return NodeFacts(
        architecture=_ARCH.get(machine, machine),
        cpu_features=cpu_features(),
        runtimes=frozenset(r for r in ("apptainer", "bwrap") if shutil.which(r)),
        gpus=detect_gpus(),
        daemon_uid=os.geteuid(),
        site=read_site_overrides(site_overrides) if site_overrides else (),
    )


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (x86 `flags`, Arm `Features`)."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def detect_gpus() -> tuple[str, ...]:
    """NVIDIA GPU indexes from /dev/nvidia<N>, or `nvidia-smi -L` where the nodes are missing."""
    found = sorted(p.removeprefix("/dev/nvidia") for p in glob.glob("/dev/nvidia[0-9]*"))
    if found:
        return tuple(found)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return tuple(m[1] for m in re.finditer(r"^GPU (\d+):", out.stdout, re.MULTILINE))


def read_site_overrides(path: str) -> tuple[tuple[str, str], ...]:
    """A JAliEn-style container.properties as (key, value) pairs; a missing file gives none."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return ()
    pairs: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = _PROPERTY.match(line)
        if match is None:
            continue
        key, value = match[1], match[2]
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def site_overrides_stamp(path: str | None) -> tuple[int, int] | None:
    """(mtime, size) of the overrides file, to notice edits."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
