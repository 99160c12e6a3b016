"""`wnr apply -f` and `wnr delete` (reconciler/specs/writer.py): files written into the spec
directory atomically and checked by the real loader, documents cut out byte for byte, and a
running daemon that picks the changes up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.model.desired import Source
from reconciler.specs.deletion import delete_object
from reconciler.specs.documents import without_document
from reconciler.specs.loader import SpecLoader
from reconciler.specs.writer import SpecWriteError, apply_file
from tests.conftest import wait_for
from tests.helpers import REPO, DaemonProcess, common, procs, record, wnr

HEAD = "apiVersion: wnr.dev/v1alpha1\n"
SLOT = HEAD + "kind: Slot\nmetadata: {name: s}\nspec: {terminationGracePeriodSeconds: 1}\n"


def job(name: str, command: str = '[sleep, "60"]') -> str:
    """One Job document in slot s, without a `---`."""
    return HEAD + f"kind: Job\nmetadata: {{name: {name}}}\nspec: {{slot: s, command: {command}}}\n"


# Three jobs after a file header, with comments between documents, an end marker and a
# block scalar whose lines start with `#`; a document's part takes the comments above it.
HEADER = "# header of the file\n\n"
PART_A = "# about a\n---\n" + job("a") + "# after a, before a blank line\n\n"
PART_B = "# about b\n---\n" + job("b", "[sh, -c, 'true']") + "...\n"
PART_C = (
    "---\n" + HEAD + "kind: Job\nmetadata: {name: c}\nspec:\n  slot: s\n"
    "  command:\n  - sh\n  - -c\n  - |\n    # not a comment\n    sleep 60\n"
)
TRICKY = HEADER + PART_A + PART_B + PART_C


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """An empty spec directory, writable only by its owner."""
    path = tmp_path / "specs"
    path.mkdir(mode=0o755)
    return path


@pytest.fixture
def umask_077() -> Iterator[None]:
    """A umask that would make new files 0600, restored afterwards."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def listing(directory: Path) -> list[str]:
    """Every entry of a directory, dotfiles included."""
    return sorted(os.listdir(directory))


@pytest.mark.parametrize(
    ("text", "index", "expected"),
    [
        ("a: 1\n", 0, ""),
        ("---\na: 1\n---\nb: 2\n", 0, "---\nb: 2\n"),
        ("---\na: 1\n---\nb: 2\n", 1, "---\na: 1\n"),
        ("a: 1\n...\n---\nb: 2\n", 0, "---\nb: 2\n"),
        ("a: 1\n# on b\n---\nb: 2\n", 1, "a: 1\n"),
        ("a: 1\n# after a\n\n# on b\n---\nb: 2\n", 0, "# on b\n---\nb: 2\n"),
        ("a: 1\r\n# on b\r\n---\r\nb: 2\r\n", 0, "# on b\r\n---\r\nb: 2\r\n"),
        ("x: |\n  # in x\n---\nb: 2\n", 1, "x: |\n  # in x\n"),
    ],
)
def test_without_document_cuts_exactly_one_document(text: str, index: int, expected: str) -> None:
    """A document goes with its `---`, its `...` and the comments directly above it; every other byte stays."""
    assert expected == without_document(text, index)


@st.composite
def document_parts(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A file header and documents, each with the comments above it, an optional `...` and
    trailing comments set off by a blank line, block scalars with `#` lines among them."""
    header = draw(st.sampled_from(["", "# header\n\n", "\n"]))
    parts = []
    for index in range(draw(st.integers(1, 4))):
        above = draw(st.sampled_from(["", "# above\n", "# one\n# two\n"]))
        start = "---\n" if index > 0 or draw(st.booleans()) else ""
        body = draw(
            st.sampled_from([f"d{index}: 1\n", f"d{index}: |\n  # text\n", f"d{index}: [\n 1]\n"])
        )
        end = draw(st.sampled_from(["", "...\n"]))
        after = draw(st.sampled_from(["", "# after\n\n", "\n"]))
        parts.append(above + start + body + end + after)
    return header, parts


@settings(max_examples=200, deadline=None)
@given(document_parts(), st.data())
def test_without_document_cuts_any_document_of_generated_files(
    file: tuple[str, list[str]], data: st.DataObject
) -> None:
    """Whichever document goes, the text left is the header and the other documents' parts, and it parses into them."""
    header, parts = file
    index = data.draw(st.integers(0, len(parts) - 1))
    remaining = without_document(header + "".join(parts), index)
    assert header + "".join(part for i, part in enumerate(parts) if i != index) == remaining
    names = [f"d{i}" for i in range(len(parts)) if i != index]
    loaded = [doc for doc in YAML(typ="safe", pure=False).load_all(remaining) if doc is not None]
    assert names == [next(iter(doc)) for doc in loaded]


def test_without_document_keeps_the_file_header_and_the_other_documents() -> None:
    """Cutting the first, middle or last of three documents leaves the header and the others as written."""
    assert HEADER + PART_B + PART_C == without_document(TRICKY, 0)
    assert HEADER + PART_A + PART_C == without_document(TRICKY, 1)
    assert HEADER + PART_A + PART_B == without_document(TRICKY, 2)


def test_delete_cuts_a_document_out_of_a_multi_document_file(specs: Path) -> None:
    """Deleting job b rewrites the file without it; jobs a and c keep their text and document order."""
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "jobs.yaml").write_text(TRICKY)
    deleted = delete_object(specs, "job", "b")
    assert ("job/b deleted", False) == (str(deleted), deleted.file_removed)
    assert without_document(TRICKY, 1) == (specs / "jobs.yaml").read_text()
    desired = SpecLoader([specs], trusted_uid=os.geteuid()).load()
    assert ((), ["a", "c"]) == (desired.errors, sorted(desired.jobs))
    assert Source(f"{specs}/jobs.yaml", 1) == desired.sources[("Job", "c")]
    assert ["jobs.yaml", "slot.yaml"] == listing(specs)


