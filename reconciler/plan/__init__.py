"""The planner: a pure function of (desired, observed, now) returning the ordered actions.

No I/O, no clock, no psutil, no host layer (the import contracts in
pyproject.toml and tests/test_layers.py enforce it). Slots and removals are
visited by name and jobs in spec order (file, then document), so shuffling
objects never changes the plan. A converged system plans nothing; an
incomplete spec set (a file never parsed, an unreadable directory) plans no
deletion at all.

    builder   the plan under construction, notes, requeue times
    tree      the root, slots and their limits
    jobs      one job: start, keep limits live, stop for a reason, clean up
    schedule  which pending jobs fit their slot, in spec order
    removals  what is observed but no longer desired
    strays    processes out of place: escapees (killed with their job), intruders
    launch    where and how a job starts: placement refusals, its argv (through runtime)
    jobphase  a job's phase and reason from its records and cgroup, and its view under policy
    runtime   a job (argv, image, binds, GPUs) as the argv the wrapper execs
    unenforced  fields accepted but not acted on yet, reported by the planner
"""

from reconciler.plan.builder import Note, Plan
from reconciler.plan.core import plan

__all__ = ["Note", "Plan", "plan"]
