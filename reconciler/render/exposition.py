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
    # Handed out again, the very same object, while what its rows derive from is unchanged
    # (reconciler.render.metrics): its text is then kept between expositions too.
    recurs: bool = False

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
    text. Those the last exposition did not write are dropped. Kept by sample name, then
    label values: a family's label names are fixed by its name. About 280 bytes a sample
    (1.4 MiB for 256 jobs), for a scrape at half the CPU of label texts kept alone. A family
    that recurs (`Family.recurs`: the very same object, handed out again while what it
    derives from is unchanged) is its whole text again, and its lines stay kept for the
    exposition where it changes."""

    def __init__(self) -> None:
        # sample name -> label values -> (value, line, the length of its name and labels)
        self._kept: dict[str, dict[LabelValues, tuple[float, str, int]]] = {}
        self._asked: dict[str, dict[LabelValues, tuple[float, str, int]]] = {}
        # A recurring family's text by its name, with the very family it was written from.
        self._texts: dict[str, tuple[Family, str]] = {}
        self._written: dict[str, tuple[Family, str]] = {}

    def text(self, family: Family) -> str:
        """The family's text: HELP, TYPE and a line per sample."""
        name = family.name
        found = self._texts.get(name)
        if found is not None and found[0] is family:
            self._written[name] = found
            self._asked[name] = self._kept.get(name, {})
            return found[1]
        kept = self._kept.get(name, {})
        asked = self._asked.setdefault(name, {})
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        out = [f"# HELP {name} {help_text}\n# TYPE {name} {family.kind}\n"]
        for values, value in family.rows:
            line = asked.get(values) or kept.get(values)
            if line is None or line[0] != value:
                line = self._line(name, family.labels, values, value, line)
            asked[values] = line
            out.append(line[1])
        text = "".join(out)
        if family.recurs:
            self._written[name] = (family, text)
        return text

    @staticmethod
    def _line(
        name: str,
        labels: tuple[str, ...],
        values: LabelValues,
        value: float,
        last: tuple[float, str, int] | None,
    ) -> tuple[float, str, int]:
        """`name{l="v",...} value` and its newline (no braces without labels)."""
        if last is not None:
            head = last[1][: last[2]]
        else:
            pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(labels, values, strict=True))
            head = f"{name}{{{pairs}}}" if pairs else name
        return (value, f"{head} {_number(value)}\n", len(head))

    def end(self) -> None:
        """One exposition ended: what it wrote is what the next keeps."""
        self._kept, self._asked = self._asked, {}
        self._texts, self._written = self._written, {}


def exposition(families: Iterable[Family], kept: SampleLines | None = None) -> str:
    """The text format of `families`, in order (HELP, TYPE, then the samples); `kept`: the
    lines of earlier expositions, to reuse (none otherwise)."""
    lines = kept if kept is not None else SampleLines()
    text = "".join(map(lines.text, families))
    lines.end()
    return text


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
