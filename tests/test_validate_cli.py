"""`wnr validate` run as a real subprocess: the examples are valid, tests/data/broken gives exact error lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKEN = "tests/data/broken"
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if p.is_dir())

# One line per defect: the exact `file:line:col: Kind/name: field` prefix and a piece of the message.
EXPECTED_BROKEN = {
    f"{BROKEN}/syntax.yaml:5:15": "YAML syntax error: mapping values are not allowed",
    f"{BROKEN}/wrong-type.yaml:8:11: Slot/wrong-type: spec.resources.pids": "valid integer",
    f"{BROKEN}/unknown-field.yaml:9:3: Slot/unknown-field: spec.extra": "Extra inputs are not permitted",
    f"{BROKEN}/bad-quantity.yaml:8:13: Slot/bad-quantity: spec.resources.memory": "invalid quantity '8Gx'",
    f"{BROKEN}/bad-name.yaml:5:9: Slot/Bad_Name: metadata.name": "DNS-1123",
    f"{BROKEN}/missing-slot.yaml:8:9: Job/orphan: spec.slot": "Slot 'nowhere' does not exist",
    f"{BROKEN}/duplicate-a.yaml:5:9: Slot/twin: metadata.name": f"duplicate Slot name 'twin' (also defined in {BROKEN}/duplicate-b.yaml)",
    f"{BROKEN}/duplicate-b.yaml:6:9: Slot/twin: metadata.name": f"duplicate Slot name 'twin' (also defined in {BROKEN}/duplicate-a.yaml)",
}


def _validate(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _prefix(line: str) -> str:
    """The expected prefix a line starts with (followed by ': '), or the whole line when none does."""
    for prefix in EXPECTED_BROKEN:
        if line.startswith(prefix + ": "):
            return prefix
    return line


def test_validate_quickstart_exits_zero_and_counts_objects() -> None:
    """`validate examples/quickstart` exits 0 and reports its 8 objects (1 Node, 2 Slots, 5 Jobs) valid."""
    result = _validate("examples/quickstart")
    assert (0, "examples/quickstart: 8 object(s) valid\n", "") == (
        result.returncode,
        result.stdout,
        result.stderr,
    )


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_directory_is_valid(example: str) -> None:
    """Every directory under examples/ validates with exit 0 and no error lines."""
    result = _validate(f"examples/{example}")
    assert (0, "") == (result.returncode, result.stderr)
    assert [f"examples/{example}: "] == [
        line[: len(example) + 11] for line in result.stdout.splitlines()
    ]
    assert result.stdout.rstrip().endswith("object(s) valid")


def test_validate_broken_exits_one() -> None:
    """`validate tests/data/broken` exits 1 and writes nothing to stderr (no traceback)."""
    result = _validate(BROKEN)
    assert (1, "") == (result.returncode, result.stderr)


def test_validate_broken_prints_exactly_one_line_per_defect() -> None:
    """Each defect gives one line (the duplicate two, one per file), located at the offending value, and nothing else."""
    result = _validate(BROKEN)
    lines = result.stdout.splitlines()
    assert sorted(EXPECTED_BROKEN) == sorted(_prefix(line) for line in lines)


@pytest.mark.parametrize("prefix", sorted(EXPECTED_BROKEN))
def test_validate_broken_line_carries_the_message(prefix: str) -> None:
    """The line for each defect carries a message that explains it after its `file:line:col: Kind/name: field` prefix."""
    result = _validate(BROKEN)
    messages = [
        line[len(prefix) + 2 :] for line in result.stdout.splitlines() if _prefix(line) == prefix
    ]
    assert 1 == len(messages)
    assert EXPECTED_BROKEN[prefix] in messages[0]


def test_validate_of_the_valid_file_alone_exits_zero() -> None:
    """A valid file named on the command line (not its directory) validates on its own."""
    result = _validate(f"{BROKEN}/slot.yaml")
    assert (0, f"{BROKEN}/slot.yaml: 2 object(s) valid\n") == (result.returncode, result.stdout)


def test_validate_missing_path_exits_one_with_a_located_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as `path:1:1: cannot read: ...` with exit 1."""
    missing = tmp_path / "nope.yaml"
    result = _validate(str(missing))
    assert (1, f"{missing}:1:1: cannot read: No such file or directory\n") == (
        result.returncode,
        result.stdout,
    )


def test_validate_each_directory_is_its_own_spec_set() -> None:
    """Two directories are checked separately: a valid one still reports valid and the exit code is 1."""
    result = _validate("examples/quickstart", BROKEN)
    assert 1 == result.returncode
    assert "examples/quickstart: 8 object(s) valid" in result.stdout.splitlines()


def test_validate_infinite_quantity_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    """`memory: .inf` gives a located error line and exit 1, not an OverflowError traceback."""
    spec = tmp_path / "inf.yaml"
    spec.write_text(
        "apiVersion: wnr.dev/v1alpha1\n"
        "kind: Slot\n"
        "metadata:\n"
        "  name: inf\n"
        "spec:\n"
        "  resources:\n"
        "    memory: .inf\n"
    )
    result = _validate(str(spec))
    assert (1, "") == (result.returncode, result.stderr)
    assert [f"{spec}:7:13: Slot/inf: spec.resources.memory"] == [
        ": ".join(line.split(": ")[:3]) for line in result.stdout.splitlines()
    ]