def test_delete_removes_a_file_that_held_only_that_object(specs: Path) -> None:
    """A file whose only object is deleted is unlinked, not left empty."""
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "job-a.yaml").write_text("# only a\n---\n" + job("a") + "---\n")
    assert delete_object(specs, "job", "a").file_removed
    assert ["slot.yaml"] == listing(specs)


def test_delete_of_an_unknown_name_lists_the_known_ones(specs: Path) -> None:
    """`wnr delete job nope` exits 1 naming the jobs that exist, and changes nothing."""
    (specs / "all.yaml").write_text(SLOT + "---\n" + job("a") + "---\n" + job("b"))
    result = wnr("delete", "job", "nope", "--specs", specs)
    assert 1 == result.returncode
    assert f"wnr: error: no Job named 'nope' in {specs}; known jobs: a, b\n" == result.stderr
    assert SLOT + "---\n" + job("a") + "---\n" + job("b") == (specs / "all.yaml").read_text()


def test_delete_refuses_a_file_that_does_not_parse(specs: Path) -> None:
    """A file that fails to parse is not edited: the error names the file and its problem."""
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "jobs.yaml").write_text(job("a") + "---\n" + job("b"))
    loader = SpecLoader([specs], trusted_uid=os.geteuid())
    assert "a" in loader.load().jobs
    broken = job("a") + "---\n" + job("b").replace("slot: s", "slot: s, bogus: 1")
    (specs / "jobs.yaml").write_text(broken)
    with pytest.raises(SpecWriteError) as caught:
        delete_object(specs, "job", "a")
    assert str(caught.value).startswith("no Job named 'a'")
    assert f"\n{specs}/jobs.yaml:9:17: Job/b: spec.bogus: Extra inputs" in str(caught.value)
    assert broken == (specs / "jobs.yaml").read_text()


def test_deleting_a_slot_with_jobs_warns_and_names_them(specs: Path) -> None:
    """A slot whose jobs remain is deleted (it drains), with a warning naming those jobs."""
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "jobs.yaml").write_text(job("a") + "---\n" + job("b"))
    result = wnr("delete", "slot", "s", "--specs", specs)
    assert (0, "slot/s deleted\n") == (result.returncode, result.stdout)
    assert "wnr: warning: slot/s drains, but job/a, job/b still name it" in result.stderr
    assert ["jobs.yaml"] == listing(specs)


def test_apply_reports_created_configured_unchanged(specs: Path) -> None:
    """Applying a file prints each object's outcome against what the spec dir held before."""
    assert ["slot/s created"] == [
        str(o) for o in apply_file(specs, SLOT, "slot.yaml", "slot.yaml").objects
    ]
    text = job("a") + "---\n" + job("b")
    assert ["job/a created", "job/b created"] == [
        str(o) for o in apply_file(specs, text, "jobs.yaml", "jobs.yaml").objects
    ]
    changed = job("a") + "---\n" + job("b", '[sleep, "61"]')
    assert ["job/a unchanged", "job/b configured"] == [
        str(o) for o in apply_file(specs, changed, "in/jobs.yaml", "jobs.yaml").objects
    ]
    assert changed == (specs / "jobs.yaml").read_text()
    assert ["jobs.yaml", "slot.yaml"] == listing(specs)


def test_replacing_a_file_reports_the_objects_it_no_longer_has(specs: Path) -> None:
    """Re-applying a file without one of its jobs says that job is deleted (the daemon stops it)."""
    (specs / "slot.yaml").write_text(SLOT)
    apply_file(specs, job("a") + "---\n" + job("b"), "jobs.yaml", "jobs.yaml")
    applied = apply_file(specs, job("b"), "jobs.yaml", "jobs.yaml")
    assert ["job/b unchanged", "job/a deleted"] == [str(o) for o in applied.objects]
    assert job("b") == (specs / "jobs.yaml").read_text()


