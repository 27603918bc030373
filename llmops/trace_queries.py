"""What the trace pages read: the list filters, keyset pages, a trace's span tree and the dashboard aggregates.

Lists read the trace table (one row per trace, totals kept by the ingest), never the spans, and walk its
B-tree indexes newest first: `(-start_time)`, `(service, -start_time)`, `(session, -start_time)`,
`(end_user, -start_time)`, `(prompt_version, -start_time)`, the partial index of traces with errors, and the
GIN index on the models a trace used. Pages are keyset pages (`before=<start time>_<id>`): the next page costs
what the first does, however deep. The count is capped (`COUNT_CAP`) so a filter matching millions of traces
is not counted row by row.

Dashboard figures are aggregated by the database in `date_trunc` buckets (hour or day by the window's
length); percentiles with `percentile_cont` on PostgreSQL (SQLite, the development default, has no
percentile aggregate: there the latencies of each bucket are read and ranked here).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django import forms
from django.db import connection
from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, Trunc
from django.utils import timezone

from opsportal.portal.forms import StyledForm

from .models import EndUser, PromptVersion, Score, Session, Span, Trace

UTC = datetime.UTC
PAGE_SIZE = 50
COUNT_CAP = 10_000
# Waterfall and dashboard limits: a trace page shows at most this many spans, a dashboard this many series.
MAX_SPANS = 5_000
TOP_SERIES = 8
WINDOWS = {
    "1h": datetime.timedelta(hours=1),
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
}
WINDOW_CHOICES = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
                  ("all", "Any time")]  # fmt: skip
STATUS_CHOICES = [("", "Any status"), ("ok", "OK"), ("error", "With errors")]


class TraceFilterForm(StyledForm):
    """The traces list's filters; every one is a query-string parameter, so a filtered list is a link."""

    window = forms.ChoiceField(choices=WINDOW_CHOICES, required=False, label="Time")
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    service = forms.CharField(required=False, max_length=200)
    model = forms.CharField(required=False, max_length=200)
    prompt_version = forms.ModelChoiceField(
        queryset=PromptVersion.objects.select_related("prompt").order_by("prompt__name", "-version"),
        required=False, empty_label="Any", label="Prompt version",
    )  # fmt: skip
    user = forms.CharField(required=False, max_length=200, label="User")
    session = forms.CharField(required=False, max_length=200, label="Session")
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    min_latency = forms.FloatField(required=False, min_value=0, label="Latency ≥ (ms)")
    max_latency = forms.FloatField(required=False, min_value=0, label="Latency ≤ (ms)")
    min_cost = forms.DecimalField(required=False, min_value=0, label="Cost ≥ (USD)")
    max_cost = forms.DecimalField(required=False, min_value=0, label="Cost ≤ (USD)")
    score = forms.CharField(required=False, max_length=100, label="Score name")
    min_score = forms.FloatField(required=False, label="Score ≥")
    max_score = forms.FloatField(required=False, label="Score ≤")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt_version"].label_from_instance = lambda v: f"{v.prompt.name} v{v.version}"

    def values(self) -> dict:
        """The cleaned filters (an invalid field counts as not given: the page says which were dropped)."""
        self.is_valid()
        return {name: value for name, value in getattr(self, "cleaned_data", {}).items() if value not in (None, "")}


def window_bounds(values: dict, now: datetime.datetime | None = None) -> tuple[datetime.datetime | None, ...]:
    """The filter's time range: explicit `since`/`until` win over the `window` choice."""
    now = now or timezone.now()
    since, until = values.get("since"), values.get("until")
    window = WINDOWS.get(values.get("window", ""))
    if since is None and window is not None:
        since = (until or now) - window
    return since, until


