"""`wnr run --metrics-address/--metrics-textfile` on the real cgroup2 mount: a real daemon's
jobs starting, OOM-killed (by wnr's user-space enforcement) and finishing, scraped over
HTTP, linted by `promtool check metrics`, and scraped by a real Prometheus."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.cli.arguments import build_parser
from reconciler.daemon.metrics import SAMPLE_SECONDS
from reconciler.host.cgroupfs import CgroupFS
from reconciler.host.statedir import StateDir
from reconciler.model.observed import Observed, Placement
from reconciler.plan import plan
from reconciler.reconcile import Reconciler
from reconciler.render.exposition import GAUGE, Family, SampleLines, exposition
from reconciler.render.metrics import FamilyMemo, PassCollector, pass_families
from reconciler.specs.loader import SpecLoader
from reconciler.status.passresult import PassResult
from tests.builders import RUNNING, attempt, desired, job, records, slot, tree
from tests.conftest import make_cgroup_root, remove_tree, wait_for
from tests.helpers import USER_SPACE_NODE, DaemonProcess, common, job_document, wnr
from tests.promlab import daemon_address, names, prometheus, promtool_check, scrape, value

MiB = 2**20
HOG = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(600)"
SPECS = (
    USER_SPACE_NODE
    + job_document("sleeper", ["sleep", "600"], "resources: {memory: 64Mi, cpus: 500m}\n")
    + job_document("done", ["true"], "")
    + job_document(
        "hog", ["python3", "-c", HOG], "resources: {memory: 64Mi}\nidle: {windowSeconds: 600}\n"
    )
)
DOOMED = job_document("doomed", ["sleep", "600"], "").removeprefix("---\n")
DASHBOARD = Path(__file__).resolve().parent.parent / "manifests" / "grafana" / "wnr.json"


class Node:
    """A daemon serving metrics (HTTP on a port of its choosing, and a textfile)."""

    def __init__(self, base: Path, root: Path) -> None:
        self.base, self.root = base, root
        self.specs, state = base / "specs", base / "state"
        self.specs.mkdir()
        state.mkdir()
        (self.specs / "jobs.yaml").write_text(SPECS)
        (self.specs / "doomed.yaml").write_text(DOOMED)
        self.textfile = base / "wnr.prom"
        self.daemon = DaemonProcess(self.specs, root, state, base / "daemon.log")
        self.daemon.args += ["--metrics-address", "127.0.0.1:0"]
        self.daemon.args += ["--metrics-textfile", str(self.textfile)]
        self.address = ""

    def start(self) -> None:
        """Start the daemon and learn the port it serves on."""
        self.daemon.start()
        self.address = daemon_address(self.base / "daemon.log")

    def phase(self, text: str, job: str, phase: str) -> float | None:
        """wnr_job_phase of one job and phase in a scrape."""
        return value(text, "wnr_job_phase", job_name=job, phase=phase)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One daemon for the module, once its jobs started, the hog was OOM-killed and `done` ended."""
    root = make_cgroup_root()
    try:
        running = Node(tmp_path_factory.mktemp("metrics"), root)
        try:
            running.start()

            def settled() -> bool:
                """sleeper runs, done succeeded, hog failed OOMKilled (in one scrape)."""
                text = scrape(running.address)
                return (
                    running.phase(text, "sleeper", "Running") == 1
                    and running.phase(text, "done", "Succeeded") == 1
                    and running.phase(text, "hog", "Failed") == 1
                    and value(text, "wnr_job_memory_working_set_bytes", job_name="sleeper")
                    is not None
                )

            wait_for(settled, timeout=60, interval=0.2)
            yield running
        finally:
            running.daemon.kill()
    finally:
        remove_tree(root)