def test_a_symlinked_spec_file_is_not_replaced(specs: Path, tmp_path: Path) -> None:
    """A spec file that is a symlink is neither replaced by apply nor rewritten by delete."""
    checkout = tmp_path / "checkout.yaml"
    checkout.write_text(job("a") + "---\n" + job("b"))
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "jobs.yaml").symlink_to(checkout)
    with pytest.raises(SpecWriteError, match=f"jobs.yaml is a symlink to {checkout}: edit that"):
        apply_file(specs, job("a"), "jobs.yaml", "jobs.yaml")
    with pytest.raises(SpecWriteError, match=f"jobs.yaml is a symlink to {checkout}: edit that"):
        delete_object(specs, "job", "a")
    assert (specs / "jobs.yaml").is_symlink()
    assert job("a") + "---\n" + job("b") == checkout.read_text()


def test_deleting_one_copy_of_a_duplicate_warns_about_the_other(specs: Path) -> None:
    """A job defined in two files (an error) is deleted from one, with a warning naming the other."""
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "a1.yaml").write_text(job("a"))
    (specs / "a2.yaml").write_text(job("a"))
    deleted = delete_object(specs, "job", "a")
    assert [f"job/a is still defined in {specs}/a2.yaml"] == deleted.warnings
    assert ["a2.yaml", "slot.yaml"] == listing(specs)


def test_apply_refuses_a_name_another_file_defines(specs: Path) -> None:
    """An object that lives in another file is refused, naming both files; nothing is written."""
    (specs / "slot.yaml").write_text(SLOT)
    (specs / "jobs.yaml").write_text(job("a"))
    with pytest.raises(SpecWriteError) as caught:
        apply_file(specs, job("a"), "new/more.yaml", "more.yaml")
    expected = f"new/more.yaml: Job/a (document 1) is already defined in {specs}/jobs.yaml"
    assert str(caught.value).startswith(expected)
    assert ["jobs.yaml", "slot.yaml"] == listing(specs)


def test_a_broken_input_is_refused_at_its_line_and_writes_nothing(specs: Path) -> None:
    """Invalid YAML from stdin exits 1 with `<stdin>:line:col`, and leaves no file, not even a temp."""
    (specs / "slot.yaml").write_text(SLOT)
    bad = job("a").replace("slot: s", "slot: s, bogus: many")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "-f", "-", "--specs", str(specs)],
        input=bad,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert 1 == result.returncode
    assert result.stderr.startswith("wnr: error: <stdin>:4:"), result.stderr
    assert "Job/a: spec.bogus: Extra inputs are not permitted" in result.stderr
    assert ["slot.yaml"] == listing(specs)


def test_a_job_naming_a_missing_slot_is_refused(specs: Path) -> None:
    """The assembled spec set is checked: a Job whose Slot does not exist is the input's error."""
    with pytest.raises(SpecWriteError, match=r"^job\.yaml:4:14: Job/a: spec\.slot: Slot 's' does"):
        apply_file(specs, job("a"), "job.yaml", "job.yaml")
    assert [] == listing(specs)


def test_errors_in_other_files_are_warnings_and_the_file_is_written(specs: Path) -> None:
    """A broken file the input does not touch is reported, and the input still lands."""
    (specs / "broken.yaml").write_text("kind: [\n")
    applied = apply_file(specs, SLOT, "<stdin>")
    assert Path(f"{specs}/slot-s.yaml") == applied.path
    assert [f"{specs}/broken.yaml:2:1"] == [w.split(": ")[0] for w in applied.warnings]
    assert SLOT == (specs / "slot-s.yaml").read_text()


def test_a_target_must_be_named_like_a_spec_file(specs: Path) -> None:
    """A target without .yaml/.yml, or one the loader skips, is refused before anything is written."""
    for name in ("slot.json", ".slot.yaml"):
        with pytest.raises(SpecWriteError, match=name.replace(".", r"\.")):
            apply_file(specs, SLOT, name, name)
    assert [] == listing(specs)