def filtered_traces(values: dict) -> QuerySet[Trace]:
    """Traces matching the filters. User and session are looked up first, so the trace index on their id is used."""
    traces = Trace.objects.all()
    since, until = window_bounds(values)
    if since is not None:
        traces = traces.filter(start_time__gte=since)
    if until is not None:
        traces = traces.filter(start_time__lte=until)
    if values.get("service"):
        traces = traces.filter(service=values["service"].strip())
    if values.get("model"):
        traces = traces.with_model(values["model"].strip())
    if values.get("prompt_version"):
        traces = traces.filter(prompt_version=values["prompt_version"])
    if values.get("user"):
        end_user = EndUser.objects.filter(external_id=values["user"].strip()).values_list("pk", flat=True).first()
        traces = traces.filter(end_user_id=end_user) if end_user else traces.none()
    if values.get("session"):
        session = Session.objects.filter(key=values["session"].strip()).values_list("pk", flat=True).first()
        traces = traces.filter(session_id=session) if session else traces.none()
    if values.get("status") == "error":
        traces = traces.filter(errors__gt=0)
    elif values.get("status") == "ok":
        traces = traces.filter(errors=0)
    if values.get("min_latency") is not None:
        traces = traces.filter(latency_ms__gte=values["min_latency"])
    if values.get("max_latency") is not None:
        traces = traces.filter(latency_ms__lte=values["max_latency"])
    if values.get("min_cost") is not None:
        traces = traces.filter(cost__gte=values["min_cost"])
    if values.get("max_cost") is not None:
        traces = traces.filter(cost__lte=values["max_cost"])
    if values.get("score"):
        # Traces with a score of that name (the trace's own or one of its spans') in the range given.
        scores = Score.objects.filter(name=values["score"].strip())
        if values.get("min_score") is not None:
            scores = scores.filter(value__gte=values["min_score"])
        if values.get("max_score") is not None:
            scores = scores.filter(value__lte=values["max_score"])
        traces = traces.filter(trace_id__in=scores.values("trace_id"))
    return traces


def encode_cursor(trace: Trace) -> str:
    return f"{trace.start_time.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%f')}_{trace.pk}"


def decode_cursor(text: str) -> tuple[datetime.datetime, int] | None:
    """The (start time, id) a `before=` cursor names; None for one that does not parse (the first page is shown)."""
    stamp, _, pk = (text or "").partition("_")
    try:
        return datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC), int(pk)
    except ValueError:
        return None


@dataclass
class KeysetPage:
    """One page of a list read newest first: its rows, the cursor of the next page, and a capped count."""

    rows: list
    next_cursor: str = ""
    count: int = 0
    count_capped: bool = False
    first: bool = True


