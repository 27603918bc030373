"""The value of a monitor's metric over its window, computed by the database.

Every query bounds the span table by `start_time` (its partition key), so PostgreSQL reads only the
partitions of the window; the aggregates run in SQL (counts, sums and, on PostgreSQL,
`percentile_cont`), never over rows fetched into Python.

- error rate: the share of traces with a span of the scope in the window that have an ERROR span
  among those spans (service, model and prompt version narrow the spans).
- p95 latency: of the scope's generations when a model or prompt version is set, else of root spans
  (the requests), in ms.
- cost per hour / per day: the scope's span cost in the window, scaled to one hour or one day.
- guard violation rate: guard calls (of the policy, if set) with at least one violation.
- evaluation pass rate: scores with a verdict (of the name, model and prompt version, if set) that passed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import connection
from django.db.models import Case, Count, IntegerField, Max, Q, QuerySet, Sum, Value, When

from ..models import GuardCall, LLMMonitor, Score, Span

Metric = LLMMonitor.Metric


@dataclass(frozen=True)
class Measurement:
    """A metric's value over a window (None: nothing to measure) and how many samples it rests on."""

    value: float | None
    samples: int


def window(monitor: LLMMonitor, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    return now - datetime.timedelta(minutes=monitor.window_minutes), now


def scoped_spans(monitor: LLMMonitor, since: datetime.datetime, until: datetime.datetime) -> QuerySet[Span]:
    """The scope's spans started in [since, until): the range is on the partition key."""
    spans = Span.objects.filter(start_time__gte=since, start_time__lt=until)
    if monitor.service:
        spans = spans.filter(service=monitor.service)
    if monitor.model:
        spans = spans.filter(model=monitor.model)
    if monitor.prompt_version_id:
        spans = spans.filter(prompt_version_id=monitor.prompt_version_id)
    return spans.order_by()


def measure(monitor: LLMMonitor, now: datetime.datetime) -> Measurement:
    """The monitor's metric over the window ending at `now`."""
    since, until = window(monitor, now)
    measure_metric = {
        Metric.ERROR_RATE: _error_rate,
        Metric.P95_LATENCY: _p95_latency,
        Metric.COST_PER_HOUR: _cost,
        Metric.COST_PER_DAY: _cost,
        Metric.GUARD_VIOLATION_RATE: _guard_violation_rate,
        Metric.EVAL_PASS_RATE: _eval_pass_rate,
    }[monitor.metric]
    return measure_metric(monitor, since, until)


def _ratio(part: int, whole: int) -> Measurement:
    return Measurement(value=part / whole if whole else None, samples=whole)


def _error_rate(monitor: LLMMonitor, since: datetime.datetime, until: datetime.datetime) -> Measurement:
    failed = Case(When(status=Span.Status.ERROR, then=Value(1)), default=Value(0), output_field=IntegerField())
    per_trace = scoped_spans(monitor, since, until).values("trace_id").annotate(trace_failed=Max(failed))
    figures = per_trace.aggregate(traces=Count("trace_id"), failed=Sum("trace_failed"))
    return _ratio(figures["failed"] or 0, figures["traces"] or 0)


def _p95_latency(monitor: LLMMonitor, since: datetime.datetime, until: datetime.datetime) -> Measurement:
    spans = scoped_spans(monitor, since, until)
    spans = spans.exclude(model="") if monitor.model or monitor.prompt_version_id else spans.filter(parent_span_id="")
    if connection.vendor == "postgresql":
        sql, params = spans.values("duration_ms").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) "  # noqa: S608
                f"FROM ({sql}) t",
                params,
            )
            count, value = cursor.fetchone()
        return Measurement(value=value, samples=count)
    # SQLite has no percentile: the two closest ranks are read by offset, interpolated as percentile_cont does.
    count = spans.count()
    if not count:
        return Measurement(value=None, samples=0)
    position = (count - 1) * 0.95
    low = int(position)
    ordered = spans.order_by("duration_ms").values_list("duration_ms", flat=True)
    pair = list(ordered[low : low + 2])
    high = pair[-1]
    return Measurement(value=pair[0] + (high - pair[0]) * (position - low), samples=count)


def _cost(monitor: LLMMonitor, since: datetime.datetime, until: datetime.datetime) -> Measurement:
    figures = scoped_spans(monitor, since, until).aggregate(spend=Sum("cost"), priced=Count("cost"))
    period_minutes = 60 if monitor.metric == Metric.COST_PER_HOUR else 24 * 60
    total = float(figures["spend"] or 0)
    return Measurement(value=total * period_minutes / monitor.window_minutes, samples=figures["priced"])


def _guard_violation_rate(monitor: LLMMonitor, since: datetime.datetime, until: datetime.datetime) -> Measurement:
    calls = GuardCall.objects.filter(at__gte=since, at__lt=until)
    if monitor.guard_policy_id:
        calls = calls.filter(policy_id=monitor.guard_policy_id)
    total, violating = calls.order_by().violation_rate()
    return _ratio(violating, total)


def _eval_pass_rate(monitor: LLMMonitor, since: datetime.datetime, until: datetime.datetime) -> Measurement:
    scores = Score.objects.filter(created_at__gte=since, created_at__lt=until, passed__isnull=False)
    if monitor.score_name:
        scores = scores.filter(name=monitor.score_name)
    if monitor.model:
        scores = scores.filter(model=monitor.model)
    if monitor.prompt_version_id:
        scores = scores.filter(prompt_version_id=monitor.prompt_version_id)
    figures = scores.order_by().aggregate(total=Count("id"), passed=Count("id", filter=Q(passed=True)))
    return _ratio(figures["passed"], figures["total"])


def applies(metric: str) -> set[str]:
    """The scope fields a metric reads (the others are refused when a monitor is saved)."""
    if metric == Metric.GUARD_VIOLATION_RATE:
        return {"guard_policy"}
    if metric == Metric.EVAL_PASS_RATE:
        return {"score_name", "model", "prompt_version"}
    return {"service", "model", "prompt_version"}
