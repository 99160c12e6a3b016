"""A corpus of hostile and careless spec files, one per class that once killed the daemon.

Each case is a file name, its bytes, and the start of the error line that both
the daemon and `wnr validate` must report for it (`file:line:col: ...`). Used
by tests/test_hostile_specs.py (a running daemon) and tests/test_spec_bounds.py.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "apiVersion: wnr.dev/v1alpha1\n"


def job(name: str, extra: str = "", command: str = "[sleep, '1']") -> str:
    """A Job in slot `s`; `extra` lines go under `spec:` (indented two spaces); line 8 is the
    first extra line."""
    return (
        f"{HEADER}kind: Job\nmetadata:\n  name: {name}\nspec:\n  slot: s\n"
        f"  command: {command}\n{extra}"
    )


@dataclass(frozen=True)
class Case:
    """One hostile file and the error it must get."""

    name: str
    data: bytes
    # The error line after the file's path: "line:col: message..." (a prefix of it).
    error: str


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def cases() -> list[Case]:
    """Every class of the reliability issue's corpus."""
    big = "1" + "0" * 309
    return [
        Case(
            "deep-flow",
            ("a: " + "[" * 1_000_000 + "]" * 1_000_000 + "\n").encode(),
            "1:67: nested more than 64 levels deep",
        ),
        Case(
            "deep-block",
            ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 80))).encode(),
            "65:129: nested more than 64 levels deep",
        ),
        Case(
            "alias-bomb-kind",
            (_bomb(9) + HEADER + "kind: *a8\nmetadata: {name: x}\n").encode(),
            "6:10: aliases expand the file past 100000 nodes",
        ),
        Case(
            "alias-bomb-name",
            (_bomb(9) + HEADER + "kind: Job\nmetadata: {name: *a8}\n").encode(),
            "6:10: aliases expand the file past 100000 nodes",
        ),
        Case("alias-self", b"a: &a [1, *a]\n", "1:11: alias *a refers to a node that contains it"),
        Case(
            "int-10e309",
            job("big", f"  activeDeadlineSeconds: {big}\n").encode(),
            "8:26: Job/big: spec.activeDeadlineSeconds: an integer of 310 characters is too large",
        ),
        Case(
            "int-5000-digits",
            job("digits", "  maxStartAttempts: 1" + "0" * 5000 + "\n").encode(),
            "8:21: Job/digits: spec.maxStartAttempts: an integer of 5001 characters",
        ),
        Case(
            "int-64-bits",
            job("wide", f"  resources: {{pids: {2**64}}}\n").encode(),
            "8:21: Job/wide: spec.resources.pids: Input should be less than or equal to 4194304",
        ),
        Case(
            "quantity-10e400",
            job("q", f"  resources: {{memory: '1{'0' * 400}'}}\n").encode(),
            "8:23: Job/q: spec.resources.memory: byte quantity '10000000000000000000000000000... "
            "(403 characters) is over the kernel's maximum (8Ei)",
        ),
        Case(
            "window-10e309",
            job("w", f"  idle: {{windowSeconds: {big}}}\n").encode(),
            "8:25: Job/w: spec.idle.windowSeconds: an integer of 310 characters is too large",
        ),
        Case(
            "grace-huge",
            (
                HEADER + "kind: Slot\nmetadata: {name: g}\nspec:\n"
                f"  terminationGracePeriodSeconds: {2**40}\n"
            ).encode(),
            "5:34: Slot/g: spec.terminationGracePeriodSeconds: Input should be less than or equal to 4294967296",
        ),
        Case(
            "inf-quantity",
            job("inf", "  resources: {cpus: .inf}\n").encode(),
            "8:21: Job/inf: spec.resources.cpus: a CPU quantity must be a finite number, got inf",
        ),
        Case(
            "nan-interval",
            (
                HEADER + "kind: Node\nmetadata: {name: n}\nspec:\n"
                "  policies: {userSpace: {intervalSeconds: .nan}}\n"
            ).encode(),
            "5:43: Node/n: spec.policies.userSpace.intervalSeconds: Input should be a finite number",
        ),
        Case(
            "impossible-date",
            (HEADER + "kind: Slot\nmetadata: {name: d}\nspec:\n  deadline: 2030-02-30\n").encode(),
            "5:13: Slot/d: spec.deadline: invalid date or time '2030-02-30'",
        ),
        Case(
            "tab-and-error",
            job("tab", "  env: {A: x\ty}\n  bogus: 1\n").encode(),
            "9:3: Job/tab: spec.bogus: Extra inputs are not permitted",
        ),
        Case(
            "bool-key",
            job("boolkey", "  !!bool true: 1\n").encode(),
            "6:3: Job/boolkey: spec: Keys should be strings",
        ),
        Case(
            "nul-in-arg",
            job("nularg", command='[sleep, "1\\0"]').encode(),
            "7:20: Job/nularg: spec.command[1]: must not contain a NUL character",
        ),
        Case(
            "nul-in-env",
            job("nulenv", '  env: {A: "x\\0y"}\n').encode(),
            "8:12: Job/nulenv: spec.env.A: must not contain a NUL character",
        ),
        Case(
            "nul-in-workdir",
            job("nulwd", '  workingDir: "/tmp/\\0"\n').encode(),
            "8:15: Job/nulwd: spec.workingDir: must not contain a NUL character",
        ),
        Case(
            "nul-raw",
            job("raw", "  env: {A: x\0y}\n").encode(),
            "8:13: character U+0000 is not allowed in YAML",
        ),
        Case(
            "not-utf8",
            job("latin", "  env: {A: caf\xe9}\n").encode("latin-1"),
            "8:15: not UTF-8: byte 0xe9",
        ),
        Case(
            "name-newline",
            job('"evil\\n"').encode(),
            "4:9: Job/'evil\\n': metadata.name: invalid name 'evil\\n'",
        ),
        Case(
            "argv-too-long",
            job("e2big", command=f"[echo, {'x' * 200_000}]").encode(),
            "7:19: Job/e2big: spec.command[1]: is 200000 bytes long; exec(2) takes at most 131071",
        ),
        Case(
            "many-documents",
            b"kind: Job\n---\n" * 100_000,
            "2000:1: more than 1000 documents in one file",
        ),
        Case(
            "fifty-megabytes",
            b"# " + b"x" * (50 * 2**20) + b"\n",
            "1:1: file is 52428803 bytes, over the limit of 4Mi per spec file "
            "(Node spec.specLimits.maxFileSize)",
        ),
        Case(
            "many-errors",
            "".join(job(f"bad{i}", "  bogus: 1\n") + "---\n" for i in range(500)).encode(),
            "8:3: Job/bad0: spec.bogus: Extra inputs are not permitted",
        ),
    ]