def test_a_running_job_has_its_usage_limits_and_identity(node: Node) -> None:
    """The sleeper's series carry slot, job_name and its object-store uid, its sampled usage and its spec's limits."""
    text = scrape(node.address)
    flags = common(node.specs, node.root, node.base / "state")
    uid = json.loads(wnr("get", "jobs", "sleeper", "-o", "json", *flags, check=0).stdout)[
        "metadata"
    ]["uid"]
    labels = {"slot": "s", "job_name": "sleeper", "uid": uid}
    assert 1.0 == value(text, "wnr_job_phase", phase="Running", **labels)
    assert 0.0 == value(text, "wnr_job_phase", phase="Pending", **labels)
    assert 1.0 == value(text, "wnr_job_attempts_total", **labels)
    assert 0.0 == value(text, "wnr_job_oom_kills_total", **labels)
    assert 64 * MiB == value(text, "wnr_job_memory_limit_bytes", **labels)
    assert 0.5 == value(text, "wnr_job_cpu_limit_cores", **labels)
    assert 0.0 == value(text, "wnr_job_memory_swap_limit_bytes", **labels)
    working_set = value(text, "wnr_job_memory_working_set_bytes", **labels)
    assert working_set is not None
    assert 0 < working_set < 64 * MiB
    cpu = value(text, "wnr_job_cpu_usage_seconds_total", **labels)
    assert cpu is not None
    assert cpu >= 0
    pids = value(text, "wnr_job_pids", **labels)
    assert pids is not None
    assert pids >= 1


def test_absent_kernel_files_have_no_series(node: Node) -> None:
    """Without the memory and cpu controllers (this host) memory.current, swap and throttling have no series, never a 0."""
    controllers = (node.root / "cgroup.controllers").read_text().split()
    text = scrape(node.address)
    if "memory" not in controllers:
        assert None is value(text, "wnr_job_memory_current_bytes", job_name="sleeper")
        assert None is value(text, "wnr_job_memory_swap_bytes", job_name="sleeper")
    if "cpu" not in controllers:
        assert None is value(text, "wnr_job_cpu_throttled_seconds_total", job_name="sleeper")


def test_a_user_space_oom_kill_is_counted_and_finished_jobs_keep_their_phase(node: Node) -> None:
    """The hog wnr killed for its memory counts one OOM kill and is Failed; done is Succeeded; neither has usage series."""
    text = scrape(node.address)
    assert 1.0 == value(text, "wnr_job_oom_kills_total", job_name="hog")
    assert 1.0 == node.phase(text, "hog", "Failed")
    assert 0.0 == node.phase(text, "hog", "Running")
    assert 1.0 == node.phase(text, "done", "Succeeded")
    assert None is value(text, "wnr_job_memory_working_set_bytes", job_name="done")


def test_daemon_series(node: Node) -> None:
    """Passes, their duration, actions by op and outcome, spec errors, the last pass's time and the version are served."""
    text = scrape(node.address)
    passes = value(text, "wnr_passes_total")
    assert passes is not None
    assert passes >= 2
    assert passes == value(text, "wnr_pass_duration_seconds_count")
    assert 1.0 <= (value(text, "wnr_actions_total", op="start-job", outcome="applied") or 0)
    assert 0.0 == value(text, "wnr_spec_errors")
    last = value(text, "wnr_last_successful_pass_timestamp_seconds")
    assert last is not None
    assert math.isfinite(last)
    assert 1.0 == value(text, "wnr_build_info")
    assert 1.0 == value(text, "wnr_slot_phase", slot="s", phase="Ready")


def test_promtool_accepts_the_exposition_and_the_textfile(node: Node) -> None:
    """`promtool check metrics` finds nothing to lint in the HTTP exposition or the textfile."""
    for text in (scrape(node.address), node.textfile.read_text()):
        checked = promtool_check(text)
        assert (0, "") == (checked.returncode, checked.stdout + checked.stderr)
    assert "wnr_job_phase" in names(node.textfile.read_text())


def test_a_deleted_job_leaves_no_series(node: Node) -> None:
    """Once the doomed job's spec is deleted and it is gone, no series names it."""
    assert 1.0 == node.phase(scrape(node.address), "doomed", "Running")
    (node.specs / "doomed.yaml").unlink()

    def gone() -> bool:
        """No series of the scrape names doomed."""
        return 'job_name="doomed"' not in scrape(node.address)

    wait_for(gone, timeout=30, interval=0.2)


