"""Logs: ingest (decode, mine, store, count), search, patterns, bursts and retention.

`ingest_logs` runs in the request: the whole batch is decoded and validated first (a bad record is a
400 naming it, nothing stored), then, in one transaction committed before the sender's 2xx, every
record gets its template id (aiops.logs.mining), the records are written with COPY, the templates'
counters and per-minute buckets move, and a template seen at error level for the first time raises
its alert. `evaluate_log_templates` (every minute, in the worker) turns closed minutes into the metric
series `log_template_records{service, template_id}`, and raises or resolves error bursts
(aiops.logs.bursts says how they are found).
"""

from __future__ import annotations

import datetime
import hmac
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Greatest, Least
from django.urls import reverse
from django.utils import timezone

from opsportal.accounts.models import hash_token
from opsportal.bulk import binary_execute
from opsportal.errors import InvalidInput

from ..logs import bursts, mining, store
from ..logs.decode import Batch, ParsedRecord, iter_attributes_filters, severity_from_word
from ..metrics.store import series_key, write_samples
from ..models import (
    LOG_SEVERITIES,
    LOG_SEVERITY_RANK,
    Integration,
    LogRecord,
    LogTemplate,
    LogTemplateBucket,
)
from .alerts import raise_alert

UTC = datetime.UTC
METRIC_NAME = "log_template_records"
ALERT_SOURCE = "logs"
ERROR_RANK = LOG_SEVERITY_RANK["error"]
# How far back the minute task looks for minutes it has not folded yet (a worker that was down longer
# starts afresh from here).
CATCH_UP_MINUTES = 60
DURATION = re.compile(r"(\d+)\s*([smhd])")


# --- Ingest --------------------------------------------------------------------------------------------------


def logs_integration(raw_token: str) -> Integration | None:
    """The enabled `logs` integration whose token this is (looked up by its hash, compared in constant time)."""
    digest = hash_token(raw_token)
    integration = Integration.objects.filter(token_hash=digest, kind=Integration.Kind.LOGS).first()
    if integration is None or not integration.enabled or not hmac.compare_digest(integration.token_hash, digest):
        return None
    return integration


@dataclass
class LogIngestResult:
    """What a push did: records stored, records refused (time outside retention), templates created."""

    accepted: int = 0
    rejected: int = 0
    new_templates: int = 0
    rejected_reason: str = ""


@dataclass
class _TemplateBatch:
    count: int = 0
    first: datetime.datetime | None = None
    last: datetime.datetime | None = None
    rank: int = 0
    minutes: Counter = field(default_factory=Counter)


def ingest_logs(*, integration: Integration, batch: Batch) -> LogIngestResult:
    """Store a decoded batch (committed when this returns); records past retention or an hour ahead are refused."""
    now = timezone.now()
    oldest, newest = store.accepted_window(now)
    records = [r for r in batch.records if oldest <= r.time < newest]
    result = LogIngestResult(accepted=len(records), rejected=len(batch.records) - len(records))
    if result.rejected:
        result.rejected_reason = (
            f"{result.rejected} records had a time older than the {settings.LOGS_RETENTION_DAYS}-day retention "
            "or more than an hour ahead."
        )
    if not records:
        return result
    by_service: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        by_service[record.service].append(index)
    template_ids = [0] * len(records)
    with transaction.atomic():
        versions = mining.stored_versions(list(by_service))
        infos: dict[int, mining.TemplateInfo] = {}
        created: set[int] = set()
        for service in sorted(by_service):  # one lock order for every process
            indexes = by_service[service]
            mined = mining.mine(service, [records[i].body for i in indexes], versions.get(service))
            for index, template_id in zip(indexes, mined.template_ids, strict=True):
                template_ids[index] = template_id
            infos.update(mined.templates)
            created |= mined.created
        counts = _BatchCounts(records, template_ids)
        store.write_records(records, template_ids, each_chunk=counts.add)
        counts.save()
        _alert_new_error_templates(records, template_ids, infos)
        if integration.last_delivery_at is None or (now - integration.last_delivery_at).total_seconds() > 10:
            Integration.objects.filter(pk=integration.pk).update(last_delivery_at=now)
    result.new_templates = len(created)
    return result


