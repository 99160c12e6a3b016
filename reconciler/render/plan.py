"""Output of `wnr plan` and `wnr apply -o json|yaml`: a pass's plan as a diff or as data.

Reads only the pass result it is given; prints nothing itself.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.actions import CreateCgroup, KillCgroup, RemoveCgroup, Signal, StartJob
from reconciler.status.passresult import PassResult

_GREEN, _RED, _YELLOW, _DIM, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"


def plan_data(result: PassResult) -> dict[str, Any]:
    """The machine-readable plan: actions, fingerprint, notes, spec errors, job phases."""
    return {
        "actions": [a.to_dict() for a in result.plan.actions],
        "fingerprint": result.plan.fingerprint,
        "notes": [
            {"object": n.obj, "kind": n.kind, "message": n.message} for n in result.plan.notes
        ],
        "errors": [str(e) for e in result.desired.errors],
        "jobs": {
            name: {
                "phase": str(v.phase),
                "reason": v.reason,
                "message": v.message,
                "attempts": v.attempts,
            }
            for name, v in sorted(result.plan.jobs.items())
        },
        "root": result.observed.root_path,
    }


def plan_text(result: PassResult, color: bool) -> str:
    """A human-readable diff: + creates and starts, - removals and kills, ~ changes."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    lines = [f"cgroup root: {result.observed.root_path}"]
    actions = result.plan.actions
    if not actions:
        lines.append("No changes: the node matches the specs.")
    else:
        lines.append(f"{len(actions)} action(s), fingerprint {result.plan.fingerprint}:")
    for action in actions:
        if isinstance(action, CreateCgroup | StartJob):
            lines.append(paint(_GREEN, f"+ {action.describe()}"))
        elif isinstance(action, RemoveCgroup | KillCgroup | Signal):
            lines.append(paint(_RED, f"- {action.describe()}"))
        else:
            lines.append(paint(_YELLOW, f"~ {action.describe()}"))
    if result.plan.jobs:
        lines.append("Jobs:")
        for name, view in sorted(result.plan.jobs.items()):
            detail = " ".join(part for part in (view.reason, view.message) if part)
            lines.append(f"  {name:<24} {view.phase:<10} {detail}".rstrip())
    if result.plan.notes:
        lines.append("Notes:")
        lines.extend(paint(_DIM, f"  {note}") for note in result.plan.notes)
    return "\n".join(lines)