def test_prometheus_scrapes_the_job_series(node: Node, tmp_path: Path) -> None:
    """Debian's Prometheus, scraping the daemon every second, has each job's phase, the OOM kill and the usage with their labels."""
    with prometheus(tmp_path, node.address) as server:

        def scraped() -> bool:
            """Prometheus holds the sleeper's Running phase."""
            return bool(server.query('wnr_job_phase{job_name="sleeper",phase="Running"} == 1'))

        wait_for(scraped, timeout=60, interval=0.5)
        [running] = server.query('wnr_job_phase{job_name="sleeper",phase="Running"}')
        assert {
            "job": "wnr",
            "slot": "s",
            "job_name": "sleeper",
            "phase": "Running",
        }.items() <= running["metric"].items()
        assert running["metric"]["uid"]
        [oom] = server.query('wnr_job_oom_kills_total{job_name="hog"}')
        assert "1" == oom["value"][1]
        [done] = server.query('wnr_job_phase{job_name="done",phase="Succeeded"}')
        assert "1" == done["value"][1]
        assert server.query('wnr_job_memory_working_set_bytes{job_name="sleeper"} > 0')
        assert server.query('rate(wnr_passes_total{job="wnr"}[1m]) >= 0') is not None
        assert server.query('up{job="wnr"} == 1')


def test_the_dashboard_uses_only_served_series(node: Node) -> None:
    """Every wnr_ name in manifests/grafana/wnr.json's queries is a family or sample of a real daemon's exposition."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    served = names(scrape(node.address))
    used = {n for expr in exprs for n in _metric_names(expr)}
    assert set() == used - served
    assert used


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bwnr_[a-z_]+\b", expr))


def test_the_fast_exposition_parses_as_prometheus_clients_own(node: Node) -> None:
    """The rows of a real pass over the node (dry, in-process, sampled for metrics) written by render.exposition parse to the same families, types, help and samples as generate_latest of the collector."""
    reconciler = Reconciler(
        SpecLoader([node.specs], trusted_uid=os.geteuid()),
        CgroupFS(node.root),
        StateDir(node.base / "state"),
    )
    reconciler.metrics_interval = SAMPLE_SECONDS
    collector = PassCollector()
    collector.latest = (reconciler.run_pass(dry_run=True), time.time())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ours = exposition(collector.families())
    assert parsed(generate_latest(registry).decode()) == parsed(ours)
    assert "wnr_job_memory_working_set_bytes{" in ours


def test_sample_lines_kept_between_expositions_write_what_fresh_ones_write() -> None:
    """An exposition reusing the lines of earlier ones writes what a fresh one writes, though label values and values changed, came and went in between (escaping, NaN and unlabelled series included)."""

    def families(*jobs: str, bump: float = 0.0) -> list[Family]:
        family = Family("wnr_job_phase", GAUGE, "help", ("job", "uid"))
        for index, name in enumerate(jobs):
            family.add((name, f"uid-{index}"), index + bump)
        bare = Family("wnr_up", GAUGE, "no labels")
        bare.add((), bump)
        odd = Family("wnr_odd", GAUGE, "a NaN")
        odd.add((), float("nan"))
        return [family, bare, odd, Family("wnr_empty", GAUGE, "no rows")]

    kept = SampleLines()
    steps = [(("a", 'b"q'), 0.0), (("a", "c\\n"), 0.0), (('b"q',), 0.5), (("a", 'b"q'), 0.5)]
    steps += [(("a", 'b"q'), 0.0), (("a", 'b"q'), 0.0)]
    for jobs, bump in steps:
        fresh = exposition(families(*jobs, bump=bump))
        assert fresh == exposition(families(*jobs, bump=bump), kept)
    assert 'wnr_job_phase{job="a",uid="uid-0"} 0\n' in fresh
    assert "wnr_up 0\n" in fresh


def test_a_recurring_family_is_its_text_again_until_it_changes() -> None:
    """A family handed out again as the very same object is written as before, and a changed one in its place writes its new rows, with the earlier lines kept for it."""

    def phase(value: float) -> Family:
        family = Family("wnr_job_phase", GAUGE, "help", ("job",), recurs=True)
        family.add(("a",), value)
        family.add(("b",), 1)
        return family

    kept, first, changed = SampleLines(), phase(0), phase(1)
    for family in (first, first, changed, changed, first):
        assert exposition([phase(family.rows[0][1])]) == exposition([family], kept)
    assert 'wnr_job_phase{job="a"} 0\n' in exposition([first], kept)


def test_job_and_slot_families_recur_while_the_pass_reads_alike() -> None:
    """Passes over the same jobs give the very same job and slot families; a job that ends gives new ones, with its new phase."""
    specs = desired(slot("s"), job("a", "s"), job("b", "s"))
    placed = {"a": ("s", True), "b": ("s", True)}
    running = tree({"s": {}}, placed, records=dict.fromkeys(placed, RUNNING))
    ended = replace(
        running,
        jobs={
            **running.jobs,
            "a": Placement("s", replace(running.jobs["a"].cgroup, populated=False)),
        },
        records={**running.records, "a": records(attempt(1, "exited", exit_code=0))},
    )
    memo = FamilyMemo()

    def families(observed: Observed, now: float) -> list[Family]:
        return pass_families(PassResult(specs, observed, plan(specs, observed, now)), now, memo)

    first, again, after = families(running, 10.0), families(running, 11.0), families(ended, 12.0)

    recurring = [f for f in first if f.recurs]
    assert {"wnr_job_phase", "wnr_slot_phase", "wnr_job_attempts_total"} <= {
        f.name for f in recurring
    }
    assert all(any(f is g for g in again) for f in recurring)
    assert not any(f is g for f in recurring for g in after if f.name == "wnr_job_phase")
    rows = next(f for f in after if f.name == "wnr_job_phase").rows
    assert (("s", "a", "", "Succeeded"), 1) in rows


def parsed(
    text: str,
) -> list[tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], float]]]]:
    """Each family's name, type, help and sorted samples."""
    return [
        (
            f.name,
            f.type,
            f.documentation,
            sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples),
        )
        for f in text_string_to_metric_families(text)
    ]


