"""The daemon's metrics: its own counters, the HTTP endpoint and the node_exporter textfile.

Daemon layer, beside the loop (reconciler.daemon.loop), whose one hook (`Daemon.one_pass`)
`Metrics` wraps with `DaemonMetrics.timed`: it counts the pass, its duration, its
actions by op and outcome and its failures by reason, and hands the pass to the
collector that renders jobs and slots at scrape time (reconciler.render.metrics).
`--metrics-address` serves the exposition over HTTP from a thread that blocks in
accept(2) (prometheus_client's own server wakes every 0.5 s, which would be the idle
daemon's largest cost); `--metrics-textfile` writes the exposition atomically (write,
rename) after a pass that acted, and otherwise at most every TEXTFILE_SECONDS, only when
it changed. Running jobs' usage is sampled for metrics (every SAMPLE_SECONDS, on the
sampler's own wake-ups) only while a textfile is written or a scrape came in the last
DEMAND_SECONDS: an endpoint nobody scrapes leaves the idle daemon's CPU as it was.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import ThreadingWSGIServer

from reconciler.daemon.loop import Daemon, installed_version
from reconciler.host.atomicfile import write_bytes
from reconciler.render.exposition import SampleLines, exposition
from reconciler.render.metrics import PassCollector
from reconciler.status.passresult import PassResult

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment
    from wsgiref.types import WSGIApplication as WSGIApp

log = logging.getLogger("wnr.daemon")
# The text format's own content type (Prometheus 2 and 3 read it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# How often the running jobs' live usage is sampled for metrics (on a sample due anyway).
SAMPLE_SECONDS = 15.0
# Samples are taken only while someone reads them: a scrape in this many seconds, or a
# textfile. An endpoint nobody scrapes costs the idle daemon nothing.
DEMAND_SECONDS = 120.0
# The longest the textfile goes without being rewritten while passes only resample.
TEXTFILE_SECONDS = 15.0
# A pass that raised: its failure reason.
PASS_RAISED = "pass-raised"  # noqa: S105 - not a password
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DaemonMetrics:
    """The registry: the daemon's counters and the latest pass's jobs and slots."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # No `_created` series: they double the counters' lines and no query here needs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # The daemon's own series; the jobs' and slots' are rendered from the collector's
        # rows (reconciler.render.exposition), not through the registry: 5x cheaper.
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = PassCollector()
        # Sample lines kept between expositions; one exposition at a time uses them (scrapes
        # come on the server's threads, the textfile is written on the loop's).
        self._lines = SampleLines()
        self._exposing = threading.Lock()
        r = self.registry
        self.passes = Counter("wnr_passes", "Reconcile passes run.", registry=r)
        self.duration = Histogram(
            "wnr_pass_duration_seconds", "Wall time of a pass.", buckets=BUCKETS, registry=r
        )
        self.actions = Counter(
            "wnr_actions", "Actions applied, by op and outcome.", ["op", "outcome"], registry=r
        )
        self.failures = Counter(
            "wnr_failures",
            "Failed actions by kind (transient, terminal, skipped, state-dir); passes that raised.",
            ["reason"],
            registry=r,
        )
        self.spec_errors = Gauge("wnr_spec_errors", "Spec errors in the last pass.", registry=r)
        self.last_success = Gauge(
            "wnr_last_successful_pass_timestamp_seconds",
            "When the last pass that did not raise ended (Unix time).",
            registry=r,
        )
        self.info = Info("wnr_build", "The running wnr.", registry=r)
        self.info.info({"version": installed_version()})
        self.acted = False
        self.textfile: Textfile | None = None
        self._read_at = -DEMAND_SECONDS  # monotonic time of the last scrape

    @property
    def wanted(self) -> bool:
        """Whether usage is to be sampled: a textfile is written, or a scrape came lately."""
        return self.textfile is not None or time.monotonic() - self._read_at < DEMAND_SECONDS

    def timed(self, one_pass: Callable[[], PassResult]) -> Callable[[], PassResult]:
        """`one_pass` counted: what the loop hands its pass guard."""

        def counted() -> PassResult:
            started = time.perf_counter()
            try:
                result = one_pass()
            except Exception:
                self.passed(None, time.perf_counter() - started)
                raise
            self.passed(result, time.perf_counter() - started)
            return result

        return counted

    def passed(self, result: PassResult | None, seconds: float) -> None:
        """Count one pass (None: it raised) and hand it to the collector."""
        self.passes.inc()
        self.duration.observe(seconds)
        if result is None:
            self.failures.labels(PASS_RAISED).inc()
            return
        failed = {f.index: f for f in result.failures}
        for index, action in enumerate(result.plan.actions):
            failure = failed.get(index)
            outcome = "applied" if failure is None else str(failure.kind)
            self.actions.labels(str(action.op), outcome).inc()
        for failure in result.failures:
            self.failures.labels(str(failure.kind)).inc()
        self.spec_errors.set(len(result.desired.errors))
        now = self.clock()
        self.last_success.set(now)
        self.collector.latest = (result, now)
        self.acted = bool(result.plan.actions)
        if self.textfile is not None:
            self.textfile.after_pass()

    def exposition(self) -> bytes:
        """The text format of everything (what a scrape returns): jobs and slots, then the
        daemon's own series."""
        with self._exposing:
            # The collector's memo of recurring families, like the lines, serves one
            # exposition at a time.
            text = exposition(self.collector.families(), self._lines)
        return text.encode() + generate_latest(self.registry)

    def scraped(self) -> bytes:
        """The exposition for a scrape, which keeps the samples coming."""
        self._read_at = time.monotonic()
        return self.exposition()


