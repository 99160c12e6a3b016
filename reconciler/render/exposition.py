"""Metric families as rows, written in Prometheus' text format or handed to prometheus_client.

Render layer, below reconciler.render.metrics (which fills the rows from a pass).
`exposition` writes the text format (version 0.0.4) itself, escaping each label set
once (and keeping each sample's line between scrapes while it recurs): prometheus_client's
generate_latest formats every sample through a sorted label dict and costs about 5 us a
sample, so with 256 jobs (some 4,000 samples) one scrape would cost more CPU than a no-op
pass, the benchmark's bound. `to_metric`
turns the same rows into prometheus_client families, for a registry (`PassCollector`
in reconciler.render.metrics); tests/test_metrics.py proves both parse the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import starmap

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

COUNTER, GAUGE = "counter", "gauge"
# Label values a scrape's rows hold, and each one's `{...}` text.
LabelValues = tuple[str, ...]


@dataclass
class Family:
    """One metric family: its sample name (`_total` on counters), type, help, label names,
    and rows of (label values, value). A family without rows is still declared."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    rows: list[tuple[LabelValues, float]] = field(default_factory=list)

    def add(self, values: LabelValues, value: float) -> None:
        """One sample."""
        self.rows.append((values, value))


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _number(value: float) -> str:
    """A value as the text format reads it: integers without a fraction."""
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


class SampleLines:
    """Each sample's line, kept from one exposition to the next: a node's series recur scrape
    after scrape, most with the value they had (phases, limits, counters of idle jobs), and
    a line that recurs costs one lookup; one whose value moved reuses its name and label
    text. Those the last exposition did not write are dropped. Keyed by sample name and
    label values: a family's label names are fixed by its name. About 280 bytes a sample
    (1.4 MiB for 256 jobs), for a scrape at half the CPU of label texts kept alone."""

    def __init__(self) -> None:
        # (sample name, label values) -> (value, line, the length of its name and labels)
        self._kept: dict[tuple[str, LabelValues], tuple[float, str, int]] = {}
        self._asked: dict[tuple[str, LabelValues], tuple[float, str, int]] = {}

    def line(self, name: str, labels: tuple[str, ...], values: LabelValues, value: float) -> str:
        """`name{l="v",...} value` and its newline (no braces without labels)."""
        key = (name, values)
        found = self._asked.get(key) or self._kept.get(key)
        if found is not None and found[0] == value:
            self._asked[key] = found
            return found[1]
        if found is not None:
            head = found[1][: found[2]]
        else:
            pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(labels, values, strict=True))
            head = f"{name}{{{pairs}}}" if pairs else name
        line = f"{head} {_number(value)}\n"
        self._asked[key] = (value, line, len(head))
        return line

    def end(self) -> None:
        """One exposition ended: what it wrote is what the next keeps."""
        self._kept, self._asked = self._asked, {}


def exposition(families: Iterable[Family], kept: SampleLines | None = None) -> str:
    """The text format of `families`, in order (HELP, TYPE, then the samples); `kept`: the
    lines of earlier expositions, to reuse (none otherwise)."""
    lines = kept if kept is not None else SampleLines()
    out: list[str] = []
    for family in families:
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {family.name} {help_text}\n# TYPE {family.name} {family.kind}\n")
        out.extend(starmap(partial(lines.line, family.name, family.labels), family.rows))
    lines.end()
    return "".join(out)


def to_metric(family: Family) -> Metric:
    """The same family as prometheus_client's (its name without `_total` for a counter)."""
    labels = list(family.labels)
    metric: CounterMetricFamily | GaugeMetricFamily
    if family.kind == COUNTER:
        metric = CounterMetricFamily(family.name.removesuffix("_total"), family.help, labels=labels)
    else:
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
    for values, value in family.rows:
        metric.add_metric(list(values), value)
    return metric
