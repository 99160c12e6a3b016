"""Kubernetes quantities: the first step of spec loading turns `8Gi` and `500m` into integers.

Memory becomes bytes, CPUs become millicores, so that everything after the
models (planner, limits) does integer arithmetic and never parses strings.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from reconciler.model.quoting import quoted

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}

_QUANTITY_RE = re.compile(
    r"^(?P<num>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)

# The same grammar as _QUANTITY_RE, written for the CRD schema (no named groups).
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"


# The largest memory or disk quantity: the kernel's page counters stop at 2^63 bytes.
MAX_BYTES = 2**63 - 1
# A million CPUs: cpu.max's quota for that many still fits the kernel's limit.
MAX_MILLICPUS = 10**9


def _decimal(value: object, what: str) -> tuple[Decimal, str]:
    """Split a quantity into its number and suffix, refusing anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number or a quantity string, not a boolean")
    if isinstance(value, int) and value.bit_length() > 64:
        raise ValueError(f"{what} is too large: {value.bit_length()} bits")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value}")
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value}")
        return Decimal(str(value)), ""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a number or a quantity string like '8Gi'")
    match = _QUANTITY_RE.match(value.strip())
    if match is None:
        raise ValueError(
            f"invalid quantity {quoted(value, 40)}: expected a number with an optional suffix "
            "(Ki, Mi, Gi, Ti, k, M, G, T, m), e.g. '8Gi', '512Mi', '500m'"
        )
    try:
        return Decimal(match["num"]), match["suffix"] or ""
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"invalid quantity {quoted(value, 40)}") from exc


def parse_bytes(value: object) -> int:
    """Parse a memory or disk quantity into whole bytes (`1.5Gi` -> 1610612736)."""
    number, suffix = _decimal(value, "a byte quantity")
    if suffix == "m":
        raise ValueError(
            f"invalid byte quantity {quoted(value, 40)}: 'm' (milli) makes no sense for bytes"
        )
    multiplier = _BINARY.get(suffix) or _DECIMAL.get(suffix) or 1
    result = number * multiplier
    if result > MAX_BYTES:
        raise ValueError(f"byte quantity {quoted(value, 40)} is over the kernel's maximum (8Ei)")
    if result != result.to_integral_value():
        raise ValueError(f"byte quantity {quoted(value, 40)} is not a whole number of bytes")
    return int(result)


def parse_millicpus(value: object) -> int:
    """Parse a CPU quantity into millicores (`0.5` and `500m` -> 500)."""
    number, suffix = _decimal(value, "a CPU quantity")
    if suffix == "m":
        millis = number
    elif suffix == "":
        millis = number * 1000
    else:
        raise ValueError(
            f"invalid CPU quantity {quoted(value, 40)}: "
            "use cores ('2', '0.5') or millicores ('500m')"
        )
    if millis > MAX_MILLICPUS:
        raise ValueError(f"CPU quantity {quoted(value, 40)} is over a million CPUs")
    if millis != millis.to_integral_value():
        raise ValueError(f"CPU quantity {quoted(value, 40)} is finer than one millicore")
    if millis <= 0:
        raise ValueError(f"CPU quantity {quoted(value, 40)} must be greater than zero")
    return int(millis)


def format_bytes(value: int) -> str:
    """Render bytes the way an admin would write them (`8Gi`), exact or plain."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def format_millicpus(value: int) -> str:
    """Render millicores as cores when whole (`2`), else as millicores (`500m`)."""
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


_QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": QUANTITY_PATTERN}],
    "x-kubernetes-int-or-string": True,
}

# In JSON, quantities are written back the way an admin writes them (`8Gi`, `500m`): that
# form validates to the same number again, so a stored spec (the state dir's object store)
# and a printed one (`wnr get -o yaml`) read back as the object they came from.
_BYTES_JSON = PlainSerializer(format_bytes, return_type=str, when_used="json")
_MILLICPUS_JSON = PlainSerializer(format_millicpus, return_type=str, when_used="json")

# A byte count parsed from a quantity (memory, disk, swap).
Bytes = Annotated[int, BeforeValidator(parse_bytes), _BYTES_JSON, WithJsonSchema(_QUANTITY_SCHEMA)]

# Millicores parsed from a quantity; CPU counts may be fractional (`0.5`).
MilliCPUs = Annotated[
    int,
    BeforeValidator(parse_millicpus),
    _MILLICPUS_JSON,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": QUANTITY_PATTERN},
            ],
            "x-kubernetes-int-or-string": True,
        }
    ),
]

# The least a log file may be bounded to (policies.logs.maxSize): a smaller file would hold
# little but the wrapper's rotation marker line (reconciler/host/wrapper/wrapper.h has the
# same minimum).
LOG_MIN_SIZE = 4096


def _log_size(value: int) -> int:
    if value < LOG_MIN_SIZE:
        raise ValueError(f"a log file must be allowed at least 4Ki ({LOG_MIN_SIZE} bytes)")
    return value


# A log file's size bound; the schema repeats the minimum for plain integers (a pattern
# cannot compare a quantity string with it).
LogSize = Annotated[
    int,
    BeforeValidator(parse_bytes),
    AfterValidator(_log_size),
    _BYTES_JSON,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": LOG_MIN_SIZE},
                {"type": "string", "pattern": QUANTITY_PATTERN},
            ],
            "x-kubernetes-int-or-string": True,
        }
    ),
]
