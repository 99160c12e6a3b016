"""The formats every output of `wnr` shares: JSON/YAML, kubectl-style tables, ages and amounts.

The bottom of the render package: `render.plan`, `render.tables` and
`render.describe` build on these; nothing here knows about plans or statuses.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML

NONE = "<none>"


def dump(data: dict[str, Any], fmt: str) -> str:
    """Serialise data as JSON or YAML."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    buffer = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, buffer)
    return buffer.getvalue().rstrip("\n")


def age(seconds: float | None) -> str:
    """A duration the way kubectl prints AGE: `45s`, `5m12s`, `3h`, `2d4h`, `1y30d`."""
    if seconds is None:
        return NONE
    total = int(seconds)
    if total < 0:
        return "0s"
    minutes, hours = total // 60, total // 3600
    days, years = hours // 24, hours // (24 * 365)
    steps: list[tuple[bool, str]] = [
        (total < 120, f"{total}s"),
        (minutes < 10, f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"),
        (hours < 3, f"{minutes}m"),
        (hours < 8, f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"),
        (hours < 48, f"{hours}h"),
        (days < 8, f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"),
        (years < 2, f"{days}d"),
        (years < 8, f"{years}y{days % 365}d" if days % 365 else f"{years}y"),
    ]
    return next((text for fits, text in steps if fits), f"{years}y")


def human_bytes(value: int | None) -> str:
    """Bytes in binary units to one decimal (`10.5Mi`), for measured amounts."""
    if value is None:
        return NONE
    amount, unit = float(value), ""
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, suffix
    return f"{amount:.1f}".removesuffix(".0") + unit


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    indent: str = "",
    underline: bool = False,
) -> str:
    """Columns padded to their widest cell, three spaces apart, like kubectl; `describe`
    underlines its headers."""
    rule = [["-" * len(h) for h in headers]] if underline else []
    every = [headers, *rule, *rows]
    widths = [max(len(str(row[i])) for row in every) for i in range(len(headers))]
    lines = [
        indent + "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in every
    ]
    return "\n".join(line.rstrip() for line in lines)
