"""Spec loading under hostile input, without a daemon: bounds, file types, Node limits, positions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.specs.loader import SpecLoader, guarded_parse
from reconciler.specs.read import Content, Outcome, Unreadable, read_spec
from reconciler.specs.yamlbounds import MAX_DEPTH, MAX_EXPANDED_NODES, Refusal, check, decode
from tests.hostile import HEADER, Case, cases, job


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_every_hostile_file_is_one_positioned_error(tmp_path: Path, case: Case) -> None:
    """Each corpus file, loaded from disk, gives its error first, freezes deletions, and raises nothing."""
    path = tmp_path / f"{case.name}.yaml"
    path.write_bytes(case.data)
    desired = SpecLoader([tmp_path], trusted_uid=os.geteuid()).load()
    assert str(desired.errors[0]).startswith(f"{path}:{case.error}")
    assert (False, {}, {}) == (desired.complete, desired.slots, desired.jobs)


def test_nesting_at_the_limit_passes_and_one_more_level_does_not() -> None:
    """MAX_DEPTH nested collections are fine; one more is refused at the collection that crosses."""
    assert check("[" * MAX_DEPTH + "]" * MAX_DEPTH, 10) is None
    deeper = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert Refusal(1, MAX_DEPTH + 1, f"nested more than {MAX_DEPTH} levels deep") == check(
        deeper, 10
    )


def test_aliases_that_stay_small_are_allowed() -> None:
    """A shared env block used by a few jobs is ordinary YAML and passes the alias bound."""
    text = "a: &env {A: '1', B: '2'}\nb: *env\nc: *env\n"
    assert check(text, 10) is None


def test_alias_expansion_is_counted_through_nested_anchors() -> None:
    """An anchor's size includes the aliases inside it, so ten levels of 4x blow past the bound."""
    lines = ["l0: &l0 [x, x, x, x]"]
    lines += [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}]" for i in range(1, 10)]
    refusal = check("\n".join(lines) + "\n", 10)
    assert refusal is not None
    assert f"aliases expand the file past {MAX_EXPANDED_NODES} nodes" == refusal.message


def test_anchors_do_not_cross_documents() -> None:
    """An alias to an anchor of an earlier document is a positioned YAML error, not a crash."""
    errors = guarded_parse("/f.yaml", b"a: &x [1]\n---\nb: *x\n", 10).errors
    assert ["/f.yaml:3:4: YAML error: found undefined alias"] == [str(e) for e in errors]


def test_decode_reports_the_line_and_column_of_a_bad_byte() -> None:
    """A Latin-1 byte on line 3 is reported at line 3, counted in characters."""
    assert Refusal(3, 6, "not UTF-8: byte 0xe9 (invalid continuation byte)") == decode(
        "a: 1\nb: 2\nc: ca\xe9\n".encode("latin-1")[:-1] + b"\xe9x\n"
    )


def test_decode_accepts_a_byte_order_mark_and_refuses_c0_controls() -> None:
    """A UTF-8 BOM is dropped; a BEL character is refused where it stands."""
    assert "a: 1\n" == decode(b"\xef\xbb\xbfa: 1\n")
    assert Refusal(1, 4, "character U+0007 is not allowed in YAML") == decode(b"a: \x07\n")


def test_a_file_that_vanished_is_gone_but_a_dangling_symlink_is_an_error(tmp_path: Path) -> None:
    """read_spec tells a removed file (no error) from a symlink whose target is missing."""
    assert Outcome.GONE is read_spec(str(tmp_path / "x.yaml"), trusted_uid=None, max_bytes=10)
    link = tmp_path / "l.yaml"
    link.symlink_to(tmp_path / "missing.yaml")
    expected = Unreadable(f"a symlink to {tmp_path / 'missing.yaml'}, which does not exist")
    assert expected == read_spec(str(link), trusted_uid=None, max_bytes=10)


def test_read_spec_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    """A file at the limit is read whole; one byte more is refused by its size."""
    path = tmp_path / "x.yaml"
    path.write_bytes(b"x" * 100)
    got = read_spec(str(path), trusted_uid=None, max_bytes=100)
    assert isinstance(got, Content)
    assert b"x" * 100 == got.data
    refused = read_spec(str(path), trusted_uid=None, max_bytes=99)
    assert isinstance(refused, Unreadable)
    assert refused.message.startswith("file is 100 bytes, over the limit of 99 per spec file")


