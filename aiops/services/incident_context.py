"""The troubleshooting context of an incident: what else went wrong or changed around its start.

The context panel on the incident page (and `GET /api/v1/aiops/incidents/<id>/context/`) shows a list
of `ContextItem`s, assembled by the functions in `PROVIDERS` and stored in `IncidentContext` (one row
per incident): when the incident opens or reopens (`process_pending_alerts` queues one task per batch
after commit), every `REFRESH_EVERY` while it is open (`aiops.tasks.refresh_incident_contexts`, which
also takes any open incident still without a context, e.g. when the broker was down), and when someone
views the incident and the stored context is older than `STALE_AFTER` (the panel loads with htmx).

A provider is a plain function `(incident, start, end) -> list[ContextItem]`: the items of its kind
found in the window [start, end] (see `context_window`). It queries only what it needs (no N+1) and
returns at most `MAX_ITEMS_PER_PROVIDER` items, the most relevant first. To add a kind of context,
write such a function in its own module and add it to `PROVIDERS` (one line), and its section title
to `KIND_LABELS` (one line; where it goes there is where the section shows). A provider that raises
is logged and left out, the others still show. `log_patterns` below is one (over aiops.services.logs).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import Truncator

from opsportal.enqueue import enqueue_on_commit
from opsportal.portal.changes import changes_between

from ..models import Alert, Anomaly, AnomalyMonitor, Check, CheckOutage, Incident, IncidentContext, Series
from . import logs as log_services

logger = logging.getLogger(__name__)

# How far before the incident opened the context looks, and how long after (for a resolved incident;
# an open one looks up to now).
LOOKBACK = datetime.timedelta(minutes=60)
LOOKAHEAD = datetime.timedelta(minutes=30)
# A stored context older than this is refreshed when someone views the incident.
STALE_AFTER = datetime.timedelta(minutes=1)
# Open incidents' contexts are refreshed by the periodic task when older than this.
REFRESH_EVERY = datetime.timedelta(minutes=2)
MAX_ITEMS_PER_PROVIDER = 20
# A log record's severity as the panel's badges show it.
LOG_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info", "debug": "info"}

# The panel's sections, in this order, each shown even when empty ("none found"); an item of another kind
# gets a section after these, titled after its kind.
KIND_LABELS = {
    "log_pattern": "Log patterns",
    "anomaly": "Anomalies",
    "check": "Checks down",
    "change": "Recent changes",
}


@dataclass(frozen=True)
class ContextItem:
    """One thing in an incident's context.

    - `kind`: its section ("anomaly", "check", "change", "log_pattern" ...);
    - `title`: one line saying what it is; `detail`: a second, shorter line (may be "");
    - `at`: when it happened (started, went down, was changed);
    - `url`: the page it came from (a path or an absolute URL);
    - `severity`: "critical", "error", "warning" or "info".
    """

    kind: str
    title: str
    detail: str
    at: datetime.datetime
    url: str
    severity: str = "info"

    def to_json(self) -> dict:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict) -> ContextItem:
        return cls(**{**data, "at": parse_datetime(data["at"])})


Provider = Callable[[Incident, datetime.datetime, datetime.datetime], list[ContextItem]]


def context_window(
    incident: Incident, *, now: datetime.datetime | None = None
) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end] the context looks at: from LOOKBACK before the incident opened until now while it is
    open, or until LOOKAHEAD after it opened (or its resolution, if later) once resolved."""
    now = now or timezone.now()
    start = incident.created_at - LOOKBACK
    if incident.is_open or incident.resolved_at is None:
        return start, max(now, incident.created_at)
    return start, min(now, max(incident.resolved_at, incident.created_at + LOOKAHEAD))


def _series_of_service(service: str) -> QuerySet:
    """Ids of the series whose `service` (or `job`) label is `service` (PostgreSQL: on the labels' GIN index)."""
    if connection.vendor == "postgresql":
        match = Q(labels__contains={"service": service}) | Q(labels__contains={"job": service})
    else:
        match = Q(labels__service=service) | Q(labels__job=service)
    return Series.objects.filter(match).values("id")


