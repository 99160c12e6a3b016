"""SpecLoader on real directories: file selection, caching, last good specs, freezing, cross-object checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.model.desired import Source, SpecError
from reconciler.specs import loader as specs
from reconciler.specs.loader import SpecLoader, is_spec_file
from reconciler.specs.parse import Parsed

HEADER = "apiVersion: wnr.dev/v1alpha1\n"


def slot_text(name: str, cpus: int = 1) -> str:
    """A valid Slot; its `cpus:` value sits on line 7."""
    return f"{HEADER}kind: Slot\nmetadata:\n  name: {name}\nspec:\n  resources:\n    cpus: {cpus}\n"


def job_text(name: str, slot: str) -> str:
    """A valid Job; its `slot:` value sits on line 6, column 9."""
    return (
        f"{HEADER}kind: Job\nmetadata:\n  name: {name}\nspec:\n  slot: {slot}\n"
        "  command: [sleep, '1']\n"
    )


def node_text(name: str) -> str:
    """A valid Node; its `kind:` value sits on line 2, column 7."""
    return f"{HEADER}kind: Node\nmetadata:\n  name: {name}\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def bump_mtime(path: Path) -> None:
    """Change a file's mtime (as `touch` would) without changing its content."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    path = tmp_path / "specs.d"
    path.mkdir()
    return path


def test_several_documents_per_file_with_empty_documents(spec_dir: Path) -> None:
    """Every non-empty document of a file loads, empty documents (`---` runs, comments) are skipped, indices count them."""
    path = write(
        spec_dir / "all.yaml",
        "---\n---\n"
        + slot_text("a")
        + "---\n---\n# only a comment\n---\n"
        + job_text("j", "a")
        + "---\n"
        + slot_text("b")
        + "---\n",
    )
    desired = SpecLoader([spec_dir]).load()
    assert ((), True) == (desired.errors, desired.complete)
    assert (["a", "b"], ["j"]) == (list(desired.slots), list(desired.jobs))
    assert {
        ("Slot", "a"): Source(str(path), 1),
        ("Job", "j"): Source(str(path), 4),
        ("Slot", "b"): Source(str(path), 5),
    } == dict(desired.sources)


def test_error_after_empty_documents_points_into_the_right_document(spec_dir: Path) -> None:
    """A validation error in a document that follows empty ones is located in that document."""
    path = write(
        spec_dir / "s.yaml",
        "---\n---\n" + slot_text("ok") + "---\n" + slot_text("bad").replace("cpus: 1", "cpus: 0"),
    )
    desired = SpecLoader([spec_dir]).load()
    assert [f"{path}:17:11: Slot/bad: spec.resources.cpus"] == [
        ": ".join(str(e).split(": ")[:3]) for e in desired.errors
    ]


def test_empty_file_loads_nothing_and_is_valid(spec_dir: Path) -> None:
    """An empty file (or one with only comments) is valid and contributes no objects."""
    write(spec_dir / "empty.yaml", "")
    write(spec_dir / "comments.yaml", "# nothing here yet\n")
    desired = SpecLoader([spec_dir]).load()
    assert ((), True, {}, {}) == (desired.errors, desired.complete, desired.slots, desired.jobs)


@pytest.mark.parametrize(
    "name",
    [".x.yaml", "#x.yaml#", "x.yaml~", ".x.yaml.swp", ".#x.yaml", "~x.yaml", "x.txt", "x.yaml.bak"],
)
def test_dotfiles_editor_backups_and_other_files_are_ignored(spec_dir: Path, name: str) -> None:
    """Dotfiles, editor lock/backup/swap files and non-YAML names are not loaded, even when they hold a valid object."""
    write(spec_dir / name, slot_text("ignored"))
    write(spec_dir / "real.yaml", slot_text("real"))
    desired = SpecLoader([spec_dir]).load()
    assert ((), ["real"]) == (desired.errors, list(desired.slots))
    assert not is_spec_file(name)


