"""The kernel-enforced benchmark (`python -m bench.kernel`, `make bench-vm`) at a small size.

Runs INSIDE the real-kernel VM. It checks that the benchmark measures every row
of its table and prints it, never what it measured: under TCG the figures say
nothing, and the benchmark itself asserts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.vm.guest.harness import REPO

# 16 jobs and a 5 s window: about 90 s under TCG (256 jobs take minutes).
ARGV = ["-m", "bench.kernel", "--jobs", "16", "--window", "5"]
ROWS = ("idle daemon CPU, 16 jobs", "no-op pass, 16 jobs (CPU)", "(pass taking usage samples")


def test_kernel_benchmark_measures_every_row_and_prints_its_table(tmp_path: Path) -> None:
    """`python -m bench.kernel --jobs 16 --window 5` exits 0, prints a table with every row, and its JSON has both sides and a ratio of each."""
    out = tmp_path / "kernel.json"
    result = subprocess.run(
        [sys.executable, *ARGV, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        check=False,
    )
    log = result.stdout + result.stderr
    assert 0 == result.returncode, log
    assert "| scenario | peer | wnr / peer | goal | goal met |" in result.stdout, log
    for row in ROWS:
        assert row in result.stdout, log
    data = json.loads(out.read_text())
    assert [] == data["errors"]
    assert (16, 5.0) == (data["jobs"], data["window"])
    for row in data["rows"]:
        assert None not in (row["ours"], row["theirs"], row["ratio"]), row
