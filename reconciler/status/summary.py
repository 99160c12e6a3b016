"""The daemon's one-line summary of a pass, for systemd's STATUS= (`systemctl status wnr`).

Pure: derived from the PassResult alone (slots, jobs by phase, spec errors), so
the same pass always gives the same line and the daemon sends it only when it
changes (reconciler.daemon.notify).
"""

from __future__ import annotations

from collections import Counter

from reconciler.plan.jobphase import Phase
from reconciler.status.passresult import PassResult


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def pass_summary(result: PassResult) -> str:
    """`2 slots, 5 jobs (3 Running, 1 Pending, 1 Succeeded); 1 spec error`: phases in
    lifecycle order, those with no job left out, the spec errors only when there are some."""
    phases = Counter(view.phase for view in result.plan.jobs.values())
    slots = _plural(len(result.desired.slots), "slot")
    jobs = _plural(len(result.plan.jobs), "job")
    counts = ", ".join(f"{phases[phase]} {phase}" for phase in Phase if phases[phase])
    line = f"{slots}, {jobs}" + (f" ({counts})" if counts else "")
    if result.desired.errors:
        line += f"; {_plural(len(result.desired.errors), 'spec error')}"
    if result.state_fault is not None:
        line += "; state dir cannot record"
    return line