def test_yml_extension_is_accepted(spec_dir: Path) -> None:
    """Files ending in `.yml` are spec files like `.yaml` ones."""
    write(spec_dir / "slot.yml", slot_text("short"))
    desired = SpecLoader([spec_dir]).load()
    assert ((), ["short"]) == (desired.errors, list(desired.slots))


def test_subdirectories_named_like_spec_files_are_errors_that_freeze(spec_dir: Path) -> None:
    """A directory called `x.yaml` inside the spec dir is that path's error (never read into), and freezes deletions."""
    (spec_dir / "x.yaml").mkdir()
    write(spec_dir / "x.yaml" / "inner.yaml", slot_text("inner"))
    desired = SpecLoader([spec_dir]).load()
    message = "not a regular file but a directory: only regular files are read"
    expected = (SpecError(str(spec_dir / "x.yaml"), 1, 1, message),)
    assert (expected, False, {}) == (desired.errors, desired.complete, desired.slots)


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files `parse_text` is called for, in order."""
    calls: list[str] = []
    real = specs.parse_text

    def counting(path: str, text: str, max_documents: int) -> Parsed:
        calls.append(Path(path).name)
        return real(path, text, max_documents)

    monkeypatch.setattr(specs, "parse_text", counting)
    return calls


def test_unchanged_files_are_not_parsed_again(spec_dir: Path, parse_calls: list[str]) -> None:
    """A second load with no file changed parses nothing and returns the same objects."""
    write(spec_dir / "a.yaml", slot_text("a"))
    write(spec_dir / "b.yaml", slot_text("b"))
    loader = SpecLoader([spec_dir])
    first = loader.load()
    assert ["a.yaml", "b.yaml"] == parse_calls
    second = loader.load()
    assert ["a.yaml", "b.yaml"] == parse_calls
    assert first.slots == second.slots


def test_told_unchanged_the_loader_does_not_look_until_told_otherwise(spec_dir: Path) -> None:
    """load(unchanged=True) returns the last desired state without reading; a plain load sees the edit."""
    write(spec_dir / "a.yaml", slot_text("a"))
    loader = SpecLoader([spec_dir])
    first = loader.load(unchanged=True)  # nothing loaded yet: it must look
    assert ["a"] == sorted(first.slots)
    write(spec_dir / "b.yaml", slot_text("b"))
    assert first is loader.load(unchanged=True)
    assert ["a", "b"] == sorted(loader.load().slots)


def test_an_unreadable_file_or_directory_is_looked_at_again_even_when_told_unchanged(
    tmp_path: Path,
) -> None:
    """After a load that met a dangling symlink or a missing directory, unchanged=True still reads."""
    specs, missing = tmp_path / "specs", tmp_path / "missing"
    specs.mkdir()
    (specs / "a.yaml").symlink_to(tmp_path / "target.yaml")
    loader = SpecLoader([specs, missing])
    assert not loader.load().complete
    write(tmp_path / "target.yaml", slot_text("a"))
    missing.mkdir()
    loaded = loader.load(unchanged=True)
    assert (["a"], True) == (sorted(loaded.slots), loaded.complete)
    write(specs / "b.yaml", slot_text("b"))
    assert loaded is loader.load(unchanged=True)


def test_touched_file_is_parsed_again_and_only_it(spec_dir: Path, parse_calls: list[str]) -> None:
    """A file whose mtime changed is parsed again on the next load; the others are not."""
    a = write(spec_dir / "a.yaml", slot_text("a"))
    write(spec_dir / "b.yaml", slot_text("b"))
    loader = SpecLoader([spec_dir])
    loader.load()
    bump_mtime(a)
    loader.load()
    assert ["a.yaml", "b.yaml", "a.yaml"] == parse_calls


def test_edited_file_is_parsed_again_and_its_new_spec_used(
    spec_dir: Path, parse_calls: list[str]
) -> None:
    """An edited file (new content) is parsed again and the new spec replaces the old one."""
    a = write(spec_dir / "a.yaml", slot_text("a", cpus=1))
    write(spec_dir / "b.yaml", slot_text("b"))
    loader = SpecLoader([spec_dir])
    loader.load()
    write(a, slot_text("a", cpus=12))
    bump_mtime(a)
    desired = loader.load()
    assert ["a.yaml", "b.yaml", "a.yaml"] == parse_calls
    assert 12_000 == desired.slots["a"].spec.resources.cpus


def test_file_replaced_by_rename_is_parsed_again(spec_dir: Path, parse_calls: list[str]) -> None:
    """A file atomically replaced (write elsewhere, rename over it) is parsed again even with the same size."""
    a = write(spec_dir / "a.yaml", slot_text("a", cpus=1))
    loader = SpecLoader([spec_dir])
    loader.load()
    st = a.stat()
    replacement = write(spec_dir / ".a.yaml.tmp", slot_text("a", cpus=3))
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    replacement.rename(a)
    desired = loader.load()
    assert ["a.yaml", "a.yaml"] == parse_calls
    assert 3000 == desired.slots["a"].spec.resources.cpus


def test_file_turning_invalid_keeps_its_last_good_objects(spec_dir: Path) -> None:
    """A file that becomes invalid keeps its previous objects, reports its error, and the state stays complete."""
    a = write(spec_dir / "a.yaml", slot_text("a", cpus=2))
    loader = SpecLoader([spec_dir])
    before = loader.load()
    write(a, slot_text("a", cpus=2).replace("cpus: 2", "cpus: lots"))
    bump_mtime(a)
    after = loader.load()
    assert (True, before.slots) == (after.complete, after.slots)
    assert 2000 == after.slots["a"].spec.resources.cpus
    assert [f"{a}:7:11: Slot/a: spec.resources.cpus: invalid quantity 'lots'"] == [
        str(e).split(": expected")[0] for e in after.errors
    ]


def test_file_invalid_again_after_being_fixed_uses_the_newest_good_version(spec_dir: Path) -> None:
    """The last good version is the most recent valid one, not the first."""
    a = write(spec_dir / "a.yaml", slot_text("a", cpus=1))
    loader = SpecLoader([spec_dir])
    loader.load()
    write(a, slot_text("a", cpus=5))
    bump_mtime(a)
    loader.load()
    write(a, "kind: [\n")
    bump_mtime(a)
    desired = loader.load()
    assert (True, 5000, 1) == (
        desired.complete,
        desired.slots["a"].spec.resources.cpus,
        len(desired.errors),
    )


def test_file_invalid_from_the_start_makes_the_state_incomplete(spec_dir: Path) -> None:
    """A file never seen valid makes `complete` False (its objects are unknown) until it is fixed."""
    write(spec_dir / "a.yaml", slot_text("a"))
    b = write(spec_dir / "b.yaml", "kind: Slot\nmetadata: [\n")
    loader = SpecLoader([spec_dir])
    desired = loader.load()
    assert (False, ["a"], 1) == (desired.complete, list(desired.slots), len(desired.errors))
    write(b, slot_text("b"))
    bump_mtime(b)
    desired = loader.load()
    assert (True, ["a", "b"], ()) == (desired.complete, list(desired.slots), desired.errors)


def test_deleted_file_removes_its_objects(spec_dir: Path) -> None:
    """Deleting a file removes its objects and leaves the state complete."""
    write(spec_dir / "a.yaml", slot_text("a"))
    b = write(spec_dir / "b.yaml", slot_text("b") + "---\n" + job_text("j", "b"))
    loader = SpecLoader([spec_dir])
    assert (["a", "b"], ["j"]) == (list(loader.load().slots), list(loader.load().jobs))
    b.unlink()
    desired = loader.load()
    assert (True, (), ["a"], []) == (
        desired.complete,
        desired.errors,
        list(desired.slots),
        list(desired.jobs),
    )


def test_deleted_invalid_file_removes_its_last_good_objects(spec_dir: Path) -> None:
    """A file that turned invalid and is then deleted takes its last good objects with it."""
    a = write(spec_dir / "a.yaml", slot_text("a"))
    loader = SpecLoader([spec_dir])
    loader.load()
    write(a, "kind: [\n")
    bump_mtime(a)
    assert ["a"] == list(loader.load().slots)
    a.unlink()
    desired = loader.load()
    assert (True, (), {}) == (desired.complete, desired.errors, desired.slots)


def test_vanished_spec_directory_freezes_the_previous_objects(tmp_path: Path) -> None:
    """A spec directory that disappears keeps the previous objects with `complete` False and an error naming it."""
    spec_dir = tmp_path / "specs.d"
    spec_dir.mkdir()
    write(spec_dir / "a.yaml", slot_text("a") + "---\n" + job_text("j", "a"))
    loader = SpecLoader([spec_dir])
    before = loader.load()
    spec_dir.rename(tmp_path / "elsewhere")
    desired = loader.load()
    assert (False, before.slots, before.jobs) == (desired.complete, desired.slots, desired.jobs)
    assert [f"{spec_dir}:1:1: cannot read: No such file or directory"] == [
        str(e) for e in desired.errors
    ]
    (tmp_path / "elsewhere").rename(spec_dir)
    desired = loader.load()
    assert (True, (), before.slots) == (desired.complete, desired.errors, desired.slots)


def test_removed_spec_directory_stays_frozen_across_passes(tmp_path: Path) -> None:
    """A spec directory that is removed stays frozen across several passes, never emptied."""
    spec_dir = tmp_path / "specs.d"
    spec_dir.mkdir()
    a = write(spec_dir / "a.yaml", slot_text("a"))
    loader = SpecLoader([spec_dir])
    before = loader.load()
    a.unlink()
    spec_dir.rmdir()
    for _ in range(3):
        desired = loader.load()
        assert (False, before.slots) == (desired.complete, desired.slots)


def test_missing_spec_directory_on_the_first_load_is_empty_and_incomplete(tmp_path: Path) -> None:
    """With no previous state, a missing directory yields no objects and `complete` False."""
    desired = SpecLoader([tmp_path / "absent"]).load()
    assert (False, {}, None, 1) == (
        desired.complete,
        desired.slots,
        desired.node,
        len(desired.errors),
    )


def test_two_nodes_are_an_error_and_the_first_is_kept(spec_dir: Path) -> None:
    """A second Node (another name) is an error at its `kind`; the Node from the first file stays."""
    write(spec_dir / "a.yaml", node_text("one"))
    b = write(spec_dir / "b.yaml", node_text("two"))
    desired = SpecLoader([spec_dir]).load()
    assert "one" == (desired.node.metadata.name if desired.node else None)
    assert [
        f"{b}:2:7: Node/two: kind: at most one Node may exist; Node/one is already defined"
    ] == [str(e) for e in desired.errors]


def test_same_node_twice_is_a_duplicate_in_both_places(spec_dir: Path) -> None:
    """The same Node name in two files is reported once in each file, at metadata.name."""
    a = write(spec_dir / "a.yaml", node_text("n"))
    b = write(spec_dir / "b.yaml", node_text("n"))
    desired = SpecLoader([spec_dir]).load()
    assert sorted(
        [
            f"{a}:4:9: Node/n: metadata.name: duplicate Node name 'n' (also defined in {b})",
            f"{b}:4:9: Node/n: metadata.name: duplicate Node name 'n' (also defined in {a})",
        ]
    ) == sorted(str(e) for e in desired.errors)


def test_duplicate_slot_in_the_same_file_is_reported_in_both_documents(spec_dir: Path) -> None:
    """The same Slot twice in one file gives one line per document, each at its metadata.name."""
    path = write(spec_dir / "a.yaml", slot_text("s") + "---\n" + slot_text("s"))
    desired = SpecLoader([spec_dir]).load()
    assert sorted(
        [
            f"{path}:4:9: Slot/s: metadata.name: duplicate Slot name 's' (also defined in {path})",
            f"{path}:12:9: Slot/s: metadata.name: duplicate Slot name 's' (also defined in {path})",
        ]
    ) == sorted(str(e) for e in desired.errors)


def test_job_naming_a_missing_slot_is_located_at_spec_slot(spec_dir: Path) -> None:
    """A Job whose slot no file defines is an error at the `spec.slot` value."""
    write(spec_dir / "a.yaml", slot_text("present"))
    path = write(
        spec_dir / "j.yaml", job_text("ok", "present") + "---\n" + job_text("lost", "gone")
    )
    desired = SpecLoader([spec_dir]).load()
    assert [f"{path}:14:9: Job/lost: spec.slot: Slot 'gone' does not exist"] == [
        str(e) for e in desired.errors
    ]


def test_errors_are_formatted_as_path_line_col_kind_name_field_message(spec_dir: Path) -> None:
    """A validation error prints exactly `path:line:col: Kind/name: field: message`."""
    path = write(
        spec_dir / "a.yaml",
        f"{HEADER}kind: Slot\nmetadata:\n  name: a\nspec:\n  resources:\n    pids: lots\n",
    )
    desired = SpecLoader([spec_dir]).load()
    assert [
        f"{path}:7:11: Slot/a: spec.resources.pids: Input should be a valid integer, unable to parse string as an integer"
    ] == [str(e) for e in desired.errors]


def test_unknown_field_error_points_at_the_key(spec_dir: Path) -> None:
    """An unknown field is reported at its key, with the full dotted field path."""
    path = write(spec_dir / "a.yaml", slot_text("a") + "    bogus: 1\n")
    desired = SpecLoader([spec_dir]).load()
    assert [f"{path}:8:5: Slot/a: spec.resources.bogus: Extra inputs are not permitted"] == [
        str(e) for e in desired.errors
    ]


def test_spec_error_string_format() -> None:
    """SpecError renders its parts joined by ': ', leaving out kind/name and field when absent."""
    assert "f.yaml:3:7: Slot/a: spec.x: bad" == str(
        SpecError("f.yaml", 3, 7, "bad", "Slot", "a", "spec.x")
    )
    assert "f.yaml:1:1: bad" == str(SpecError("f.yaml", 1, 1, "bad"))


def test_reversed_cpuset_range_is_a_validation_error(spec_dir: Path) -> None:
    """A Slot `cpuset: 3-1` (a range the kernel refuses) is rejected when loading, at spec.cpuset."""
    path = write(spec_dir / "a.yaml", slot_text("a") + '  cpuset: "3-1"\n')
    desired = SpecLoader([spec_dir]).load()
    assert [f"{path}:8:11: Slot/a: spec.cpuset"] == [
        ": ".join(str(e).split(": ")[:3]) for e in desired.errors
    ]


def test_cross_object_error_in_a_file_that_turned_invalid_does_not_crash(spec_dir: Path) -> None:
    """A Job kept from its file's last good version whose Slot disappears is reported, even though that file now has a YAML syntax error."""
    jobs = write(spec_dir / "jobs.yaml", job_text("j", "main"))
    slots = write(spec_dir / "slots.yaml", slot_text("main"))
    loader = SpecLoader([spec_dir])
    assert () == loader.load().errors
    write(jobs, job_text("j", "main") + "  env: [\n")
    bump_mtime(jobs)
    slots.unlink()
    desired = loader.load()
    assert (True, ["j"]) == (desired.complete, list(desired.jobs))
    assert [f"{jobs}: Job/j: spec.slot: Slot 'main' does not exist"] == [
        f"{e.path}: {e.kind}/{e.name}: {e.field}: {e.message}"
        for e in desired.errors
        if e.field == "spec.slot"
    ]


def test_duplicate_added_later_does_not_replace_the_existing_object(spec_dir: Path) -> None:
    """A new file redefining an existing Slot is an error and the Slot keeps the spec it had, even when the new file sorts first."""
    write(spec_dir / "b.yaml", slot_text("s", cpus=2))
    loader = SpecLoader([spec_dir])
    assert 2000 == loader.load().slots["s"].spec.resources.cpus
    write(spec_dir / "a.yaml", slot_text("s", cpus=1))
    desired = loader.load()
    assert 2 == len(desired.errors)
    assert (2000, str(spec_dir / "b.yaml")) == (
        desired.slots["s"].spec.resources.cpus,
        desired.sources[("Slot", "s")].path,
    )