class _BatchCounts:
    """Each template's records in a batch (count, first/last time, highest severity, per minute), added up
    chunk by chunk while the chunks' COPY runs (`add`), then written in two statements (`save`)."""

    def __init__(self, records: Sequence[ParsedRecord], template_ids: Sequence[int]) -> None:
        self.records = records
        self.template_ids = template_ids
        self.per: dict[int, _TemplateBatch] = defaultdict(_TemplateBatch)

    def add(self, start: int, end: int) -> None:
        per = self.per
        ranks = LOG_SEVERITY_RANK
        for record, template_id in zip(self.records[start:end], self.template_ids[start:end], strict=True):
            entry = per[template_id]
            entry.count += 1
            at = record.time
            if entry.first is None or at < entry.first:
                entry.first = at
            if entry.last is None or at > entry.last:
                entry.last = at
            rank = ranks[record.severity]
            if rank > entry.rank:
                entry.rank = rank
            entry.minutes[at.replace(second=0, microsecond=0)] += 1

    def save(self) -> None:
        _save_counts(self.per)


def _save_counts(per: dict[int, _TemplateBatch]) -> None:
    """Move each template's counters (count, first/last seen, highest severity) and its per-minute buckets."""
    ids = sorted(per)
    if connection.vendor == "postgresql":
        # One statement for every template of the batch (ids sorted: one lock order for every process).
        binary_execute(
            "UPDATE aiops_logtemplate AS t SET count = t.count + v.n, first_seen = LEAST(t.first_seen, v.first), "
            "last_seen = GREATEST(t.last_seen, v.last), severity = CASE WHEN v.rank > "
            "array_position(%s::text[], t.severity) - 1 THEN (%s::text[])[v.rank + 1] ELSE t.severity END "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::int[]) "
            "AS v(id, n, first, last, rank) WHERE t.id = v.id",
            [list(LOG_SEVERITIES), list(LOG_SEVERITIES), ids, [per[i].count for i in ids],
             [per[i].first for i in ids], [per[i].last for i in ids], [per[i].rank for i in ids]],
        )  # fmt: skip
        rows = [(i, minute, n) for i in ids for minute, n in per[i].minutes.items()]
        binary_execute(
            "INSERT INTO aiops_logtemplatebucket (template_id, minute, count) "
            "SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[]) "
            "ON CONFLICT (template_id, minute) DO UPDATE SET count = aiops_logtemplatebucket.count + excluded.count",
            [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
        )
        return
    for template_id in ids:
        entry = per[template_id]
        severity = LOG_SEVERITIES[entry.rank]
        LogTemplate.objects.filter(pk=template_id).update(
            count=F("count") + entry.count,
            first_seen=Least(F("first_seen"), Value(entry.first)),
            last_seen=Greatest(F("last_seen"), Value(entry.last)),
            severity=Case(When(severity__in=LOG_SEVERITIES[: entry.rank], then=Value(severity)), default=F("severity")),
        )
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO aiops_logtemplatebucket (template_id, minute, count) VALUES (%s, %s, %s) "
            "ON CONFLICT (template_id, minute) DO UPDATE SET count = aiops_logtemplatebucket.count + excluded.count",
            [(i, minute, n) for i in ids for minute, n in per[i].minutes.items()],
        )


def records_url(*, template_id: int | None = None, service: str = "", severity: str = "", since: str = "") -> str:
    """The log search page for these filters, as an absolute URL (alert links must be web links)."""
    params = {
        key: value
        for key, value in (("template", template_id or ""), ("service", service), ("severity", severity),
                           ("since", since))
        if value
    }  # fmt: skip
    return f"{settings.OPSPORTAL_BASE_URL}{reverse('aiops:logs')}?{urlencode(params)}"


def _alert_new_error_templates(
    records: Sequence[ParsedRecord], template_ids: Sequence[int], infos: Mapping[int, mining.TemplateInfo]
) -> None:
    """A template seen at error level or above for the first time raises its alert (once; any process)."""
    first_error: dict[int, ParsedRecord] = {}
    for record, template_id in zip(records, template_ids, strict=True):
        if (
            LOG_SEVERITY_RANK[record.severity] >= ERROR_RANK
            and template_id not in first_error
            and not infos[template_id].error_alerted
        ):
            first_error[template_id] = record
    for template_id, record in sorted(first_error.items()):
        info = infos[template_id]
        claimed = LogTemplate.objects.filter(pk=template_id, error_alerted_at__isnull=True).update(
            error_alerted_at=timezone.now()
        )
        info.error_alerted = True
        if not claimed:
            continue
        since = (record.time - datetime.timedelta(minutes=5)).isoformat()
        raise_alert(
            source=ALERT_SOURCE,
            dedup_key=f"log-template:{template_id}",
            title=f"New error log pattern in {record.service}: {info.template[:150]}",
            severity="critical" if record.severity == "critical" else "error",
            service=record.service,
            description=(
                f"A log pattern never seen at error level before appeared in {record.service}.\n\n"
                f"Pattern: {info.template[:1000]}\nFirst record: {record.body[:1000]}"
            ),
            labels={"alertname": "NewErrorLogPattern", "service": record.service, "template_id": str(template_id)},
            annotations={"template": info.template[:2000]},
            links=[{"href": records_url(template_id=template_id, since=since), "text": "Matching log records"}],
        )