def anomalies(incident: Incident, start: datetime.datetime, end: datetime.datetime) -> list[ContextItem]:
    """Anomalies going on in the window on the service's series (by the monitor's service or the series'
    `service`/`job` label), or that raised one of the incident's alerts; those not marked "not interesting".

    One query; each branch of the OR is served by an index (anomaly_series_idx, anomaly_monitor_idx,
    the alert's incident), never a scan of every anomaly."""
    related = Q(alert_id__in=Alert.objects.filter(incident=incident).values("id"))
    if incident.service:
        monitors = AnomalyMonitor.objects.filter(service=incident.service).values("id")
        related |= Q(monitor_id__in=monitors) | Q(series_id__in=_series_of_service(incident.service))
    found = (
        Anomaly.objects.overlapping(start, end)
        .filter(related)
        .exclude(feedback=Anomaly.Feedback.NOT_INTERESTING)
        .select_related("monitor", "series")
        .order_by("-peak_score", "-started_at")[:MAX_ITEMS_PER_PROVIDER]
    )
    items = []
    for anomaly in found:
        band = ""
        if anomaly.expected_low is not None and anomaly.expected_high is not None:
            band = f", expected {anomaly.expected_low:.4g} to {anomaly.expected_high:.4g}"
        state = "still going on" if anomaly.is_open else f"until {anomaly.ended_at:%Y-%m-%d %H:%M} UTC"
        items.append(
            ContextItem(
                kind="anomaly",
                title=f"Anomaly on {anomaly.series.selector()}",
                detail=(
                    f"{anomaly.monitor.name}: {anomaly.value:.4g} at the peak{band}"
                    f" (score {anomaly.peak_score:.2f}), {state}"
                ),
                at=anomaly.started_at,
                url=f"{anomaly.monitor.get_absolute_url()}?series={anomaly.series_id}",
                severity=anomaly.monitor.severity,
            )
        )
    return items


def checks_down(incident: Incident, start: datetime.datetime, end: datetime.datetime) -> list[ContextItem]:
    """The service's checks (or the checks whose alerts are in the incident) that were down in the
    window: down now, or with an outage overlapping it (then saying when it recovered)."""
    check_ids = [
        int(fingerprint.removeprefix("check:"))
        for fingerprint in Alert.objects.filter(incident=incident, fingerprint__startswith="check:").values_list(
            "fingerprint", flat=True
        )
        if fingerprint.removeprefix("check:").isdigit()
    ]
    related = Q(check_obj_id__in=check_ids)
    if incident.service:
        related |= Q(check_obj_id__in=Check.objects.filter(service=incident.service).values("id"))
    outages = (
        CheckOutage.objects.filter(related, started_at__lte=end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=start))
        .select_related("check_obj")
        .order_by("ended_at", "-started_at")  # still down (null: first on PostgreSQL and SQLite) first
    )
    items: dict[int, ContextItem] = {}
    for outage in outages:
        check = outage.check_obj
        if check.pk in items or len(items) >= MAX_ITEMS_PER_PROVIDER:
            continue
        down_now = outage.ended_at is None and check.status == Check.Status.DOWN
        state = (
            "down now" if down_now else f"recovered at {outage.ended_at or check.status_changed_at:%Y-%m-%d %H:%M} UTC"
        )
        items[check.pk] = ContextItem(
            kind="check",
            title=f"Check {check.name} is down" if down_now else f"Check {check.name} was down",
            detail=f"{check.get_kind_display()}, {state}" + (f": {outage.error}" if outage.error else ""),
            at=outage.started_at,
            url=check.get_absolute_url(),
            severity=check.severity if down_now else "warning",
        )
    return sorted(items.values(), key=lambda item: (item.title.endswith("was down"), item.at))


def log_patterns(incident: Incident, start: datetime.datetime, end: datetime.datetime) -> list[ContextItem]:
    """The service's log patterns that started bursting, or were first seen, in the window (bursts first),
    each linking to its records from the window's start (`aiops.services.logs.log_context`)."""
    items = []
    since = urlencode({"since": start.isoformat()})
    for found in log_services.log_context(
        service=incident.service, since=start, until=end, limit=MAX_ITEMS_PER_PROVIDER
    ):
        template, burst = found.template, found.reason == "burst"
        first_seen = f"first seen {template.first_seen:%Y-%m-%d %H:%M} UTC"
        items.append(
            ContextItem(
                kind="log_pattern",
                title=f"{'Bursting' if burst else 'New'} log pattern: {Truncator(template.template).chars(200)}",
                detail=f"{template.severity}, {template.count} record{pluralize(template.count)}, {first_seen}",
                at=(template.bursting_since if burst else template.first_seen) or template.first_seen,
                url=f"{template.records_url()}&{since}",
                severity=LOG_SEVERITY.get(template.severity, "info"),
            )
        )
    return items


