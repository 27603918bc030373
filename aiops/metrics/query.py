"""Evaluating the supported PromQL subset (`aiops.metrics.promql`) over stored samples and rollups.

Range queries are evaluated at `start + k * step` for every k up to `end`, as Prometheus does:

- a selector's value at t is its latest sample in (t - 5m, t] (Prometheus's lookback delta);
- a range function at t reads the samples in (t - range, t] (left-open, as in Prometheus 3);
  `rate` and `increase` follow Prometheus's extrapolation (counter resets add the value before
  the drop; the result is extrapolated to the window's edges unless a sample is further than
  1.1 average intervals from the edge, and never below zero at the start);
- **raw samples or rollups**: with a step under 5 minutes, over a range inside raw retention,
  raw samples are read. With a step of 5 minutes or more, or a start older than raw retention,
  the 5-minute rollups are read for every step up to the rollup checkpoint (and raw samples for
  the few steps after it): a selector then gives the last value of the bucket ending in
  (t - 5m, t]; `rate`/`increase` sum the reset-aware increases of the buckets ending in the
  window (a window under 5 minutes takes its share of one bucket; no extrapolation); the
  `*_over_time` functions combine the buckets' min, max, sum and count.

The result is what Prometheus's HTTP API answers (`to_prometheus`).
"""

from __future__ import annotations

import bisect
import datetime
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from opsportal.errors import InvalidInput

from ..models import Rollup5m, Sample, Series
from . import rollups
from .promql import Expression, RangeFunction, Scalar, Selector, parse, parse_duration, parse_selector

LOOKBACK_SECONDS = 300.0
MAX_POINTS = 11_000
MAX_SERIES = 10_000
ROLLUP_MIN_STEP = rollups.BUCKET_SECONDS
BUCKET = float(rollups.BUCKET_SECONDS)
UTC = datetime.UTC


@dataclass
class SeriesPoints:
    metric: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)
    series_id: int | None = None


@dataclass
class QueryResult:
    """A matrix (range queries), vector (instant queries over series) or scalar; `source` says what was read."""

    result_type: str
    series: list[SeriesPoints] = field(default_factory=list)
    scalar: tuple[float, float] | None = None
    source: str = "raw"

    def to_prometheus(self) -> dict:
        """The `data` object of Prometheus's answer."""
        if self.result_type == "scalar":
            at, value = self.scalar or (0.0, math.nan)
            return {"resultType": "scalar", "result": [_stamp(at), format_value(value)]}
        if self.result_type == "vector":
            return {
                "resultType": "vector",
                "result": [
                    {"metric": s.metric, "value": [_stamp(s.points[-1][0]), format_value(s.points[-1][1])]}
                    for s in self.series
                    if s.points
                ],
            }
        return {
            "resultType": "matrix",
            "result": [
                {"metric": s.metric, "values": [[_stamp(at), format_value(value)] for at, value in s.points]}
                for s in self.series
                if s.points
            ],
        }


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's strconv 'f', -1: no exponent; NaN, +Inf, -Inf)."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def _stamp(at: float) -> float | int:
    rounded = round(at, 3)
    return int(rounded) if rounded == int(rounded) else rounded


# --- Parameters -------------------------------------------------------------------------------


def parse_time(text: str | None, *, field: str, default: float | None = None) -> float:
    """A Prometheus API time: RFC 3339 or a unix timestamp in (fractional) seconds."""
    if text is None or text == "":
        if default is None:
            raise InvalidInput("required.", field=field)
        return default
    try:
        value = float(text)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"cannot parse {text!r} to a valid timestamp.", field=field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_step(text: str | None) -> float:
    """A step in seconds, or as a duration (`15s`, `1m`)."""
    if text is None or text == "":
        raise InvalidInput("required.", field="step")
    try:
        value = float(text)
    except ValueError:
        value = parse_duration(text, field="step")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput("zero or negative query resolution step widths are not accepted.", field="step")
    return value


# --- Series -------------------------------------------------------------------------------------