# --- Search --------------------------------------------------------------------------------------------------


def parse_when(value: str, *, field: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """An ISO 8601 time, a Unix time in seconds, or a duration back from now ("15m", "2h", "7d")."""
    value = value.strip()
    now = now or timezone.now()
    if match := DURATION.fullmatch(value):
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - datetime.timedelta(**{unit: int(match.group(1))})
    try:
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return datetime.datetime.fromtimestamp(float(value), UTC)
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(
            f"{value!r} is not a time (ISO 8601, Unix seconds, or like 15m, 2h, 7d).", field=field
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def text_filter(queryset: QuerySet, q: str) -> QuerySet:
    """Records whose body has every word of `q`: PostgreSQL full-text search (the GIN index of
    to_tsvector('simple', body)); SQLite: a LIKE per word."""
    q = q.strip()
    if not q:
        return queryset
    if connection.vendor == "postgresql":
        return queryset.extra(where=["to_tsvector('simple', body) @@ plainto_tsquery('simple', %s)"], params=[q])
    for word in q.split():
        queryset = queryset.filter(body__icontains=word)
    return queryset


def search_records(params: Mapping[str, str]) -> QuerySet[LogRecord]:
    """Records matching the filters `q`, `service`, `severity` (any case, comma-separated), `template`,
    `since`, `until`, `trace_id` and `attr.<key>=<value>`; newest first. Bad values raise InvalidInput."""
    queryset = LogRecord.objects.all()
    now = timezone.now()
    if service := params.get("service", "").strip():
        queryset = queryset.filter(service=service)
    if severity := params.get("severity", "").strip():
        wanted = []
        for word in severity.split(","):
            found = severity_from_word(word)
            if found is None:
                raise InvalidInput(f"{word!r}: one of {', '.join(LOG_SEVERITIES)}.", field="severity")
            wanted.append(found)
        queryset = queryset.filter(severity__in=wanted)
    if template := params.get("template", "").strip():
        if not template.isdigit():
            raise InvalidInput("a template id.", field="template")
        queryset = queryset.filter(template_id=int(template))
    if trace := params.get("trace_id", "").strip():
        queryset = queryset.filter(trace_id=trace.lower())
    if since := params.get("since", "").strip():
        queryset = queryset.filter(time__gte=parse_when(since, field="since", now=now))
    if until := params.get("until", "").strip():
        queryset = queryset.filter(time__lt=parse_when(until, field="until", now=now))
    for key, value in iter_attributes_filters(params):
        if connection.vendor == "postgresql":
            queryset = queryset.filter(attributes__contains={key: value})
        else:
            queryset = queryset.filter(**{f"attributes__{key}": value})
    return text_filter(queryset, params.get("q", "")).order_by("-time", "-id")


def services_with_logs() -> list[str]:
    """Services that have templates (the search page's choices): from the small template table."""
    return list(LogTemplate.objects.order_by("service").values_list("service", flat=True).distinct())


def neighbours(record: LogRecord, *, each_side: int = 10) -> tuple[list[LogRecord], list[LogRecord]]:
    """The same service's records just before and just after this one (oldest first in both)."""
    same = LogRecord.objects.filter(service=record.service)
    window = datetime.timedelta(hours=1)
    before = list(
        same.filter(
            Q(time__lt=record.time) | Q(time=record.time, id__lt=record.id), time__gte=record.time - window
        ).order_by("-time", "-id")[:each_side]
    )[::-1]
    after = list(
        same.filter(
            Q(time__gt=record.time) | Q(time=record.time, id__gt=record.id), time__lte=record.time + window
        ).order_by("time", "id")[:each_side]
    )
    return before, after


# --- Patterns ------------------------------------------------------------------------------------------------


@dataclass
class Pattern:
    """A template on the patterns page: its row, per-minute counts for the sparkline, samples, newness."""

    template: LogTemplate
    minutes: list[datetime.datetime]
    counts: list[int]
    samples: list[LogRecord]
    is_new: bool
    bursting: bool


NEW_FOR = datetime.timedelta(hours=24)


def patterns(*, service: str = "", hours: int = 24, limit: int = 100, samples: int = 3) -> list[Pattern]:
    """The templates seen in the last `hours` (one service, or all), busiest first, with their sparklines.

    "New" means first seen within the last 24 hours. Three queries: templates, buckets, samples.
    """
    now = timezone.now()
    start = (now - datetime.timedelta(hours=hours)).replace(second=0, microsecond=0)
    templates = LogTemplate.objects.filter(last_seen__gte=start)
    if service:
        templates = templates.filter(service=service)
    rows = list(templates.order_by("-count", "id")[:limit])
    ids = [row.id for row in rows]
    step = max(1, hours * 60 // 120)  # at most ~120 points a sparkline
    series: dict[int, Counter] = defaultdict(Counter)
    for template_id, minute, count in LogTemplateBucket.objects.filter(
        template_id__in=ids, minute__gte=start
    ).values_list("template_id", "minute", "count"):
        offset = int((minute - start).total_seconds() // 60) // step
        series[template_id][offset] += count
    points = hours * 60 // step + 1
    axis = [start + datetime.timedelta(minutes=i * step) for i in range(points)]
    sampled: dict[int, list[LogRecord]] = defaultdict(list)
    if ids and samples:
        sampled = _samples(ids, samples, start)
    return [
        Pattern(
            template=row,
            minutes=axis,
            counts=[series[row.id].get(i, 0) for i in range(points)],
            samples=sampled.get(row.id, []),
            is_new=row.first_seen >= now - NEW_FOR,
            bursting=row.bursting_since is not None,
        )
        for row in rows
    ]


def _samples(ids: list[int], each: int, start: datetime.datetime) -> dict[int, list[LogRecord]]:
    """The latest `each` records of every template, in one query (a window function per template)."""
    found: dict[int, list[LogRecord]] = defaultdict(list)
    table = LogRecord._meta.db_table
    columns = "id, time, service, severity, body, attributes, trace_id, span_id, template_id"
    sql = (
        f"SELECT {columns} FROM (SELECT {columns}, row_number() OVER (PARTITION BY template_id "  # noqa: S608
        f"ORDER BY time DESC, id DESC) AS n FROM {table} WHERE template_id IN ({', '.join(['%s'] * len(ids))}) "
        "AND time >= %s) ranked WHERE n <= %s"
    )
    for record in LogRecord.objects.raw(sql, [*ids, start, each]):
        found[record.template_id].append(record)
    return found


# --- Minute task: metric series and bursts --------------------------------------------------------------------


@dataclass
class TemplateEvaluation:
    """What one run of `evaluate_log_templates` did."""

    minutes: int = 0
    samples: int = 0
    bursts: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def evaluate_log_templates(now: datetime.datetime | None = None) -> TemplateEvaluation:
    """Fold each template's closed minutes into its baseline, write them as metric samples, and alert on bursts.

    A minute is closed once the next one has begun; each template keeps `baseline_until`, the last
    minute folded, so a run never counts a minute twice and a missed run is caught up (up to
    `CATCH_UP_MINUTES`). Minutes without records are written as 0, so the series has no gaps.
    """
    now = now or timezone.now()
    current = now.replace(second=0, microsecond=0)
    earliest = current - datetime.timedelta(minutes=CATCH_UP_MINUTES)
    done = TemplateEvaluation()
    templates = list(
        LogTemplate.objects.filter(last_seen__gte=earliest - datetime.timedelta(minutes=1)).order_by("id")
    ) + list(LogTemplate.objects.filter(bursting_since__isnull=False, last_seen__lt=earliest).order_by("id"))
    if not templates:
        return done
    counts: dict[int, dict[datetime.datetime, int]] = defaultdict(dict)
    for template_id, minute, count in LogTemplateBucket.objects.filter(
        template_id__in=[t.id for t in templates], minute__gte=earliest, minute__lt=current
    ).values_list("template_id", "minute", "count"):
        counts[template_id][minute] = count
    samples: list[tuple] = []
    with transaction.atomic():
        for template in templates:
            start = (
                earliest if template.baseline_until is None else template.baseline_until + datetime.timedelta(minutes=1)
            )
            start = max(start, earliest, template.first_seen.replace(second=0, microsecond=0))
            minute = start
            baseline = template.baseline_rate
            burst_minute = None
            last_burst = template.bursting_since
            key = series_key(METRIC_NAME, {"service": template.service, "template_id": str(template.id)})
            while minute < current:
                n = counts[template.id].get(minute, 0)
                if LOG_SEVERITY_RANK.get(template.severity, 0) >= ERROR_RANK and bursts.is_burst(n, baseline):
                    burst_minute = minute
                    last_burst = minute
                baseline = bursts.fold(baseline, n)
                samples.append((key, minute.timestamp() + 59, float(n)))
                done.minutes += 1
                minute += datetime.timedelta(minutes=1)
            if minute == start and template.bursting_since is None:
                continue
            update = {"baseline_rate": baseline, "baseline_until": minute - datetime.timedelta(minutes=1)}
            if burst_minute is not None:
                if template.bursting_since is None:
                    update["bursting_since"] = burst_minute
                    done.bursts.append(template.id)
                _raise_burst(template, burst_minute, counts[template.id].get(burst_minute, 0), baseline)
            elif template.bursting_since is not None:
                quiet_since = max(last_burst or template.bursting_since, template.bursting_since)
                if current - quiet_since > datetime.timedelta(minutes=bursts.BURST_QUIET_MINUTES):
                    update["bursting_since"] = None
                    done.resolved.append(template.id)
                    raise_alert(source=ALERT_SOURCE, dedup_key=f"log-burst:{template.id}", resolve=True)
            LogTemplate.objects.filter(pk=template.pk).update(**update)
        if samples:
            done.samples = write_samples(samples, kinds={s[0]: "gauge" for s in samples}, now=now).samples
    return done


def _raise_burst(template: LogTemplate, minute: datetime.datetime, count: int, baseline: float) -> None:
    since = (minute - datetime.timedelta(minutes=10)).isoformat()
    raise_alert(
        source=ALERT_SOURCE,
        dedup_key=f"log-burst:{template.id}",
        title=f"Error burst in {template.service}: {template.template[:150]}",
        severity="critical" if template.severity == "critical" else "error",
        service=template.service,
        description=(
            f"{count} records of this pattern in the minute from {minute:%H:%M} UTC, against a baseline of "
            f"{baseline:.1f} per minute (Poisson tail below {bursts.BURST_P_VALUE:g}).\n\n"
            f"Pattern: {template.template[:1000]}"
        ),
        labels={"alertname": "LogErrorBurst", "service": template.service, "template_id": str(template.id)},
        annotations={"template": template.template[:2000], "records_per_minute": str(count)},
        links=[{"href": records_url(template_id=template.id, since=since), "text": "Matching log records"}],
    )


def maintain_log_storage(now: datetime.datetime | None = None) -> store.Maintenance:
    """Partitions ahead, and the days past LOGS_RETENTION_DAYS dropped with their per-minute counts.

    Templates stay (a row each, and the miners' state still holds their clusters): a pattern that comes
    back after a quiet month keeps its id and is not new.
    """
    return store.maintain(now)


# --- Incident context ----------------------------------------------------------------------------------------


@dataclass
class LogContextItem:
    """A pattern of the incident's service that was new or bursting around its start."""

    template: LogTemplate
    reason: str  # "new" or "burst"
    url: str


def log_context(
    *, service: str, since: datetime.datetime, until: datetime.datetime, limit: int = 20
) -> list[LogContextItem]:
    """The service's templates first seen, or starting to burst, in [since, until]: bursts first, then by
    severity (error patterns before info ones); each with a link to its records from `since` on."""
    if not service:
        return []
    when = since.isoformat()
    bursting = LogTemplate.objects.filter(service=service, bursting_since__gte=since, bursting_since__lte=until)
    new = LogTemplate.objects.filter(service=service, first_seen__gte=since, first_seen__lte=until)
    items: dict[int, LogContextItem] = {}
    for reason, queryset in (("burst", bursting.order_by("bursting_since")), ("new", new.order_by("first_seen"))):
        for template in queryset[:limit]:
            items.setdefault(
                template.id, LogContextItem(template, reason, records_url(template_id=template.id, since=when))
            )
    ordered = sorted(
        items.values(), key=lambda item: (item.reason != "burst", -LOG_SEVERITY_RANK.get(item.template.severity, 0))
    )
    return ordered[:limit]
