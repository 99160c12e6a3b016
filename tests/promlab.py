"""The metrics tests' tools: scraping a daemon, `promtool`, and a real Prometheus on loopback.

Prometheus is Debian's (`make deps` installs it, its service never started); each
test run starts its own on 127.0.0.1 with a free port, a temporary storage dir and a
1 s scrape interval, and stops it by its PID, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SERVING = re.compile(rb"serving metrics on http://([0-9.]+:[0-9]+)/metrics")


def daemon_address(log: Path, timeout: float = 20.0) -> str:
    """HOST:PORT the daemon logged it serves metrics on (it was given port 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = SERVING.search(log.read_bytes()) if log.exists() else None
        if found:
            return found.group(1).decode()
        time.sleep(0.05)
    pytest.fail(f"the daemon did not serve metrics:\n{log.read_text(errors='replace')}")


def scrape(address: str) -> str:
    """One scrape of /metrics, as Prometheus makes it."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert 200 == response.status
        text: str = response.read().decode()
        return text


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def names(text: str) -> set[str]:
    """Every family and sample name an exposition declares (`wnr_passes`, `wnr_passes_total`),
    also a counter's `_total` while it has no sample yet."""
    families = list(text_string_to_metric_families(text))
    counters = {f"{f.name}_total" for f in families if f.type == "counter"}
    return {f.name for f in families} | counters | {s.name for f in families for s in f.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample `name` whose labels include `labels`; None if none."""
    found = [
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name}{labels}: {found}"
    return found[0] if found else None


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on an exposition (its lint of names, units and types)."""
    return subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """A running `prometheus` scraping one target every second; `query` its HTTP API."""

    def __init__(self, base: Path, target: str) -> None:
        self.port = free_port()
        self.base = base
        config = base / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: wnr\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = base / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={base / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of a PromQL query."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert "success" == body["status"], body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def ready(self) -> bool:
        """Whether its HTTP API answers."""
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        url = f"http://127.0.0.1:{self.port}/-/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            return bool(200 == r.status)
        return False

    def stop(self) -> None:
        """SIGTERM it (by its PID), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def prometheus(base: Path, target: str) -> Iterator[Prometheus]:
    """A Prometheus scraping `target`, ready; stopped on the way out, whatever happened."""
    if shutil.which("prometheus") is None:
        pytest.fail("Debian's prometheus is not installed: run `make deps`")
    server = Prometheus(base, target)
    try:
        deadline = time.monotonic() + 60
        while not server.ready():
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready:\n{server.log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()