@pytest.mark.usefixtures("umask_077")
def test_written_files_are_0644_owned_like_the_directory_and_trusted(specs: Path) -> None:
    """Root writes mode 0644 whatever its umask, owned by the directory's owner, whose loader trusts it."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it gives the spec dir to another user)")
    os.chown(specs, 65534, 65534)
    apply_file(specs, SLOT, "slot.yaml", "slot.yaml")
    apply_file(specs, job("a") + "---\n" + job("b"), "jobs.yaml", "jobs.yaml")
    delete_object(specs, "job", "a")
    for name in ("slot.yaml", "jobs.yaml"):
        st = (specs / name).stat()
        assert (0o100644, 65534, 65534) == (st.st_mode, st.st_uid, st.st_gid)
    desired = SpecLoader([specs], trusted_uid=65534).load()
    assert ((), ["s"], ["b"]) == (desired.errors, sorted(desired.slots), sorted(desired.jobs))


def test_a_spec_dir_others_can_write_is_refused(specs: Path) -> None:
    """A spec dir that group or others can write, which the daemon refuses whole, is refused: nothing is written."""
    os.chmod(specs, 0o777)  # noqa: S103 - the point: a directory anyone can write
    with pytest.raises(SpecWriteError, match="refusing spec directory"):
        delete_object(specs, "job", "a")
    with pytest.raises(SpecWriteError, match="refusing spec directory: writable by group"):
        apply_file(specs, SLOT, "slot.yaml", "slot.yaml")
    assert [] == listing(specs)


def test_a_missing_spec_directory_is_a_clear_error(tmp_path: Path) -> None:
    """Both commands name a spec directory that does not exist, with or without trust checks."""
    (tmp_path / "slot.yaml").write_text(SLOT)
    missing = tmp_path / "nowhere"
    expected = f"wnr: error: cannot read spec directory {missing}: No such file or directory\n"
    for args in (["apply", "-f", tmp_path / "slot.yaml"], ["delete", "slot", "s"]):
        result = wnr(*args, "--specs", missing, "--allow-untrusted-specs")
        assert (1, expected) == (result.returncode, result.stderr)


def run_stdin(text: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`wnr apply -f -` with `text` on stdin."""
    argv = [sys.executable, "-m", "reconciler", "apply", "-f", "-", *map(str, args)]
    return subprocess.run(
        argv, input=text, capture_output=True, text=True, cwd=REPO, check=False, timeout=60
    )


def test_a_daemon_runs_what_apply_f_wrote(
    daemon: DaemonProcess, cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """A slot and a job applied from files, and a job from stdin, run to Succeeded under a running daemon."""
    specs = tmp_path / "specs"
    flags = common(specs, cgroup_root, state_dir)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "slot.yaml").write_text(SLOT)
    (inputs / "job.yaml").write_text(job("filed", "[sh, -c, 'exit 0']"))
    daemon.start()
    assert "slot/s created\n" == wnr("apply", "-f", inputs / "slot.yaml", *flags, check=0).stdout
    assert "job/filed created\n" == wnr("apply", "-f", inputs / "job.yaml", *flags, check=0).stdout
    piped = run_stdin(job("piped", "[sh, -c, 'exit 0']"), *flags)
    assert (0, "job/piped created\n") == (piped.returncode, piped.stdout), piped.stderr
    for name in ("filed", "piped"):
        wait_for(lambda name=name: record(state_dir, name).get("phase") == "exited", timeout=30)
        assert 0 == record(state_dir, name)["exitCode"]
    assert ["job-piped.yaml", "job.yaml", "slot.yaml"] == listing(specs)
    assert 0 == daemon.terminate()


def test_delete_stops_one_job_and_leaves_the_others_running(
    daemon: DaemonProcess, cgroup_root: Path, state_dir: Path, tmp_path: Path
) -> None:
    """Deleting one job of a multi-document file stops it; the other documents and their jobs stay, and a broken apply touches nothing."""
    specs = tmp_path / "specs"
    flags = common(specs, cgroup_root, state_dir)
    (specs / "slot.yaml").write_text(SLOT)
    text = "# pilot jobs\n\n---\n" + job("one") + "# the second\n---\n" + job("two")
    (specs / "jobs.yaml").write_text(text)
    daemon.start()
    one, two = cgroup_root / "slot.s" / "job.one", cgroup_root / "slot.s" / "job.two"
    wait_for(lambda: len(procs(one)) >= 2 and len(procs(two)) >= 2, timeout=30)
    running = procs(two)
    assert "job/one deleted\n" == wnr("delete", "job", "one", *flags, check=0).stdout
    assert "# pilot jobs\n\n# the second\n---\n" + job("two") == (specs / "jobs.yaml").read_text()
    wait_for(lambda: not one.exists(), timeout=30)
    wait_for(lambda: not (state_dir / "jobs" / "one").exists())  # its records end with it
    empty = run_stdin("", *flags)
    assert (1, "wnr: error: <stdin>: no objects to apply (every document is empty)\n") == (
        empty.returncode,
        empty.stderr,
    )
    bad = run_stdin(job("two", "[sleep, 60]"), *flags)
    assert (1, "") == (bad.returncode, bad.stdout)
    assert "<stdin>:4:" in bad.stderr
    assert ["jobs.yaml", "slot.yaml"] == listing(specs)
    assert running == procs(two)
    assert "running" == record(state_dir, "two").get("phase")
    assert 0 == daemon.terminate()
