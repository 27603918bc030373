"""Reading stored metrics for the API and the pages: queries, series by labels, chart data, labels.

Views stay thin: `find_series`, `series_chart`, `label_names`, `label_values`, `run_query_range`,
`series_url`. The writes are by domain: scrape_targets, prom_sources, thresholds; scheduling and
storage upkeep in collection.
"""

from __future__ import annotations

import datetime
import math
from urllib.parse import quote

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from opsportal.errors import InvalidInput

from ..metrics import promql, query
from ..models import Series
from .metric_fields import LABEL_NAME


def series_url(series: Series) -> str:
    """Where a person sees the series: the metric explorer page when it is installed, else the series API."""
    try:
        path = f"{reverse('aiops:metric_explorer')}?series={series.pk}"
    except NoReverseMatch:
        path = f"{reverse('api:aiops:metrics-series')}?match[]={quote(series.selector())}"
    return f"{settings.OPSPORTAL_BASE_URL}{path}"


def run_query_range(*, query_text: str, start: float, end: float, step: float) -> query.QueryResult:
    """Evaluate a PromQL-subset query over [start, end] (unix seconds) at `step` (InvalidInput naming `query`)."""
    return query.query_range(query_text, start=start, end=end, step=step)


def run_query_instant(*, query_text: str, at: float) -> query.QueryResult:
    return query.query_instant(query_text, at=at)


def find_series(*, selector: str, since: datetime.datetime | None = None, limit: int = 1000) -> list[Series]:
    """The series a selector such as `node_load1{instance=~"web.*"}` matches, at most `limit` (a page's picker)."""
    parsed = promql.parse_selector(selector)
    found = query.select_series(parsed, since=since.timestamp() if since else None, limit=query.MAX_SERIES)
    return sorted(found, key=lambda s: (s.name, sorted(s.labels.items())))[:limit]


def series_chart(
    *,
    series_ids: list[int],
    start: datetime.datetime,
    end: datetime.datetime,
    function: str | None = None,
    range_seconds: float = 300.0,
    points: int = 600,
) -> list[query.SeriesPoints]:
    """Chart data for stored series over [start, end]: about `points` points each (raw or rollups by step).

    `function` (e.g. "rate" for counters, "max_over_time") is applied over `range_seconds` windows;
    None shows the values. Unknown ids are left out; each result carries its series_id and metric.
    """
    series = list(Series.objects.filter(pk__in=series_ids))
    if function is not None and function not in promql.RANGE_FUNCTIONS:
        raise InvalidInput(f"must be one of {', '.join(promql.RANGE_FUNCTIONS)}.", field="function")
    span = max(1.0, (end - start).total_seconds())
    step = max(1.0, math.ceil(span / max(1, points)))
    return query.evaluate_series(
        series, start=start.timestamp(), end=end.timestamp(), step=step, function=function, range_seconds=range_seconds
    )


def label_names(*, matches: list[str] | None = None, start: float | None = None) -> list[str]:
    return query.label_names(matches or [], start=start)


def label_values(*, label: str, matches: list[str] | None = None, start: float | None = None) -> list[str]:
    if label != "__name__" and not LABEL_NAME.fullmatch(label):
        raise InvalidInput(f"invalid label name: {label!r}.", field="label")
    return query.label_values(label, matches or [], start=start)


def series_matching(*, matches: list[str], start: float | None = None) -> list[Series]:
    return query.series_matching(matches, start=start)