def test_a_vanished_file_between_listing_and_reading_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file removed after the directory was listed is simply not there: no error, still complete."""
    (tmp_path / "a.yaml").write_text(job("a"))
    loader = SpecLoader([tmp_path])
    real = loader._list

    def listing_then_removal() -> tuple[list[str], list[object]]:
        files, errors = real()
        (tmp_path / "a.yaml").unlink()
        return files, list(errors)

    monkeypatch.setattr(loader, "_list", listing_then_removal)
    desired = loader.load()
    assert ((), True, {}) == (desired.errors, desired.complete, desired.jobs)


def node_with_limits(max_file_size: str, max_documents: int) -> str:
    """A Node that sets both spec limits."""
    return (
        f"{HEADER}kind: Node\nmetadata: {{name: n}}\nspec:\n"
        f"  specLimits: {{maxFileSize: {max_file_size}, maxDocuments: {max_documents}}}\n"
    )


def test_the_node_raises_and_lowers_the_limits(tmp_path: Path) -> None:
    """A file over the default limit loads once the Node raises it, and is refused again once lowered."""
    slot = f"{HEADER}kind: Slot\nmetadata: {{name: s}}\n"
    big = tmp_path / "big.yaml"
    big.write_text(slot + "# " + "x" * (5 * 2**20) + "\n")
    node = tmp_path / "a-node.yaml"
    node.write_text(node_with_limits("8Mi", 10))
    loader = SpecLoader([tmp_path])
    desired = loader.load()
    assert ((), ["s"]) == (desired.errors, sorted(desired.slots))
    node.write_text(node_with_limits("1Mi", 10))
    desired = loader.load()
    assert 1 == len(desired.errors)
    assert "over the limit of 1Mi per spec file" in str(desired.errors[0])
    assert ["s"] == sorted(desired.slots)  # the last good spec stays


def test_errors_of_one_file_are_capped_with_a_summary() -> None:
    """500 bad documents give 20 positioned errors and one line counting the other 480."""
    text = "".join(job(f"b{i}", "  bogus: 1\n") + "---\n" for i in range(500))
    errors = guarded_parse("/f.yaml", text.encode(), 1000).errors
    assert 21 == len(errors)
    assert "/f.yaml:8:3: Job/b0: spec.bogus: Extra inputs are not permitted" == str(errors[0])
    assert errors[-1].message == "... and 480 more errors in this file"


def test_a_parser_bug_is_the_files_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the parser raises (here a RecursionError) becomes that file's error, not the caller's."""

    def broken(path: str, text: str, max_documents: int) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("reconciler.specs.loader.parse_text", broken)
    errors = guarded_parse("/f.yaml", b"a: 1\n", 10).errors
    message = "cannot parse: RecursionError: maximum recursion depth exceeded"
    assert ["/f.yaml:1:1: " + message] == [str(e) for e in errors]


def test_files_past_the_object_budget_are_errors_not_read(tmp_path: Path) -> None:
    """With maxObjects 3, files are read in order until the set holds 3 objects; later ones are errors and keep their last good objects."""
    node = tmp_path / "a-node.yaml"
    node.write_text(
        f"{HEADER}kind: Node\nmetadata: {{name: n}}\nspec:\n  specLimits: {{maxObjects: 3}}\n"
    )
    slot = f"{HEADER}kind: Slot\nmetadata: {{name: s}}\n"
    (tmp_path / "b-slot.yaml").write_text(slot)
    (tmp_path / "c-jobs.yaml").write_text(job("one") + "---\n" + job("two"))
    (tmp_path / "d-job.yaml").write_text(job("three"))
    desired = SpecLoader([tmp_path]).load()
    budget = "the spec set already holds 3 objects (Node spec.specLimits.maxObjects)"
    assert [
        f"{tmp_path / 'c-jobs.yaml'}:1:1: its 2 objects are refused: {budget}",
        f"{tmp_path / 'd-job.yaml'}:1:1: not read: {budget}",
    ] == [str(e) for e in desired.errors]
    assert ([], False) == (sorted(desired.jobs), desired.complete)