def test_metrics_address_alone_means_loopback_9731() -> None:
    """`--metrics-address` without a value serves on 127.0.0.1:9731; without the flag, nothing."""
    parser = build_parser()
    assert "127.0.0.1:9731" == parser.parse_args(["run", "--metrics-address"]).metrics_address
    assert "[::1]:80" == parser.parse_args(["run", "--metrics-address", "[::1]:80"]).metrics_address
    assert None is parser.parse_args(["run"]).metrics_address


def test_a_malformed_metrics_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """`wnr run --metrics-address nonsense` exits 1 naming the form it wants, and creates no cgroup root."""
    root = make_cgroup_root()
    try:
        specs, state = tmp_path / "specs", tmp_path / "state"
        specs.mkdir()
        state.mkdir()
        done = wnr("run", "--metrics-address", "nonsense", *common(specs, root, state), check=1)
        assert "wnr: --metrics-address must be HOST:PORT, not 'nonsense'\n" == done.stderr
        assert not root.exists()
    finally:
        remove_tree(root)


def test_a_scraped_endpoint_without_a_textfile_brings_usage_samples(daemon: DaemonProcess) -> None:
    """With --metrics-address alone, usage is sampled once scrapes come: the sleeper's working set appears in a later scrape."""
    specs = Path(daemon.args[daemon.args.index("--specs") + 1])
    (specs / "jobs.yaml").write_text(
        USER_SPACE_NODE + job_document("sleeper", ["sleep", "600"], "")
    )
    daemon.args += ["--metrics-address", "127.0.0.1:0"]
    daemon.start()
    address = daemon_address(daemon.log)

    def sampled() -> bool:
        """The sleeper runs and has a working set."""
        text = scrape(address)
        return value(text, "wnr_job_memory_working_set_bytes", job_name="sleeper") is not None

    wait_for(sampled, timeout=30, interval=0.2)
    assert 0 == daemon.terminate()
