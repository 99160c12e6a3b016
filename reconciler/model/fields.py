"""Field types of the API objects: names, texts that reach exec(2), bounded numbers, CPU lists.

Used by the models (reconciler.model.api), which assemble them into Node, Slot and
Job. Each type says what a value must be for the kernel or exec(2) to take it,
so that nothing downstream can meet a value that raises: no NUL byte, no
string longer than exec(2) takes, no number past what the kernel stores.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from reconciler.model.quoting import quoted

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


def _dns_label(value: str) -> str:
    # fullmatch: `$` in match() also matches before a final newline ("evil\n").
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"invalid name {quoted(value)}: must be a DNS-1123 label (lowercase letters, "
            "digits and '-', starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


# A DNS-1123 label: it becomes part of a cgroup name, so it can never hold `/` or `..`.
Name = Annotated[
    str,
    AfterValidator(_dns_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63}),
]


def _no_nul(value: str) -> str:
    # Every string may end up in an argv, an environment or a path, where C stops at NUL.
    if "\0" in value:
        raise ValueError(f"must not contain a NUL character (at offset {value.index(chr(0))})")
    return value


# Text that may reach exec(2) or a path: no NUL byte.
Text = Annotated[str, AfterValidator(_no_nul)]
# One argument or environment value: the kernel refuses any longer than MAX_ARG_STRLEN
# (128 KiB with its NUL) with E2BIG, on every attempt.
MAX_ARG_BYTES = 128 * 1024 - 1


def _arg(value: str) -> str:
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > MAX_ARG_BYTES:
        raise ValueError(f"is {size} bytes long; exec(2) takes at most {MAX_ARG_BYTES}")
    return value


Arg = Annotated[str, AfterValidator(_no_nul), AfterValidator(_arg)]
# A job's command and environment together; Linux's ARG_MAX is 2 MiB with the default stack.
MAX_EXEC_BYTES = 1024 * 1024
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/"), AfterValidator(_no_nul)]
# Environment variable names as POSIX shells accept them.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# Seconds of any grace, deadline or window: 2^32 s is 136 years, and keeps every sum
# with a timestamp an exact float (10^309 once overflowed in the planner).
MAX_SECONDS = 2**32
PositiveSeconds = Annotated[int, Field(ge=0, le=MAX_SECONDS)]
# The kernel's pid_max ceiling on 64-bit (PID_MAX_LIMIT): pids.max takes no more.
PID_MAX_LIMIT = 4 * 1024 * 1024
# Counts (replicas, attempts, GPUs) far beyond any node, still far below 64 bits.
MAX_COUNT = 1_000_000


class Strict(BaseModel):
    """Base of every API model: unknown fields are errors, and models are immutable."""

    # No infinities or NaNs in floats: every float field is a fraction, factor or interval.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


def _as_text(value: object) -> object:
    # YAML reads `cpuset: 3` and `gpus: [0, 1]` as integers; admins mean the text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _cpu_list(value: str) -> str:
    for part in value.split(","):
        first, _, last = part.partition("-")
        if last and int(last) < int(first):
            raise ValueError(f"invalid CPU range {part!r} in {value!r}: the end is below the start")
    return value


# A cpuset.cpus list such as "0-3,8"; ranges ascend; CPU numbers have at most 5 digits
# (the kernel's NR_CPUS is at most 8192).
CPU_LIST_PATTERN = r"^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$"
CpuList = Annotated[
    str,
    BeforeValidator(_as_text),
    StringConstraints(pattern=CPU_LIST_PATTERN),
    AfterValidator(_cpu_list),
    WithJsonSchema({"type": "string", "pattern": CPU_LIST_PATTERN}),
]
# A GPU id as the node names it ("0", "1", or a UUID).
DeviceId = Annotated[
    str, BeforeValidator(_as_text), AfterValidator(_no_nul), WithJsonSchema({"type": "string"})
]


# A container bind mount, "source" or "source:target" (e.g. /cvmfs).
Bind = Annotated[str, StringConstraints(pattern=r"^/[^:]*(:/[^:]*)?$"), AfterValidator(_no_nul)]