def select_series(selector: Selector, *, since: float | None = None, limit: int = MAX_SERIES) -> list[Series]:
    """The stored series `selector` matches (seen since `since`, a unix time, when given).

    The database narrows by metric name and by the equality matchers (a GIN containment lookup on
    PostgreSQL); the other matchers are applied here, with Prometheus's rules (a missing label is
    "", regexes are anchored).
    """
    queryset = Series.objects.all()
    name = selector.metric_name
    if name is not None:
        queryset = queryset.filter(name=name)
    else:
        name_matchers = [m for m in selector.matchers if m.label == "__name__"]
        if name_matchers:
            every = Series.objects.values_list("name", flat=True).distinct()
            names = [n for n in every if all(m.matches(n) for m in name_matchers)]
            queryset = queryset.filter(name__in=names)
    equal = {m.label: m.value for m in selector.matchers if m.op == "=" and m.label != "__name__" and m.value}
    if equal:
        if connection.vendor == "postgresql":
            queryset = queryset.filter(labels__contains=equal)
        else:
            # A label's text (Cast: an exact lookup on the key itself would compare JSON on SQLite).
            for index, (label, value) in enumerate(equal.items()):
                text = Cast(KeyTextTransform(label, "labels"), TextField())
                queryset = queryset.alias(**{f"_l{index}": text}).filter(**{f"_l{index}": value})
    if since is not None:
        # last_seen_at moves every few minutes only (aiops.metrics.store.TOUCH_SECONDS): allow for that.
        queryset = queryset.filter(last_seen_at__gte=_dt(since - 600))
    found = []
    for series in queryset.order_by("id").iterator(chunk_size=2000):
        if selector.matches(series.name, series.labels):
            found.append(series)
            if len(found) > limit:
                raise InvalidInput(
                    f"the selector matches more than {limit} series; add matchers to narrow it.", field="query"
                )
    return found


def _dt(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, UTC)


# --- Reading samples ------------------------------------------------------------------------------


def raw_points(ids: Sequence[int], lower: float, upper: float) -> dict[int, tuple[list[float], list[float]]]:
    """Each series' samples in (lower, upper], as (times, values), oldest first, one per timestamp."""
    out: dict[int, tuple[list[float], list[float]]] = {series_id: ([], []) for series_id in ids}
    if not ids:
        return out
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT series_id, extract(epoch FROM time)::float8, value FROM aiops_sample "
                "WHERE series_id = ANY(%s) AND time > %s AND time <= %s ORDER BY series_id, time",
                [list(ids), _dt(lower), _dt(upper)],
            )
            rows = cursor.fetchall()
    else:
        rows = [
            (series_id, at.timestamp(), value)
            for series_id, at, value in Sample.objects.filter(
                series_id__in=list(ids), time__gt=_dt(lower), time__lte=_dt(upper)
            )
            .order_by("series_id", "time")
            .values_list("series_id", "time", "value")
        ]
    for series_id, at, value in rows:
        times, values = out[series_id]
        number = math.nan if value is None else value
        if times and times[-1] == at:
            values[-1] = number
            continue
        times.append(at)
        values.append(number)
    return out


@dataclass
class Buckets:
    starts: list[float] = field(default_factory=list)
    mins: list[float] = field(default_factory=list)
    maxs: list[float] = field(default_factory=list)
    sums: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    lasts: list[float] = field(default_factory=list)
    increases: list[float] = field(default_factory=list)


def rollup_points(ids: Sequence[int], lower: float, upper: float) -> dict[int, Buckets]:
    """Each series' rollup buckets starting in [lower, upper)."""
    out = {series_id: Buckets() for series_id in ids}
    if not ids:
        return out
    columns = ("min_value", "max_value", "sum_value", "count", "last_value", "increase")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT series_id, extract(epoch FROM bucket)::float8, min_value, max_value, sum_value, count, "
                "last_value, increase FROM aiops_rollup5m "
                "WHERE series_id = ANY(%s) AND bucket >= %s AND bucket < %s ORDER BY series_id, bucket",
                [list(ids), _dt(lower), _dt(upper)],
            )
            rows = cursor.fetchall()
    else:
        rows = [
            (row[0], row[1].timestamp(), *row[2:])
            for row in Rollup5m.objects.filter(series_id__in=list(ids), bucket__gte=_dt(lower), bucket__lt=_dt(upper))
            .order_by("series_id", "bucket")
            .values_list("series_id", "bucket", *columns)
        ]
    for series_id, start, low, high, total, count, last, growth in rows:
        buckets = out[series_id]
        buckets.starts.append(start)
        buckets.mins.append(_number(low))
        buckets.maxs.append(_number(high))
        buckets.sums.append(_number(total))
        buckets.counts.append(count)
        buckets.lasts.append(_number(last))
        buckets.increases.append(_number(growth))
    return out


def _number(value: float | None) -> float:
    return math.nan if value is None else value


# --- Evaluation -----------------------------------------------------------------------------------