def metrics_app(metrics: DaemonMetrics) -> WSGIApp:
    """The WSGI application: /metrics (and /) in the text format, 404 elsewhere."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics here\n"]
        body = metrics.scraped()
        headers = [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else []

    return app


class _Quiet(WSGIRequestHandler):
    """No access log: a scrape every few seconds is not news."""

    def log_message(self, format: str, *args: object) -> None:
        return


class MetricsServer:
    """`/metrics` over HTTP in a thread that sleeps in accept(2) between scrapes."""

    def __init__(self, metrics: DaemonMetrics, address: str) -> None:
        host, port = split_address(address)
        self.httpd = make_server(
            host, port, metrics_app(metrics), ThreadingWSGIServer, handler_class=_Quiet
        )
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="wnr-metrics", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            self.httpd.handle_request()

    def close(self) -> None:
        """Stop serving: shutting the socket down wakes the blocked accept."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.httpd.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)
        self.httpd.server_close()


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:9731` for IPv6) as host and port; ValueError when it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--metrics-address must be HOST:PORT, not {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


class Textfile:
    """The exposition in a file for node_exporter's textfile collector, replaced atomically."""

    def __init__(self, metrics: DaemonMetrics, path: str) -> None:
        self.metrics = metrics
        self.path = path
        self._last = b""
        self._due = 0.0
        self._failing = ""

    def after_pass(self) -> None:
        """Rewrite the file after a pass that acted or once TEXTFILE_SECONDS passed, if it
        changed; a write that fails is logged once per error and tried again later."""
        now = time.monotonic()
        if not self.metrics.acted and now < self._due:
            return
        self._due = now + TEXTFILE_SECONDS
        text = self.metrics.exposition()
        if text == self._last:
            return
        try:
            write_bytes(self.path, text)
        except OSError as exc:
            if str(exc) != self._failing:
                log.warning("cannot write the metrics textfile: %s", exc)
            self._failing = str(exc)
            return
        self._last, self._failing = text, ""


class Metrics:
    """What `wnr run --metrics-address/--metrics-textfile` adds to a daemon; `close` at exit."""

    def __init__(self, daemon: Daemon, address: str | None, textfile: str | None) -> None:
        self.metrics = DaemonMetrics(daemon.reconciler.clock)
        if textfile is not None:
            self.metrics.textfile = Textfile(self.metrics, textfile)
        self.server = MetricsServer(self.metrics, address) if address is not None else None
        reconciler = daemon.reconciler

        def sampled_pass() -> PassResult:
            reconciler.metrics_interval = SAMPLE_SECONDS if self.metrics.wanted else None
            return reconciler.run_pass()

        daemon.one_pass = self.metrics.timed(sampled_pass)
        if self.server is not None:
            log.info("serving metrics on http://%s/metrics", self.server.address)

    def close(self) -> None:
        """Stop the HTTP server (the textfile stays, as node_exporter expects)."""
        if self.server is not None:
            self.server.close()