def keyset_page(traces: QuerySet[Trace], before: str = "", size: int | None = None) -> KeysetPage:
    """Rows newest first after the cursor, with what a row of the list shows (no query per row)."""
    size = size or PAGE_SIZE
    cursor = decode_cursor(before)
    page = traces.select_related("prompt_version__prompt", "end_user", "session").order_by("-start_time", "-id")
    if cursor is not None:
        start, pk = cursor
        page = page.filter(Q(start_time__lt=start) | Q(start_time=start, id__lt=pk))
    rows = list(page[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    count = traces.order_by()[: COUNT_CAP + 1].count()
    return KeysetPage(
        rows=rows,
        next_cursor=encode_cursor(rows[-1]) if more else "",
        count=min(count, COUNT_CAP),
        count_capped=count > COUNT_CAP,
        first=cursor is None,
    )


def loose_distinct(table: str, column: str, limit: int = 50) -> list[str]:
    """The distinct non-empty values of an indexed column, read by skipping through its index (PostgreSQL).

    A plain `SELECT DISTINCT` reads every row; the recursive form jumps from one value to the next, one index
    probe per value, so listing the services of ten million traces costs as much as listing them of ten.
    """
    if connection.vendor != "postgresql":
        rows = Trace.objects.exclude(**{column: ""}).values_list(column, flat=True).distinct().order_by(column)
        return list(rows[:limit])
    sql = (
        f"WITH RECURSIVE v AS ((SELECT {column} AS value FROM {table} WHERE {column} > '' ORDER BY {column} LIMIT 1) "  # noqa: S608
        f"UNION ALL SELECT (SELECT {column} FROM {table} WHERE {column} > v.value ORDER BY {column} LIMIT 1) "
        f"FROM v WHERE v.value IS NOT NULL) SELECT value FROM v WHERE value IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def known_services() -> list[str]:
    return loose_distinct("llmops_trace", "service")


def known_models() -> list[str]:
    return loose_distinct("llmops_trace", "model")


# --- A trace's spans -------------------------------------------------------------------------------------------

WATERFALL_FIELDS = (
    "id", "start_time", "end_time", "duration_ms", "trace_id", "span_id", "parent_span_id", "name", "kind",
    "service", "status", "operation", "model", "input_tokens", "output_tokens", "cost",
)  # fmt: skip


@dataclass
class WaterfallRow:
    """A span placed in the waterfall: its depth in the tree and its bar (offset and width in % of the trace)."""

    span: Span
    depth: int
    offset_pct: float
    width_pct: float
    offset_ms: float
    children: int = 0


@dataclass
class SpanTree:
    rows: list[WaterfallRow] = field(default_factory=list)
    total_ms: float = 0.0
    truncated: bool = False


def span_tree(trace: Trace, limit: int = MAX_SPANS) -> SpanTree:
    """The trace's spans depth first (children by start time), with their timing bars; one query, no bodies.

    A span whose parent never arrived is shown as a root, so nothing a sender exported is hidden.
    """
    spans = list(trace.span_rows().only(*WATERFALL_FIELDS)[: limit + 1])
    truncated = len(spans) > limit
    spans = spans[:limit]
    if not spans:
        return SpanTree()
    start = min(span.start_time for span in spans)
    end = max(span.end_time for span in spans)
    total_ms = max((end - start).total_seconds() * 1000, 0.001)
    ids = {span.span_id for span in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for span in spans:
        if span.parent_span_id and span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    rows: list[WaterfallRow] = []
    seen: set[int] = set()
    stack = [(span, 0) for span in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.pk in seen:
            continue
        seen.add(span.pk)
        offset_ms = (span.start_time - start).total_seconds() * 1000
        offset = min(100.0, offset_ms / total_ms * 100)
        width = max(0.3, min(100.0 - offset, span.duration_ms / total_ms * 100))
        kids = children.get(span.span_id, [])
        rows.append(WaterfallRow(span, depth, round(offset, 3), round(width, 3), offset_ms, len(kids)))
        stack.extend((child, depth + 1) for child in reversed(kids))
    return SpanTree(rows=rows, total_ms=total_ms, truncated=truncated)


def chosen_span(trace: Trace, span_id: str) -> Span | None:
    """The span the page details: the one asked for, else the first generation, else the root."""
    spans = trace.span_rows()
    if span_id:
        return spans.filter(span_id=span_id).first()
    return spans.exclude(model="").first() or spans.filter(parent_span_id="").first() or spans.first()


# --- Dashboards ------------------------------------------------------------------------------------------------


def bucket_for(since: datetime.datetime | None, until: datetime.datetime | None) -> str:
    """Hourly buckets up to two days, daily beyond."""
    if since is None:
        return "day"
    return "hour" if ((until or timezone.now()) - since) <= datetime.timedelta(days=2) else "day"


@dataclass
class Overview:
    """The dashboard's series, one value per bucket."""

    bucket: str
    buckets: list[datetime.datetime] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    p50: list[float | None] = field(default_factory=list)
    p95: list[float | None] = field(default_factory=list)
    input_tokens: list[int] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    totals: dict = field(default_factory=dict)


def _percentiles(traces: QuerySet[Trace], bucket: str) -> dict[datetime.datetime, tuple[float, float]]:
    if connection.vendor == "postgresql":
        inner = traces.annotate(bucket=Trunc("start_time", bucket, tzinfo=UTC)).values("bucket", "latency_ms")
        sql, params = inner.order_by().query.sql_with_params()
        query = (
            "SELECT t.bucket, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.latency_ms), "  # noqa: S608
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY t.latency_ms) FROM ({sql}) t GROUP BY t.bucket"
        )
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            # The raw query's bucket is the naive UTC time `AT TIME ZONE 'UTC'` gives; the ORM's is aware.
            return {_aware(row[0]): (row[1], row[2]) for row in cursor.fetchall()}
    values: dict[datetime.datetime, list[float]] = defaultdict(list)
    rows = traces.annotate(bucket=Trunc("start_time", bucket, tzinfo=UTC)).values_list("bucket", "latency_ms")
    for when, latency in rows.order_by():
        values[when].append(latency)
    return {when: (_rank(sorted(v), 0.5), _rank(sorted(v), 0.95)) for when, v in values.items()}


def _aware(when: datetime.datetime) -> datetime.datetime:
    return when.replace(tzinfo=UTC) if timezone.is_naive(when) else when


def _rank(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont does."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def overview(traces: QuerySet[Trace], bucket: str) -> Overview:
    """Requests, errors, latency percentiles, tokens and cost per time bucket (grouped by the database)."""
    grouped = (
        traces.annotate(bucket=Trunc("start_time", bucket, tzinfo=UTC))
        .values("bucket")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(errors__gt=0)),
            input_tokens=Coalesce(Sum("input_tokens"), 0),
            output_tokens=Coalesce(Sum("output_tokens"), 0),
            cost=Coalesce(Sum("cost"), Decimal(0)),
        )
        .order_by("bucket")
    )
    rows = list(grouped)
    percentiles = _percentiles(traces, bucket) if rows else {}
    result = Overview(bucket=bucket)
    for row in rows:
        result.buckets.append(row["bucket"])
        result.requests.append(row["requests"])
        result.errors.append(row["errors"])
        p50, p95 = percentiles.get(_aware(row["bucket"]), (None, None))
        result.p50.append(p50)
        result.p95.append(p95)
        result.input_tokens.append(int(row["input_tokens"]))
        result.output_tokens.append(int(row["output_tokens"]))
        result.cost.append(float(row["cost"]))
    requests = sum(result.requests)
    result.totals = {
        "requests": requests,
        "errors": sum(result.errors),
        "error_rate": sum(result.errors) / requests if requests else None,
        "input_tokens": sum(result.input_tokens),
        "output_tokens": sum(result.output_tokens),
        "cost": sum(result.cost),
    }
    return result


@dataclass
class Breakdown:
    """Cost (and requests) per bucket for the top values of one dimension; the rest summed as "other"."""

    buckets: list[datetime.datetime]
    series: dict[str, list[float]]


def _breakdown(rows: list[dict], key: str, metric: str, label=str) -> Breakdown:
    totals: dict[object, float] = defaultdict(float)
    for row in rows:
        totals[row[key]] += float(row[metric] or 0)
    top = [value for value, _ in sorted(totals.items(), key=lambda item: -item[1])[:TOP_SERIES]]
    buckets = sorted({row["bucket"] for row in rows})
    index = {when: i for i, when in enumerate(buckets)}
    series: dict[str, list[float]] = {}
    for row in rows:
        name = label(row) if row[key] in top else "other"
        values = series.setdefault(name, [0.0] * len(buckets))
        values[index[row["bucket"]]] += float(row[metric] or 0)
    return Breakdown(buckets=buckets, series=series)


def cost_by_model(
    traces: QuerySet[Trace], values: dict, since: datetime.datetime | None, until: datetime.datetime | None, bucket: str
) -> Breakdown:
    """Cost per model per bucket.

    Filtered by time only, it is summed from the generations themselves (a trace may use several models;
    only the window's span partitions are read, through the partial index of generations by model). With
    other filters it is summed from the matching traces, each under its first generation's model.
    """
    if set(values) - {"window", "since", "until"}:
        rows = list(
            traces.exclude(model="")
            .annotate(bucket=Trunc("start_time", bucket, tzinfo=UTC))
            .values("bucket", "model")
            .annotate(total=Coalesce(Sum("cost"), Decimal(0)))
            .order_by("bucket")
        )
        return _breakdown(rows, "model", "total", label=lambda row: row["model"])
    spans = Span.objects.exclude(model="")
    if since is not None:
        spans = spans.filter(start_time__gte=since)
    if until is not None:
        spans = spans.filter(start_time__lte=until)
    rows = list(
        spans.annotate(bucket=Trunc("start_time", bucket, tzinfo=UTC))
        .values("bucket", "model")
        .annotate(total=Coalesce(Sum("cost"), Decimal(0)))
        .order_by("bucket")
    )
    return _breakdown(rows, "model", "total", label=lambda row: row["model"])


def cost_by_prompt_version(traces: QuerySet[Trace], bucket: str) -> Breakdown:
    rows = list(
        traces.filter(prompt_version__isnull=False)
        .annotate(
            bucket=Trunc("start_time", bucket, tzinfo=UTC),
            prompt=F("prompt_version__prompt__name"),
            number=F("prompt_version__version"),
        )
        .values("bucket", "prompt_version", "prompt", "number")
        .annotate(total=Coalesce(Sum("cost"), Decimal(0)))
        .order_by("bucket")
    )
    return _breakdown(rows, "prompt_version", "total", label=lambda row: f"{row['prompt']} v{row['number']}")


def cost_by_user(traces: QuerySet[Trace], bucket: str) -> Breakdown:
    rows = list(
        traces.filter(end_user__isnull=False)
        .annotate(bucket=Trunc("start_time", bucket, tzinfo=UTC), user=F("end_user__external_id"))
        .values("bucket", "end_user", "user")
        .annotate(total=Coalesce(Sum("cost"), Decimal(0)))
        .order_by("bucket")
    )
    return _breakdown(rows, "end_user", "total", label=lambda row: row["user"])


@dataclass
class ProductionQuality:
    """A prompt version in production: its traces' requests, error rate, latency and cost."""

    requests: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    cost: float
    input_tokens: int
    output_tokens: int
    first_seen: datetime.datetime | None
    last_seen: datetime.datetime | None
    scores: list[dict] = field(default_factory=list)


def known_score_names() -> list[str]:
    return list(Score.objects.values_list("name", flat=True).distinct().order_by("name")[:50])


def production_quality(version: PromptVersion, since: datetime.datetime | None = None) -> ProductionQuality:
    """Totals of the traces linked to `version` (through the trace index on the prompt version)."""
    traces = Trace.objects.filter(prompt_version=version)
    if since is not None:
        traces = traces.filter(start_time__gte=since)
    totals = traces.aggregate(
        requests=Count("id"),
        errors=Count("id", filter=Q(errors__gt=0)),
        cost=Coalesce(Sum("cost"), Decimal(0)),
        input_tokens=Coalesce(Sum("input_tokens"), 0),
        output_tokens=Coalesce(Sum("output_tokens"), 0),
    )
    p50 = p95 = first = last = None
    if totals["requests"]:
        if connection.vendor == "postgresql":
            sql, params = traces.values("latency_ms").order_by().query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t.latency_ms), "  # noqa: S608
                    f"percentile_cont(0.95) WITHIN GROUP (ORDER BY t.latency_ms) FROM ({sql}) t",
                    params,
                )
                p50, p95 = cursor.fetchone()
        else:
            ordered = sorted(traces.values_list("latency_ms", flat=True))
            p50, p95 = _rank(ordered, 0.5), _rank(ordered, 0.95)
        first = traces.order_by("start_time").values_list("start_time", flat=True).first()
        last = traces.order_by("-start_time").values_list("start_time", flat=True).first()
    return ProductionQuality(
        requests=totals["requests"],
        errors=totals["errors"],
        error_rate=totals["errors"] / totals["requests"] if totals["requests"] else None,
        p50_ms=p50,
        p95_ms=p95,
        cost=float(totals["cost"]),
        input_tokens=int(totals["input_tokens"]),
        output_tokens=int(totals["output_tokens"]),
        first_seen=first,
        last_seen=last,
        scores=list(
            Score.objects.filter(prompt_version=version, **({"created_at__gte": since} if since else {}))
            .values("name", "source")
            .annotate(count=Count("id"), mean=Avg("value"), passed=Count("id", filter=Q(passed=True)))
            .order_by("name", "source")
        ),
    )
