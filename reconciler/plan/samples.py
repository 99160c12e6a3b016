"""What a running job's plan reads of its usage samples; part of the planner, pure.

The sampler (reconciler.observe.usage) takes a sample of each running job every interval; a
plan reads three things of it: which limits enforced by wnr it is over (and by how much,
for the message), when the job was last active (the idle timeout), and its stall figures
(the idle timeout's message; status's `Stalled` condition reads them too), to the percent.
An idle job's samples, and a busy one's under its limits, differ in nothing else a pass
reads, so:

- plans kept between passes (reconciler.plan.memo) compare `usage_read`, not the sample;
- a pass the daemon's timer woke for due samples alone (reconciler.reconcile) need not run
  the rest when `samples_hold`: every sample it took reads as the last full pass's did.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.api import Job, JobResources, NodeSpec
from reconciler.model.desired import Desired
from reconciler.model.observed import Usage

# Each limit wnr enforces in user space, with the figure that passed it; None where none did.
Overage = tuple[int | None, int | None, int | None]


def over_limits(usage: Usage, r: JobResources, memory_factor: float) -> Overage:
    """The sample's working set, tasks and disk bytes, each where it is over the job's limit
    (the memory limit times the node's user-space factor), else None."""
    memory = usage.memory_bytes
    if memory is None or r.memory is None or memory <= r.memory * memory_factor:
        memory = None
    tasks = usage.tasks
    if tasks is None or r.pids is None or tasks <= r.pids:
        tasks = None
    disk = usage.disk_bytes
    if disk is None or r.disk is None or disk <= r.disk:
        disk = None
    return memory, tasks, disk


def active_at(usage: Usage) -> float | None:
    """When the job last used its CPUs or waited on CPU, memory or I/O (a stalled job is not
    idle); None where nothing tracks it."""
    if usage.busy_at is None:
        return None
    return max(usage.busy_at, usage.stalled_at or usage.busy_at)


def usage_read(usage: Usage | None, job: Job, node: NodeSpec) -> tuple[object, ...] | None:
    """What of a usage sample anything a pass derives reads: the limits it is over
    (`stops.stop_reason`), when the job was last active, and of its stall figures their text
    (the idle timeout's message, status's `Stalled` message) and whether they reach the idle
    policy's threshold (`Stalled`'s truth). A sample new every interval reads the same while
    the job stays under its limits and idle, or busy without a new busy time."""
    if usage is None:
        return None
    factor = node.policies.user_space.memory_factor
    overage = over_limits(usage, job.spec.resources, factor)
    stall = usage.stall
    if stall is not None:
        idle = job.spec.idle or node.policies.idle
        return (*overage, active_at(usage), str(stall), stall.reaches(idle.min_stall_fraction))
    return (*overage, active_at(usage), None, None)


def reads_alike(a: Usage | None, b: Usage | None, job: Job, node: NodeSpec) -> bool:
    """Whether two samples of a job read the same (`usage_read`), the cheap tests first: the
    same sample, or the same figures."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    return _raw(a) == _raw(b) or usage_read(a, job, node) == usage_read(b, job, node)


def samples_hold(
    desired: Desired, last: Mapping[str, Usage], fresh: Mapping[str, Usage], now: float
) -> bool:
    """Whether every sample taken at `now` reads, for the plan, as the job's sample in `last`
    (what the last full pass planned with) did."""
    node = desired.node_spec
    for name, usage in fresh.items():
        if usage.sampled_at != now:
            continue
        job, before = desired.jobs.get(name), last.get(name)
        if job is None or before is None or not reads_alike(usage, before, job, node):
            return False
    return True


def _raw(usage: Usage) -> tuple[object, ...]:
    # Everything of a sample `usage_read` derives from: equal, so are the readings.
    return (
        usage.memory_bytes,
        usage.tasks,
        usage.disk_bytes,
        usage.busy_at,
        usage.stalled_at,
        usage.stall,
    )
