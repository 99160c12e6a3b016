"""Job and slot status (DESIGN §2) derived from one pass: desired, observed and the plan; pure.

`wnr get` and `wnr describe` show these, and the reconciler compares slot
phases between passes to log their changes. No I/O and no clock: `now` is
passed in, and the failures of the pass (if any) come as a mapping from
object to error.

    conditions  Condition and how SpecValid, CgroupReady and LimitsEnforced are derived
    jobs        JobStatus and `job_statuses`
    slots       SlotStatus, its Resources and phases, and `slot_statuses`
    objects     jobs and slots as Kubernetes objects for `-o json|yaml`
    passresult  what one pass saw, planned and failed to do (PassResult)
    events      the pass's events: phase changes and actions, each reported once
"""

from reconciler.status.conditions import FALSE, NOT_BY_KERNEL, TRUE, UNKNOWN, Condition
from reconciler.status.jobs import JobStatus, job_statuses, timestamp
from reconciler.status.objects import api_object, spec_data
from reconciler.status.slots import SLOT_PHASES, Resources, SlotStatus, slot_statuses

__all__ = [
    "FALSE",
    "NOT_BY_KERNEL",
    "SLOT_PHASES",
    "TRUE",
    "UNKNOWN",
    "Condition",
    "JobStatus",
    "Resources",
    "SlotStatus",
    "api_object",
    "job_statuses",
    "slot_statuses",
    "spec_data",
    "timestamp",
]