def changes(incident: Incident, start: datetime.datetime, end: datetime.datetime) -> list[ContextItem]:
    """Changes across the portal in the window, from every app's `recent_changes` hook."""
    return [
        ContextItem(
            kind="change",
            title=change.title,
            detail=f"{change.app}" + (f", by {change.actor}" if change.actor else ""),
            at=change.at,
            url=change.url,
            severity="info",
        )
        for change in changes_between(start=start, end=end, limit=MAX_ITEMS_PER_PROVIDER)
    ]


PROVIDERS: list[Provider] = [
    log_patterns,
    anomalies,
    checks_down,
    changes,
]


def assemble_context(incident: Incident, *, now: datetime.datetime | None = None) -> list[ContextItem]:
    """Every provider's items for the incident's window, in PROVIDERS order (a failing provider is left out)."""
    start, end = context_window(incident, now=now)
    items: list[ContextItem] = []
    for provider in PROVIDERS:
        try:
            items.extend(provider(incident, start, end))
        except Exception:
            logger.exception("incident context provider %s failed for incident %s", provider.__name__, incident.pk)
    return items


def refresh_incident_context(*, incident: Incident, now: datetime.datetime | None = None) -> IncidentContext:
    """Assemble the incident's context and store it (one row per incident, replaced)."""
    now = now or timezone.now()
    start, end = context_window(incident, now=now)
    items = assemble_context(incident, now=now)
    with transaction.atomic():
        context, _ = IncidentContext.objects.update_or_create(
            incident=incident,
            defaults={
                "items": [item.to_json() for item in items],
                "window_start": start,
                "window_end": end,
                "refreshed_at": now,
            },
        )
    return context


def refresh_contexts(*, incident_ids: list[int]) -> int:
    """Assemble and store the context of the incidents with these ids (ids of gone ones are skipped)."""
    incidents = Incident.objects.filter(pk__in=incident_ids).order_by("pk")
    for incident in incidents:
        refresh_incident_context(incident=incident)
    return len(incidents)


def refresh_open_contexts(*, older_than: datetime.timedelta = REFRESH_EVERY, limit: int = 200) -> int:
    """Refresh the context of open incidents that have none (e.g. the broker was down when they opened)
    or whose context is older than `older_than`; at most `limit` per call, the stalest first."""
    cutoff = timezone.now() - older_than
    ids = list(
        Incident.objects.open()
        .filter(merged_into__isnull=True)
        .filter(Q(context__isnull=True) | Q(context__refreshed_at__lt=cutoff))
        .order_by(F("context__refreshed_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return refresh_contexts(incident_ids=ids)


def queue_context_assembly(incidents: list[Incident]) -> None:
    """After the current transaction commits, assemble the context of these incidents in the worker (one
    task for all). The incidents are committed first, so if the broker is down the periodic refresh
    (`refresh_open_contexts`, which takes incidents without a context first) picks them up."""
    if incidents:
        enqueue_on_commit("aiops.tasks.assemble_incident_contexts", [incident.pk for incident in incidents])


def incident_context(*, incident: Incident, force: bool = False) -> IncidentContext:
    """The incident's stored context, assembled first when there is none, when `force`, or when it is older
    than STALE_AFTER and can have changed: the incident is open, or its window has moved on since (it
    resolved after the last assembly)."""
    context = IncidentContext.objects.filter(incident=incident).first()
    now = timezone.now()
    if context is None or force:
        return refresh_incident_context(incident=incident, now=now)
    stale = context.refreshed_at < now - STALE_AFTER
    if stale and (incident.is_open or context.window_end < context_window(incident, now=now)[1]):
        return refresh_incident_context(incident=incident, now=now)
    return context


def context_sections(context: IncidentContext) -> list[tuple[str, str, list[ContextItem]]]:
    """The stored items grouped by kind for the panel: (kind, label, items); the kinds of KIND_LABELS first
    (empty ones too, so the panel says "none"), then any other kind in the order the items came."""
    grouped: dict[str, list[ContextItem]] = {kind: [] for kind in KIND_LABELS}
    for data in context.items:
        item = ContextItem.from_json(data)
        grouped.setdefault(item.kind, []).append(item)
    return [
        (kind, KIND_LABELS.get(kind, kind.replace("_", " ").capitalize()), items) for kind, items in grouped.items()
    ]
