"""Output of `wnr plan`, `apply`, `get` and `describe`: plans, tables and descriptions as text
(colored on a terminal), JSON or YAML.

Reads only the pass results, statuses and events it is given; prints nothing itself.

    formats   JSON/YAML, kubectl-style tables, ages and byte amounts shared by all output
    plan      the plan as a diff (`wnr plan`) or as data (`-o json|yaml`)
    tables    the tables of `wnr get jobs|slots`
    describe  the text of `wnr describe job|slot`
    top       the tables of `wnr top` and the live usage cells `get -o wide` and `describe` share
    logrecords  log lines as text or JSON, with journald's priority prefix (`--log-format`)
"""

from reconciler.render.describe import describe_job, describe_slot
from reconciler.render.formats import NONE, age, dump, human_bytes, table
from reconciler.render.plan import plan_data, plan_text
from reconciler.render.tables import conditions_summary, jobs_table, slots_table

__all__ = [
    "NONE",
    "age",
    "conditions_summary",
    "describe_job",
    "describe_slot",
    "dump",
    "human_bytes",
    "jobs_table",
    "plan_data",
    "plan_text",
    "slots_table",
    "table",
]
