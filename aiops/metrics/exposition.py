"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0, parsed with prometheus_client's own parsers.

The text format has a fast path as well (`FastText`), for the plain lines most exporters write:
`name{label="value",...} value [timestamp]` with no escapes. A body with any other line (escapes,
odd spacing, garbage) goes to prometheus_client's parser whole, so its words explain a failure.
The fast path keeps names as exposed, as Prometheus stores them; prometheus_client appends `_total`
to a counter's samples that lack it, which `parse` undoes so both paths store the same names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

OPENMETRICS_TYPE = "application/openmetrics-text"
# What Prometheus asks for: OpenMetrics first, the text format as the fallback.
ACCEPT = f"{OPENMETRICS_TYPE};version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


class ExpositionError(ValueError):
    """The body is not valid exposition text; the message is the parser's."""


@dataclass(frozen=True, slots=True)
class ParsedSample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None  # seconds since the epoch, when the exposition gave one
    kind: str  # the family's type: counter, gauge, histogram, summary, untyped, ...


def parse(body: str, content_type: str = "") -> list[ParsedSample]:
    """Every sample in `body`; the format follows the Content-Type (OpenMetrics, else the text format).

    Raises ExpositionError with the parser's message for input that does not parse, so a scrape of
    garbage stores nothing.
    """
    openmetrics = is_openmetrics(content_type)
    families = parse_openmetrics(body) if openmetrics else parse_text(body)
    # Counters declared without _total, whose samples prometheus_client renamed.
    bare = set() if openmetrics else set(BARE_COUNTER.findall(body))
    samples: list[ParsedSample] = []
    try:
        for family in families:
            kind = family.type
            renamed = f"{family.name}_total" if kind == "counter" and family.name in bare else None
            for sample in family.samples:
                timestamp = None if sample.timestamp is None else float(sample.timestamp)
                name = family.name if sample.name == renamed else sample.name
                samples.append(ParsedSample(name, sample.labels, float(sample.value), timestamp, kind))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ExpositionError(str(exc) or type(exc).__name__) from None
    return samples


BARE_COUNTER = re.compile(r"^#\s*TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*(?<!_total))\s+counter\s*$", re.MULTILINE)
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*(?:,|$)')
SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info")


def is_openmetrics(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == OPENMETRICS_TYPE


def series_of(text: str) -> tuple[str, dict[str, str]] | None:
    """`name{a="b",...}` as (name, labels) when it is plain (no escapes, no __name__), else None."""
    brace = text.find("{")
    if brace == -1:
        return (text, {}) if METRIC_NAME.fullmatch(text) else None
    name, inner = text[:brace].strip(), text[brace + 1 : -1]
    if "\\" in inner or not METRIC_NAME.fullmatch(name):
        return None
    labels: dict[str, str] = {}
    position, end = 0, len(inner.rstrip())
    while position < end:
        match = LABEL_PAIR.match(inner, position)
        if match is None:
            return None
        labels[match.group(1)] = match.group(2)
        position = match.end()
    if "__name__" in labels:
        return None
    return name, labels


def kind_of(name: str, types: dict[str, str]) -> str:
    """The type a `# TYPE` line gave the sample's family (prometheus_client's suffix rules), else untyped."""
    kind = types.get(name)
    if kind is not None:
        return kind
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            kind = types.get(name[: -len(suffix)])
            if kind is not None:
                return kind
    return "untyped"


class FastText:
    """The text format's plain lines, with each distinct series text resolved once per cache.

    `lines(body)` yields (series text, value, timestamp or None) for every sample line and fills
    `types`; it raises `NotPlain` at the first line it does not take, and the caller parses the
    body with prometheus_client instead.
    """

    class NotPlain(ValueError):
        pass

    def __init__(self) -> None:
        self.types: dict[str, str] = {}

    def lines(self, body: str):
        types = self.types
        for raw in body.split("\n"):
            line = raw.strip()
            if not line:
                continue
            if line[0] == "#":
                parts = line.split(None, 3)
                if len(parts) > 1 and parts[1] == "TYPE":
                    if len(parts) != 4:
                        raise self.NotPlain(line)
                    types[parts[2]] = parts[3].strip()
                continue
            close = line.rfind("}")
            if close == -1:
                fields = line.split()
                series, rest = fields[0], fields[1:]
            else:
                series, rest = line[: close + 1], line[close + 1 :].split()
            if not 1 <= len(rest) <= 2 or "_" in rest[0]:
                raise self.NotPlain(line)
            try:
                value = float(rest[0])
                timestamp = int(rest[1]) / 1000 if len(rest) == 2 else None
            except ValueError:
                raise self.NotPlain(line) from None
            yield series, value, timestamp