def steps_of(start: float, end: float, step: float) -> list[float]:
    if end < start:
        raise InvalidInput("end timestamp must not be before start time.", field="end")
    count = int((end - start) // step) + 1
    if count > MAX_POINTS:
        raise InvalidInput(
            f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
            "Try decreasing the query resolution (?step=XX).",
            field="step",
        )
    return [start + index * step for index in range(count)]


def query_range(query: str | Expression, *, start: float, end: float, step: float) -> QueryResult:
    """Evaluate `query` at every step over [start, end] (unix seconds): a matrix."""
    expression = parse(query) if isinstance(query, str) else query
    steps = steps_of(start, end, step)
    if isinstance(expression, Scalar):
        return QueryResult("matrix", [SeriesPoints({}, [(t, expression.value) for t in steps])])
    return _evaluate(expression, steps, step)


def query_instant(query: str | Expression, *, at: float) -> QueryResult:
    """Evaluate `query` at one time: a vector, or a scalar for number expressions."""
    expression = parse(query) if isinstance(query, str) else query
    if isinstance(expression, Scalar):
        return QueryResult("scalar", scalar=(at, expression.value))
    result = _evaluate(expression, [at], 0.0)
    result.result_type = "vector"
    return result


def evaluate_series(
    series: Sequence[Series],
    *,
    start: float,
    end: float,
    step: float,
    function: str | None = None,
    range_seconds: float = LOOKBACK_SECONDS,
) -> list[SeriesPoints]:
    """Given series (chosen by id, as a page does) evaluated like `query_range` of a selector or function."""
    selector = Selector(())
    expression = RangeFunction(function, selector, range_seconds) if function else selector
    return _evaluate(expression, steps_of(start, end, step), step, series=list(series)).series


def _evaluate(
    expression: Selector | RangeFunction, steps: list[float], step: float, *, series: list[Series] | None = None
) -> QueryResult:
    selector = expression.selector if isinstance(expression, RangeFunction) else expression
    window = expression.range_seconds if isinstance(expression, RangeFunction) else LOOKBACK_SECONDS
    if series is None:
        series = select_series(selector, since=steps[0] - window)
    ids = [s.id for s in series]
    done = rollups.checkpoint()
    done_at = done.timestamp() if done else None
    raw_from = time.time() - settings.METRICS_RAW_RETENTION_DAYS * 86400
    use_rollups = done_at is not None and (step >= ROLLUP_MIN_STEP or steps[0] - window < raw_from)
    rollup_steps = [t for t in steps if use_rollups and t <= done_at]
    raw_steps = steps[len(rollup_steps) :]
    by_id: dict[int, list[tuple[float, float]]] = {series_id: [] for series_id in ids}
    if rollup_steps:
        extent = max(window, BUCKET)
        data = rollup_points(ids, rollup_steps[0] - extent - BUCKET, rollup_steps[-1])
        for series_id, buckets in data.items():
            by_id[series_id] += _from_rollups(expression, buckets, rollup_steps)
    if raw_steps:
        data = raw_points(ids, raw_steps[0] - window, raw_steps[-1])
        for series_id, (times, values) in data.items():
            by_id[series_id] += _from_raw(expression, times, values, raw_steps)
    # Functions drop the metric name, except last_over_time (as in Prometheus).
    drop_name = isinstance(expression, RangeFunction) and expression.function != "last_over_time"
    results = []
    for item in series:
        metric = dict(item.labels) if drop_name else item.metric()
        results.append(SeriesPoints(metric, by_id[item.id], item.id))
    results.sort(key=lambda s: sorted(s.metric.items()))
    source = "rollup" if rollup_steps and not raw_steps else "mixed" if rollup_steps else "raw"
    return QueryResult("matrix", results, source=source)


def _from_raw(
    expression: Selector | RangeFunction, times: list[float], values: list[float], steps: list[float]
) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    if not times:
        return points
    if isinstance(expression, Selector):
        for t in steps:
            index = bisect.bisect_right(times, t) - 1
            if index >= 0 and times[index] > t - LOOKBACK_SECONDS:
                points.append((t, values[index]))
        return points
    function, window = expression.function, expression.range_seconds
    # Prefix sums make each window O(1): the counter corrections (the value before each drop) and the sums.
    corrections = [0.0]
    sums = [0.0, values[0]]
    for index in range(1, len(values)):
        drop = values[index - 1] if values[index] < values[index - 1] else 0.0
        corrections.append(corrections[-1] + drop)
        sums.append(sums[-1] + values[index])
    for t in steps:
        lo = bisect.bisect_right(times, t - window)
        hi = bisect.bisect_right(times, t)
        count = hi - lo
        if count == 0:
            continue
        if function in ("rate", "increase"):
            if count < 2:
                continue
            value = _extrapolated(times, values, corrections, lo, hi, t - window, t, function == "rate")
        elif function == "avg_over_time":
            value = (sums[hi] - sums[lo]) / count
        elif function == "sum_over_time":
            value = sums[hi] - sums[lo]
        elif function == "count_over_time":
            value = float(count)
        elif function == "min_over_time":
            value = min(values[lo:hi])
        elif function == "max_over_time":
            value = max(values[lo:hi])
        else:  # last_over_time
            value = values[hi - 1]
        points.append((t, value))
    return points


def _extrapolated(
    times: list[float],
    values: list[float],
    corrections: list[float],
    lo: int,
    hi: int,
    range_start: float,
    range_end: float,
    is_rate: bool,
) -> float:
    """Prometheus's extrapolatedRate for a counter over samples lo..hi-1 of the window."""
    first_t, last_t = times[lo], times[hi - 1]
    first_v = values[lo]
    result = values[hi - 1] - first_v + (corrections[hi - 1] - corrections[lo])
    sampled = last_t - first_t
    if sampled <= 0:
        return math.nan
    to_start = first_t - range_start
    to_end = range_end - last_t
    average = sampled / (hi - lo - 1)
    if result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    result *= interval / sampled
    return result / (range_end - range_start) if is_rate else result


def _from_rollups(
    expression: Selector | RangeFunction, buckets: Buckets, steps: list[float]
) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    starts = buckets.starts
    if not starts:
        return points
    if isinstance(expression, Selector):
        for t in steps:
            index = bisect.bisect_right(starts, t - BUCKET) - 1
            if index >= 0 and starts[index] > t - 2 * BUCKET:
                points.append((t, buckets.lasts[index]))
        return points
    function, window = expression.function, expression.range_seconds
    extent = max(window, BUCKET)
    increases = [0.0]
    sums = [0.0]
    counts = [0]
    for growth, total, count in zip(buckets.increases, buckets.sums, buckets.counts, strict=True):
        increases.append(increases[-1] + (0.0 if growth != growth else growth))
        sums.append(sums[-1] + total)
        counts.append(counts[-1] + count)
    for t in steps:
        # The buckets that end in (t - extent, t].
        lo = bisect.bisect_right(starts, t - extent - BUCKET)
        hi = bisect.bisect_right(starts, t - BUCKET)
        if hi <= lo:
            continue
        if function in ("rate", "increase"):
            growth = increases[hi] - increases[lo]
            value = growth / extent if function == "rate" else growth * (window / extent)
        elif function == "avg_over_time":
            total = counts[hi] - counts[lo]
            if total == 0:
                continue
            value = (sums[hi] - sums[lo]) / total
        elif function == "sum_over_time":
            value = sums[hi] - sums[lo]
        elif function == "count_over_time":
            value = float(counts[hi] - counts[lo])
        elif function == "min_over_time":
            value = min(buckets.mins[lo:hi])
        elif function == "max_over_time":
            value = max(buckets.maxs[lo:hi])
        else:
            value = buckets.lasts[hi - 1]
        points.append((t, value))
    return points


# --- Series, labels and label values (Prometheus's metadata API) --------------------------------------


def series_matching(matches: Sequence[str], *, start: float | None = None) -> list[Series]:
    """The union of the series each `match[]` selector matches, seen since `start`."""
    if not matches:
        raise InvalidInput("no match[] parameter provided.", field="match[]")
    found: dict[int, Series] = {}
    for text in matches:
        for series in select_series(parse_selector(text, field="match[]"), since=start):
            found[series.id] = series
    return sorted(found.values(), key=lambda s: (s.name, sorted(s.labels.items())))


def label_names(matches: Sequence[str] = (), *, start: float | None = None) -> list[str]:
    if matches:
        names = {"__name__"}
        for series in series_matching(matches, start=start):
            names.update(series.labels)
        return sorted(names)
    queryset = Series.objects.all()
    if start is not None:
        queryset = queryset.filter(last_seen_at__gte=_dt(start - 600))
    if connection.vendor == "postgresql":
        sql, params = queryset.values("labels").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT jsonb_object_keys(labels) FROM ({sql}) AS found", params)  # noqa: S608
            names = {row[0] for row in cursor.fetchall()}
    else:
        names = {label for labels in queryset.values_list("labels", flat=True) for label in labels}
    return sorted(names | ({"__name__"} if queryset.exists() else set()))


def label_values(label: str, matches: Sequence[str] = (), *, start: float | None = None) -> list[str]:
    if matches:
        series = series_matching(matches, start=start)
        values = {s.name if label == "__name__" else s.labels.get(label, "") for s in series}
        return sorted(v for v in values if v)
    queryset = Series.objects.all()
    if start is not None:
        queryset = queryset.filter(last_seen_at__gte=_dt(start - 600))
    if label == "__name__":
        return sorted(set(queryset.values_list("name", flat=True)))
    queryset = queryset.filter(Q(labels__has_key=label)).annotate(_value=KeyTextTransform(label, "labels"))
    return sorted({v for v in queryset.order_by().values_list("_value", flat=True).distinct() if v})
