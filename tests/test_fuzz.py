"""Fuzzing the loader, planner, status and rendering with mutated valid specs and random bytes.

Nothing a file holds may raise out of spec parsing (`decode` + `parse_text`,
called here without the daemon's guard, so any escape fails the test), and
whatever validates must plan, derive status and render without raising, with
no job and with every job running. `make test` runs a bounded number of cases;
`make fuzz` (WNR_FUZZ_CASES=100000) runs the long mode and prints cases per
second and every case slower than a second.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model.api import API_VERSION
from reconciler.model.desired import Desired
from reconciler.plan import plan
from reconciler.render import jobs_table, plan_data, plan_text, slots_table
from reconciler.specs.loader import SpecLoader
from reconciler.specs.parse import parse_text
from reconciler.specs.yamlbounds import decode
from reconciler.status import api_object, job_statuses, slot_statuses
from reconciler.status.passresult import PassResult
from tests.builders import RUNNING, tree
from tests.hostile import Case, cases

CASES = int(os.environ.get("WNR_FUZZ_CASES", "300"))
REPO = Path(__file__).resolve().parent.parent
SEEDS = sorted(str(p.relative_to(REPO)) for p in REPO.glob("examples/*/*.yaml"))
FULL = f"""\
apiVersion: {API_VERSION}
kind: Node
metadata: {{name: wn, labels: {{a: b}}}}
spec:
  cgroupRoot: auto
  capacity: {{cpus: 8, memory: 16Gi}}
  policies: {{idle: {{windowSeconds: 60, minCpuFraction: 0.5}}, maxStartAttempts: 2,
    userSpace: {{intervalSeconds: 1, memoryFactor: 1.2}}, agentBackoff: {{initialSeconds: 1}}}}
  specLimits: {{maxFileSize: 1Mi, maxDocuments: 10}}
---
apiVersion: {API_VERSION}
kind: Slot
metadata: {{name: s}}
spec:
  resources: {{cpus: 500m, memory: 1Gi, memoryHigh: 900Mi, swap: 0, pids: 100, ioWeight: 50,
    disk: 1Gi}}
  cpuset: 0-1
  gpus: [0, 1]
  state: Draining
  drainGracePeriodSeconds: 10
  deadline: 2030-01-01T00:00:00Z
  agents: {{replicas: 2, command: [sleep, '9'], env: {{A: b}}}}
---
apiVersion: {API_VERSION}
kind: Job
metadata: {{name: j}}
spec:
  slot: s
  command: [sh, -c, 'exit 0']
  env: {{X: y}}
  workingDir: /tmp
  resources: {{cpus: 0.25, memory: 64Mi, pids: 10, disk: 1Mi, gpus: 1}}
  activeDeadlineSeconds: 4294967296
  idle: {{windowSeconds: 4294967296, minCpuFraction: 1}}
  maxStartAttempts: 1
  coreFiles: ignore
"""
# Values that once broke something, for the mutator to put where values go.
NASTY = [
    "1e400", "1" + "0" * 400, "1" + "0" * 5000, ".inf", "-.inf", ".nan", "2030-02-30",
    "!!bool true", "*a", "&a x", "\t", '"\\0"', "[[[[", "{", "- - - x", "~", "null", "''",
    "0x7fffffffffffffffff", "18446744073709551616", "-1", "0", "1.5", "'8Ei'", "'9Ei'",
    "'0.0001m'", "'1000000001'", '"evil\\n"', "[]", "{}", "yes", "2030-01-01",
    "x" * 300, "&b [*b]", "!!python/object:os.system x",
]  # fmt: skip


def seed_texts() -> list[str]:
    """The valid texts mutations start from: every example file and one using every field."""
    return [FULL, *((REPO / seed).read_text() for seed in SEEDS)]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid spec with a few line-level and byte-level mutations."""
    lines = draw(st.sampled_from(seed_texts())).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        choice = draw(st.integers(0, 3))
        if choice == 0 and ": " in line:  # a nasty value for a key
            key = line.partition(": ")[0]
            lines[index] = f"{key}: {draw(st.sampled_from(NASTY))}\n"
        elif choice == 1:  # a line repeated, dropped or moved
            lines.insert(draw(st.integers(0, len(lines))), line)
        elif choice == 2:
            del lines[index]
            if not lines:
                lines = ["a: 1\n"]
        else:  # bytes overwritten
            data = bytearray(line.encode("utf-8", errors="surrogateescape"))
            at = draw(st.integers(0, len(data)))
            data[at : at + draw(st.integers(0, 3))] = draw(st.binary(max_size=4))
            lines[index] = data.decode("utf-8", errors="surrogateescape")
    return "".join(lines).encode("utf-8", errors="surrogateescape")


@dataclass
class Stats:
    """What the long mode reports."""

    cases: int = 0
    seconds: float = 0.0
    valid: int = 0
    slow: list[tuple[float, bytes]] = field(default_factory=list)


STATS = Stats()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """After the module: remove the spec dir, print cases per second and the slow cases
    (shown with `pytest -s`)."""
    yield
    shutil.rmtree(SPEC_DIR, ignore_errors=True)
    if STATS.cases:
        rate = STATS.cases / STATS.seconds if STATS.seconds else float("inf")
        print(
            f"\nfuzz: {STATS.cases} cases, {STATS.valid} valid, {rate:.0f} cases/s, "
            f"{len(STATS.slow)} over 1 s"
        )
        for seconds, data in STATS.slow[:10]:
            print(f"  {seconds:.2f}s: {data[:200]!r}")


SPEC_DIR = Path(tempfile.mkdtemp(prefix="wnr-fuzz-"))


def exercise(data: bytes) -> None:
    """Parse (unguarded), then plan, derive status and render whatever validated."""
    started = time.perf_counter()
    text = decode(data)
    if isinstance(text, str):
        parsed = parse_text("/fuzz.yaml", text)
        if parsed.objects:
            STATS.valid += 1
            path = SPEC_DIR / "spec.yaml"
            path.write_bytes(data)
            run_everything(SpecLoader([SPEC_DIR]).load())
    elapsed = time.perf_counter() - started
    STATS.cases += 1
    STATS.seconds += elapsed
    if elapsed > 1.0:
        STATS.slow.append((elapsed, data))


def run_everything(desired: Desired) -> None:
    """Plan with nothing created and with every job running; status and render both."""
    jobs = {name: (job.spec.slot, True) for name, job in desired.jobs.items()}
    running = tree(
        {name: {} for name in desired.slots}, jobs, records=dict.fromkeys(desired.jobs, RUNNING)
    )
    for observed in (tree({}), running):
        now = 1_800_000_000.0
        planned = plan(desired, observed, now)
        result = PassResult(desired, observed, planned)
        plan_text(result, color=True)
        plan_data(result)
        slots = slot_statuses(desired, observed, planned, now)
        statuses = job_statuses(desired, observed, planned, now)
        jobs_table(list(statuses.values()), {}, now, wide=True)
        slots_table(list(slots.values()), desired.slots, {}, now, wide=True)
        for name, status in statuses.items():
            api_object("Job", desired.jobs.get(name), status)


FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@FUZZ
@given(mutated())
def test_mutated_specs_never_raise(data: bytes) -> None:
    """A mutated valid spec parses to objects or to errors, and what validates plans, reports and renders."""
    exercise(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_never_raise(data: bytes) -> None:
    """Random bytes are an error (or, rarely, valid YAML), never an exception."""
    exercise(data)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_the_hostile_corpus_never_raises(case: Case) -> None:
    """The corpus, unguarded, gives errors and raises nothing."""
    exercise(case.data)
