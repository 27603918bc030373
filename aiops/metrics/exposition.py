"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0, parsed with prometheus_client's own parsers."""

from __future__ import annotations

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
    openmetrics = content_type.split(";", 1)[0].strip().lower() == OPENMETRICS_TYPE
    families = parse_openmetrics(body) if openmetrics else parse_text(body)
    samples: list[ParsedSample] = []
    try:
        for family in families:
            kind = family.type
            for sample in family.samples:
                timestamp = None if sample.timestamp is None else float(sample.timestamp)
                samples.append(ParsedSample(sample.name, sample.labels, float(sample.value), timestamp, kind))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ExpositionError(str(exc) or type(exc).__name__) from None
    return samples
