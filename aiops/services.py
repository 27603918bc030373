"""AIOps's facade: every write and multi-model operation of the app goes through here.

Ingest (`ingest_delivery`) runs in the request: it deduplicates and commits the
alerts before the sender gets its 2xx, and needs no broker. Correlation into
incidents (`process_pending_alerts`) runs in a worker; alerts carry a `pending`
flag until it has, so the sweeper finishes whatever a lost task did not.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from opsportal.accounts.models import hash_token, new_raw_token
from opsportal.audit import services as audit
from opsportal.bulk import copy_rows, fast_bulk_create, fast_bulk_update
from opsportal.portal.charts import figure_data
from opsportal.portal.summary import AppSummary, activity_stats
from opsportal.enqueue import enqueue_on_commit

from . import charts
from .models import (
    SEVERITY_RANK,
    Alert,
    AlertDelivery,
    CorrelationRule,
    Delivery,
    Incident,
    IncidentEvent,
    Integration,
    Matcher,
    NotificationChannel,
    NotificationRoute,
    Silence,
)
from .parsers import ParsedAlert, ParsedPayload

logger = logging.getLogger(__name__)

Actor = User | AnonymousUser | None

ALERT_REFRESH_FIELDS = [
    "status", "severity", "title", "description", "labels", "annotations", "ends_at", "last_seen_at", "times_seen",
    "links", "raw", "pending", "pending_change", "content_hash",
]  # fmt: skip
INCIDENT_COUNTER_FIELDS = [
    "status", "severity", "acknowledged_at", "resolved_at", "last_alert_at", "alert_count", "firing_count", "links",
]  # fmt: skip
LAST_DELIVERY_RESOLUTION = datetime.timedelta(seconds=10)
# Deliveries arriving within this many seconds share one correlation task.
CORRELATION_DEBOUNCE_SECONDS = 1
# An identical body from the same sender within this window is a retry, not a new delivery.
DUPLICATE_WINDOW_SECONDS = 600


def overview(*, with_charts: bool = False) -> AppSummary:
    """AIOps's card on the combined overview; with charts of open incidents and response times."""
    by_severity = Incident.objects.open().count_by_severity()
    stats: list[tuple[str, object]] = [
        ("Open incidents", sum(by_severity.values())),
        ("Critical open", by_severity.get("critical", 0)),
        ("Alerts firing", Alert.objects.firing().filter(suppressed_by__isnull=True).count()),
    ]
    panels = []
    if with_charts:
        since = timezone.now() - datetime.timedelta(days=30)
        rows = list(
            Incident.objects.filter(created_at__gte=since, merged_into__isnull=True).values_list(
                "created_at", "acknowledged_at", "resolved_at", "service", "severity"
            )
        )
        panels = [
            ("aiops-open-by-severity", "Open incidents by severity", figure_data(charts.open_by_severity(by_severity))),
            ("aiops-response-trend", "MTTA / MTTR, last 30 days", figure_data(charts.response_time_trend(rows, 30))),
        ]
    return AppSummary(
        label="aiops",
        title="AIOps",
        description=(
            "Alerts from Alertmanager, Grafana, PagerDuty-style and generic senders, deduplicated and "
            "correlated into incidents to acknowledge, assign and resolve."
        ),
        url=reverse("aiops:index"),
        stats=stats + activity_stats("aiops")[:1],
        charts=panels,
    )


# --- Integrations ---------------------------------------------------------------------


@transaction.atomic
def create_integration(
    *, name: str, kind: str, actor: Actor, rate_limit_per_minute: int = 6000
) -> tuple[Integration, str]:
    """Create an integration; returns it and its raw token (only its hash is stored)."""
    name = name.strip()
    if not name:
        raise ValueError("name: required.")
    if kind not in Integration.Kind.values:
        raise ValueError(f"kind: must be one of {', '.join(Integration.Kind.values)}.")
    if Integration.objects.filter(name__iexact=name).exists():
        raise ValueError(f"name: an integration named {name!r} already exists.")
    raw = new_raw_token().replace("opp_", "opi_", 1)
    integration = Integration.objects.create(
        name=name,
        kind=kind,
        token_hash=hash_token(raw),
        token_prefix=raw[:10],
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit.record(
        action=audit.Action.CREATE, actor=actor, obj=integration, changes={"name": [None, name], "kind": [None, kind]}
    )
    return integration, raw


@transaction.atomic
def rotate_integration_token(*, integration: Integration, actor: Actor) -> str:
    """Replace the token; the old one stops working at once."""
    raw = new_raw_token().replace("opp_", "opi_", 1)
    old_prefix = integration.token_prefix
    integration.token_hash = hash_token(raw)
    integration.token_prefix = raw[:10]
    integration.save(update_fields=["token_hash", "token_prefix"])
    audit.record(
        action=audit.Action.UPDATE, actor=actor, obj=integration, changes={"token": [f"{old_prefix}…", f"{raw[:10]}…"]}
    )
    return raw


@transaction.atomic
def update_integration(
    *,
    integration: Integration,
    actor: Actor,
    name: str | None = None,
    enabled: bool | None = None,
    rate_limit_per_minute: int | None = None,
) -> Integration:
    fields = ("name", "enabled", "rate_limit_per_minute")
    before = audit.snapshot(integration, fields)
    if name is not None:
        integration.name = name.strip()
    if enabled is not None:
        integration.enabled = enabled
    if rate_limit_per_minute is not None:
        integration.rate_limit_per_minute = rate_limit_per_minute
    integration.save()
    changes = audit.diff(before, audit.snapshot(integration, fields))
    if changes:
        audit.record(action=audit.Action.UPDATE, actor=actor, obj=integration, changes=changes)
    return integration


@transaction.atomic
def delete_integration(*, integration: Integration, actor: Actor) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=integration, changes={"name": [integration.name, None]})
    integration.delete()


def token_matches(*, integration: Integration | None, raw_token: str) -> bool:
    """True when `raw_token` is the token of this enabled integration (compared in constant time)."""
    if integration is None or not integration.enabled:
        return False
    return hmac.compare_digest(integration.token_hash, hash_token(raw_token))


# --- Ingest -------------------------------------------------------------------------------


@dataclass
class IngestResult:
    """What one delivery did: counts for the sender's answer, and PagerDuty-style dedup keys."""

    delivery: Delivery | None
    duplicate: bool = False
    created: int = 0
    updated: int = 0
    resolved: int = 0
    suppressed: int = 0
    pending: int = 0  # changes waiting for correlation
    fingerprints: list[str] = field(default_factory=list)


def delivery_digest(body: bytes, idempotency_key: str = "") -> str:
    if idempotency_key:
        return hashlib.sha256(b"key:" + idempotency_key.encode()).hexdigest()
    return hashlib.sha256(body).hexdigest()


def active_silences(now: datetime.datetime | None = None) -> list[Silence]:
    now = now or timezone.now()
    return list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now, expired_early_at__isnull=True))


def matching_silence(silences: list[Silence], labels: dict[str, str]) -> Silence | None:
    return next((s for s in silences if s.matches(labels)), None)


def _alert_labels(parsed: ParsedAlert) -> dict[str, str]:
    """Labels used for matching: the sender's, plus the normalised service and severity."""
    labels = dict(parsed.labels)
    labels.setdefault("service", parsed.service)
    labels.setdefault("severity", parsed.severity)
    return labels


def ingest_delivery(
    *,
    integration: Integration,
    payload: ParsedPayload,
    digest: str,
    remote_addr: str | None = None,
) -> IngestResult:
    """Store one delivery's alerts, deduplicated by fingerprint, in one transaction.

    Concurrent deliveries touching the same fingerprints are serialised by row
    locks; a race on a brand-new fingerprint is retried.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                result = _ingest(integration=integration, payload=payload, digest=digest, remote_addr=remote_addr)
        except (IntegrityError, OperationalError):
            # A race on a brand-new fingerprint, or a deadlock the database broke: try again.
            if attempt == 2:
                raise
            continue
        if result.pending:
            schedule_correlation()
        return result
    raise AssertionError("unreachable")


def schedule_correlation() -> None:
    """Enqueue correlation after commit, at most once per second across all web processes.

    A burst of deliveries then makes one worker batch instead of one task each. If
    the cache is down the task is enqueued anyway; if the broker is down the
    periodic sweep picks the pending alerts up.
    """
    from django.core.cache import cache

    try:
        first = cache.add("aiops:correlation-scheduled", 1, timeout=CORRELATION_DEBOUNCE_SECONDS)
    except Exception:
        first = True
    if first:
        enqueue_on_commit("aiops.tasks.process_alerts", countdown=CORRELATION_DEBOUNCE_SECONDS)


def _ingest(*, integration: Integration, payload: ParsedPayload, digest: str, remote_addr: str | None) -> IngestResult:
    now = timezone.now()
    # Within one payload the last word on a fingerprint wins.
    latest: dict[str, ParsedAlert] = {}
    for parsed in payload.alerts:
        latest[parsed.fingerprint] = parsed
    delivery = _create_delivery(integration, payload, digest, remote_addr, now, lock=list(latest))
    if delivery is None:
        return IngestResult(delivery=None, duplicate=True, fingerprints=[a.fingerprint for a in payload.alerts])
    result = IngestResult(delivery=delivery, fingerprints=list(latest))
    if not latest:
        return result
    repeat_hashes = {
        fingerprint: content_hash(parsed)
        for fingerprint, parsed in latest.items()
        if parsed.status == "firing" and parsed.action == "trigger"
    }
    # The common case, a sender repeating a firing alert unchanged, is settled by one set-based
    # UPDATE of its liveness; only the rest need a closer look.
    firing, repeated = _touch_repeats(integration, latest, repeat_hashes, now)
    silences = (
        active_silences(now)
        if any(p.status == "firing" and p.fingerprint not in firing for p in latest.values())
        else []
    )
    new_alerts: list[Alert] = []
    changing: dict[int, ParsedAlert] = {}
    late_resolves: list[ParsedAlert] = []
    for fingerprint, parsed in latest.items():
        alert_id = firing.get(fingerprint)
        if alert_id is None:
            if parsed.status == "resolved":
                late_resolves.append(parsed)
                continue
            silence = matching_silence(silences, _alert_labels(parsed))
            new_alerts.append(_new_alert(integration, parsed, now, silence))
            result.created += 1
            result.suppressed += silence is not None
        elif fingerprint in repeated:
            result.updated += 1
        else:
            changing[alert_id] = parsed

    changed = (
        list(Alert.objects.select_for_update().filter(pk__in=sorted(changing)).order_by("pk").defer("raw"))
        if changing
        else []
    )
    for alert in changed:
        parsed = changing[alert.pk]
        _refresh(alert, parsed, now)
        if parsed.status == "resolved":
            alert.status = Alert.Status.RESOLVED
            alert.ends_at = parsed.ends_at or now
            alert.pending, alert.pending_change = alert.suppressed_by_id is None, "resolved"
            result.resolved += 1
        elif parsed.action == "acknowledge":
            alert.pending, alert.pending_change = alert.suppressed_by_id is None, "acknowledged"
            result.updated += 1
        else:
            result.updated += 1

    if late_resolves:
        # A resolve for an alert we never saw firing (or already closed) is still recorded once.
        known = set(
            Alert.objects.filter(integration=integration, fingerprint__in=[p.fingerprint for p in late_resolves])
            .values_list("fingerprint", flat=True)
            .distinct()
        )
        for parsed in late_resolves:
            if parsed.fingerprint in known:
                continue
            alert = _new_alert(integration, parsed, now, None)
            alert.status, alert.ends_at, alert.pending, alert.pending_change = (
                "resolved",
                parsed.ends_at or now,
                False,
                "",
            )
            new_alerts.append(alert)
            result.resolved += 1

    # A consistent insert order keeps concurrent deliveries from deadlocking on the unique index.
    new_alerts.sort(key=lambda a: a.fingerprint)
    fast_bulk_create(new_alerts)
    fast_bulk_update(changed, ALERT_REFRESH_FIELDS)
    record_deliveries(
        delivery,
        [(a.pk, latest[a.fingerprint].status) for a in new_alerts]
        + [(a.pk, _reported(latest[a.fingerprint])) for a in changed]
        + [(alert_id, _reported(latest[fingerprint])) for fingerprint, alert_id in repeated.items()],
        now,
    )
    result.pending = sum(a.pending for a in new_alerts) + sum(a.pending for a in changed)
    # Every delivery writing the integration row would make concurrent deliveries queue on its lock.
    if integration.last_delivery_at is None or now - integration.last_delivery_at > LAST_DELIVERY_RESOLUTION:
        Integration.objects.filter(pk=integration.pk).update(last_delivery_at=now)
    return result


# LATERAL ... LIMIT 1 keeps the plan an index look-up per fingerprint even before the table has
# statistics (a fresh or fast-growing table otherwise gets a hash join over every firing alert).
_TOUCH_REPEATS_SQL = """
WITH found AS MATERIALIZED (
    SELECT a.id, f.fingerprint, coalesce(a.content_hash = f.content_hash, false) AS same
    FROM unnest(%(fps)s::text[], %(hashes)s::text[]) AS f(fingerprint, content_hash)
    CROSS JOIN LATERAL (
        SELECT id, content_hash FROM aiops_alert
        WHERE integration_id = %(integration)s AND fingerprint = f.fingerprint AND status = 'firing'
        LIMIT 1
    ) AS a
), touched AS (
    UPDATE aiops_alert SET last_seen_at = %(now)s, times_seen = times_seen + 1
    WHERE id = ANY(ARRAY(SELECT id FROM found WHERE same))
)
SELECT id, fingerprint, same FROM found
"""


def _touch_repeats(
    integration: Integration,
    latest: dict[str, ParsedAlert],
    repeat_hashes: dict[str, str],
    now: datetime.datetime,
) -> tuple[dict[str, int], dict[str, int]]:
    """Mark unchanged re-sent firing alerts as seen again.

    `repeat_hashes` maps the fingerprints that may be plain repeats to their content hash.
    Returns (fingerprint -> id of every firing alert among `latest`, fingerprint -> id of those
    touched as repeats). On PostgreSQL the look-up and the UPDATE are one statement.
    """
    if connection.vendor == "postgresql":
        firing: dict[str, int] = {}
        repeated: dict[str, int] = {}
        with connection.cursor() as cursor:
            cursor.execute(
                _TOUCH_REPEATS_SQL,
                {
                    "now": now,
                    "integration": integration.pk,
                    "fps": list(latest),
                    "hashes": [repeat_hashes.get(fingerprint) for fingerprint in latest],
                },
            )
            for alert_id, fingerprint, touched in cursor.fetchall():
                firing[fingerprint] = alert_id
                if touched:
                    repeated[fingerprint] = alert_id
        return firing, repeated
    rows = Alert.objects.filter(
        integration=integration, fingerprint__in=list(latest), status=Alert.Status.FIRING
    ).values_list("id", "fingerprint", "content_hash")
    firing = {fingerprint: alert_id for alert_id, fingerprint, _hash in rows}
    repeated = {
        fingerprint: alert_id for alert_id, fingerprint, known in rows if repeat_hashes.get(fingerprint) == known
    }
    if repeated:
        Alert.objects.filter(pk__in=list(repeated.values())).update(last_seen_at=now, times_seen=F("times_seen") + 1)
    return firing, repeated


def _create_delivery(
    integration: Integration,
    payload: ParsedPayload,
    digest: str,
    remote_addr: str | None,
    now: datetime.datetime,
    *,
    lock: list[str],
) -> Delivery | None:
    """The delivery row, or None when the same delivery arrived within the duplicate window.

    Also takes the locks on the fingerprints in `lock` (see `_lock_keys`). On PostgreSQL
    the locks, the check and the insert are one statement (one round trip per delivery); the next
    statement's snapshot then sees whatever the deliveries we waited for committed.
    """
    since = now - datetime.timedelta(seconds=DUPLICATE_WINDOW_SECONDS)
    delivery = Delivery(
        integration=integration,
        received_at=now,
        digest=digest,
        alert_count=len(payload.alerts),
        remote_addr=remote_addr,
        meta=payload.meta,
    )
    if connection.vendor != "postgresql":
        # SQLite runs one writer at a time: no locks needed.
        if Delivery.objects.filter(integration=integration, digest=digest, received_at__gte=since).exists():
            return None
        delivery.save(force_insert=True)
        return delivery
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH locked AS (SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k)"
            " INSERT INTO aiops_delivery (integration_id, received_at, digest, alert_count, remote_addr, meta)"
            " SELECT %s, %s, %s, %s, %s, %s FROM locked WHERE NOT EXISTS (SELECT 1 FROM aiops_delivery"
            " WHERE integration_id = %s AND digest = %s AND received_at >= %s) RETURNING id",
            [
                _lock_keys(integration.pk, lock),
                integration.pk,
                now,
                digest,
                delivery.alert_count,
                remote_addr,
                json.dumps(payload.meta),
                integration.pk,
                digest,
                since,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    delivery.pk = row[0]
    delivery._state.adding = False
    return delivery


def content_hash(parsed: ParsedAlert) -> str:
    """What deduplication compares: a stable hash of severity, title, labels and annotations."""
    text = json.dumps(
        [parsed.severity, parsed.title[:300], parsed.labels, parsed.annotations],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _new_alert(integration: Integration, parsed: ParsedAlert, now: datetime.datetime, silence: Silence | None) -> Alert:
    return Alert(
        integration=integration,
        fingerprint=parsed.fingerprint,
        status=Alert.Status.FIRING,
        severity=parsed.severity,
        title=parsed.title[:300],
        description=parsed.description,
        service=parsed.service[:200],
        source=parsed.source[:500],
        labels=parsed.labels,
        annotations=parsed.annotations,
        starts_at=parsed.starts_at or now,
        ends_at=None,
        first_seen_at=now,
        last_seen_at=now,
        generator_url=parsed.generator_url[:2000],
        links=parsed.links,
        raw=parsed.raw,
        content_hash=content_hash(parsed),
        suppressed_by=silence,
        pending=silence is None,
        pending_change="fired" if silence is None else "",
    )


def _reported(parsed: ParsedAlert) -> str:
    """What a delivery said about an alert, in the alert's own terms: firing, resolved or acknowledged."""
    return "acknowledged" if parsed.action == "acknowledge" else parsed.status


def record_deliveries(delivery: Delivery, statuses: list[tuple[int, str]], at: datetime.datetime) -> None:
    """Add the delivery to each alert's history: (alert id, what the delivery said about it)."""
    if connection.vendor == "postgresql":
        copy_rows(
            AlertDelivery._meta.db_table,
            ["alert_id", "delivery_id", "status", "received_at"],
            ((alert_id, delivery.pk, status, at) for alert_id, status in statuses),
        )
    else:
        AlertDelivery.objects.bulk_create(
            [AlertDelivery(alert_id=i, delivery=delivery, status=status, received_at=at) for i, status in statuses]
        )


def _lock_keys(integration_id: int, fingerprints: list[str]) -> list[int]:
    """Advisory lock keys for these fingerprints, sorted (locks taken in one order cannot deadlock).

    Transaction-scoped advisory locks on the fingerprints make a second delivery that mentions
    them wait until the first has committed, so it sees the alert the first one created instead
    of racing it on the unique index (PostgreSQL; SQLite already runs one writer at a time).
    """
    return sorted(
        int.from_bytes(hashlib.blake2b(f"{integration_id}:{fp}".encode(), digest_size=8).digest(), "big", signed=True)
        for fp in fingerprints
    )


def _refresh(alert: Alert, parsed: ParsedAlert, now: datetime.datetime) -> None:
    alert.last_seen_at = now
    alert.times_seen += 1
    alert.severity = parsed.severity
    alert.title = parsed.title[:300] or alert.title
    alert.description = parsed.description or alert.description
    alert.labels = parsed.labels or alert.labels
    alert.annotations = parsed.annotations or alert.annotations
    alert.links = parsed.links or alert.links
    alert.raw = parsed.raw
    alert.content_hash = content_hash(parsed)


# --- Correlation -------------------------------------------------------------------------------


def rule_for(rules: Iterable[CorrelationRule], labels: dict[str, str]) -> CorrelationRule | None:
    return next((r for r in rules if r.enabled and Matcher.all_match(r.matchers, labels)), None)


def group_of(rule: CorrelationRule | None, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The group key (stable hash) and the grouping label values of an alert under a rule."""
    keys = rule.group_by if rule else ["alertname", "service"]
    values = {k: labels.get(k, "") for k in keys}
    material = f"{rule.pk if rule else 0}|" + "|".join(f"{k}={v}" for k, v in values.items())
    return hashlib.sha256(material.encode()).hexdigest()[:40], values


def _matching_labels(alert: Alert) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in alert.labels.items()}
    labels.setdefault("service", alert.service)
    labels.setdefault("severity", alert.severity)
    labels.setdefault("alertname", alert.title)
    return labels


class _Batch:
    """Incidents touched while processing one batch of alerts, saved together at the end."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.by_group: dict[tuple[int | None, str], Incident] = {}
        self.touched: dict[int, Incident] = {}
        self.events: list[IncidentEvent] = []
        self.notify: list[tuple[Incident, str]] = []
        # Incidents that alerts of this batch may join, by group key (one query for the batch).
        self.candidates: dict[str, list[Incident]] = {}
        self.new_incidents: list[Incident] = []

    def event(self, incident: Incident, kind: str, message: str, **data: object) -> None:
        self.events.append(IncidentEvent(incident=incident, at=self.now, kind=kind, message=message, data=data))

    def touch(self, incident: Incident) -> None:
        if incident.pk is not None:  # new incidents are inserted whole at the end of the batch
            self.touched[incident.pk] = incident

    def canonical(self, incident: Incident) -> Incident:
        """One Python object per incident row in a batch, so counters are not updated on copies."""
        return self.touched.setdefault(incident.pk, incident)


@transaction.atomic
def process_pending_alerts(*, limit: int = 2000) -> int:
    """Correlate pending alert changes into incidents; returns how many were processed.

    Rows are locked with SKIP LOCKED, so several workers share the backlog and
    each change is applied exactly once.
    """
    alerts = list(
        Alert.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pending=True)
        .select_related("incident", "incident__rule")
        .order_by("id")[:limit]
    )
    if not alerts:
        return 0
    rules = list(CorrelationRule.objects.filter(enabled=True))
    batch = _Batch(timezone.now())
    batch.candidates = _candidate_incidents(alerts, rules, batch.now)
    for alert in alerts:
        change = alert.pending_change
        if change in ("fired", "refired"):
            _attach(alert, rules, batch)
        elif change == "resolved":
            _alert_resolved(alert, batch)
        elif change == "acknowledged" and alert.incident and alert.incident.status == Incident.Status.TRIGGERED:
            incident = batch.canonical(alert.incident)
            incident.status, incident.acknowledged_at = Incident.Status.ACKNOWLEDGED, batch.now
            batch.touch(incident)
            batch.event(incident, IncidentEvent.Kind.STATUS, "Acknowledged by the sender.", status="acknowledged")
            batch.notify.append((incident, "acknowledged"))
        alert.pending, alert.pending_change = False, ""
    Incident.objects.bulk_create(batch.new_incidents)
    audit.record_many(
        action=audit.Action.CREATE, actor=None, objs=batch.new_incidents, changes={"status": [None, "triggered"]}
    )
    for alert in alerts:
        if alert.incident is not None:
            alert.incident_id = alert.incident.pk  # set after the new incidents got their ids
    fast_bulk_update(alerts, ["pending", "pending_change", "incident"])
    fast_bulk_update(list(batch.touched.values()), INCIDENT_COUNTER_FIELDS)
    IncidentEvent.objects.bulk_create(batch.events)
    _queue_notifications(batch.notify)
    return len(alerts)


def _candidate_incidents(alerts: list[Alert], rules: list[CorrelationRule], now: datetime.datetime):
    """Open or recently resolved incidents for the group keys of the batch's firing alerts."""
    keys = set()
    for alert in alerts:
        if alert.pending_change in ("fired", "refired"):
            labels = _matching_labels(alert)
            alert.group = (rule := rule_for(rules, labels)), *group_of(rule, labels)
            keys.add(alert.group[1])
    if not keys:
        return {}
    longest_cooldown = max([r.reopen_cooldown_minutes for r in rules] + [30])
    found: dict[str, list[Incident]] = {}
    for incident in (
        Incident.objects.filter(group_key__in=keys, merged_into__isnull=True)
        .filter(
            ~Q(status=Incident.Status.RESOLVED) | Q(resolved_at__gte=now - datetime.timedelta(minutes=longest_cooldown))
        )
        .order_by("-last_alert_at")
    ):
        found.setdefault(incident.group_key, []).append(incident)
    return found


def _attach(alert: Alert, rules: list[CorrelationRule], batch: _Batch) -> None:
    rule, group_key, group_values = alert.group
    rule_id = rule.pk if rule else None
    incident = batch.by_group.get((rule_id, group_key))
    if incident is None:
        incident = _find_incident(rule, batch.candidates.get(group_key, []), batch.now)
        if incident is not None:
            incident = batch.canonical(incident)
    if incident is None:
        incident = Incident(
            title=_incident_title(alert, group_values),
            summary=alert.description,
            severity=alert.severity,
            service=alert.service,
            rule=rule,
            group_key=group_key,
            group_labels=group_values,
            links=_links_of(alert),
            created_at=batch.now,
            last_alert_at=batch.now,
        )
        batch.new_incidents.append(incident)
        batch.event(incident, IncidentEvent.Kind.OPENED, f"Opened by {rule.name if rule else 'default grouping'}.")
        batch.notify.append((incident, "opened"))
    elif incident.status == Incident.Status.RESOLVED:
        incident.status, incident.resolved_at, incident.acknowledged_at = Incident.Status.TRIGGERED, None, None
        batch.event(incident, IncidentEvent.Kind.STATUS, "Reopened: an alert fired again.", status="triggered")
        audit.record(
            action=audit.Action.STATE, actor=None, obj=incident, changes={"status": ["resolved", "triggered"]},
            message="Reopened by a new alert within the cool-down.",
        )  # fmt: skip
        batch.notify.append((incident, "reopened"))
    batch.by_group[(rule_id, group_key)] = incident
    alert.incident = incident
    incident.alert_count += 1
    incident.firing_count += 1
    incident.last_alert_at = batch.now
    if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[incident.severity]:
        batch.event(incident, IncidentEvent.Kind.SEVERITY, f"Severity raised to {alert.severity} by an alert.")
        incident.severity = alert.severity
    for link in _links_of(alert):
        if link not in incident.links and len(incident.links) < 20:
            incident.links.append(link)
    batch.event(
        incident, IncidentEvent.Kind.ALERT_FIRING, f"{alert.title} firing", alert=alert.pk, severity=alert.severity
    )
    batch.touch(incident)


def _find_incident(rule: CorrelationRule | None, candidates: list[Incident], now: datetime.datetime):
    """The open incident the group is still in (firing, or last alert within the window), else
    the incident resolved within the cool-down (to reopen), else None. `candidates` are newest first."""
    window = datetime.timedelta(minutes=rule.window_minutes if rule else 60)
    cooldown = datetime.timedelta(minutes=rule.reopen_cooldown_minutes if rule else 30)
    for incident in candidates:
        if incident.is_open and (incident.firing_count > 0 or incident.last_alert_at >= now - window):
            return incident
    resolved = [i for i in candidates if not i.is_open and i.resolved_at and i.resolved_at >= now - cooldown]
    return max(resolved, key=lambda i: i.resolved_at, default=None)


def _alert_resolved(alert: Alert, batch: _Batch) -> None:
    if alert.incident is None:
        return
    incident = batch.canonical(alert.incident)
    incident.firing_count = max(0, incident.firing_count - 1)
    batch.event(incident, IncidentEvent.Kind.ALERT_RESOLVED, f"{alert.title} resolved", alert=alert.pk)
    auto = incident.rule.auto_resolve if incident.rule else True
    if auto and incident.firing_count == 0 and incident.is_open:
        incident.status, incident.resolved_at = Incident.Status.RESOLVED, batch.now
        batch.event(incident, IncidentEvent.Kind.STATUS, "Resolved: all its alerts resolved.", status="resolved")
        audit.record(
            action=audit.Action.STATE, actor=None, obj=incident, changes={"status": ["open", "resolved"]},
            message="Auto-resolved: all alerts resolved.",
        )  # fmt: skip
        batch.notify.append((incident, "resolved"))
    batch.touch(incident)


def _incident_title(alert: Alert, group_values: dict[str, str]) -> str:
    service = group_values.get("service") or alert.service
    return f"{alert.title} on {service}"[:300] if service and service not in alert.title else alert.title[:300]


def _links_of(alert: Alert) -> list[dict[str, str]]:
    links = [dict(link) for link in alert.links if isinstance(link, dict) and link.get("href")]
    if alert.generator_url and not any(link["href"] == alert.generator_url for link in links):
        links.insert(0, {"href": alert.generator_url, "text": "Source"})
    return links


def _queue_notifications(items: list[tuple[Incident, str]]) -> None:
    """Create the outbox rows for incidents that notify; notifications.py sends them."""
    if not items:
        return
    from . import notifications

    notifications.queue(items)


# --- Triage ------------------------------------------------------------------------------


def _actor_name(actor: Actor) -> str:
    return actor.get_username() if actor is not None and actor.is_authenticated else "system"


def add_event(*, incident: Incident, kind: str, message: str, actor: Actor, **data: object) -> IncidentEvent:
    user = actor if actor is not None and actor.is_authenticated else None
    return IncidentEvent.objects.create(
        incident=incident, kind=kind, message=message, actor=user, actor_name=_actor_name(actor), data=data
    )


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


@transaction.atomic
def acknowledge_incident(*, incident: Incident, actor: Actor) -> Incident:
    """Triggered -> acknowledged. Acknowledging twice, or a resolved incident, changes nothing."""
    incident = _locked(incident)
    if incident.status != Incident.Status.TRIGGERED:
        return incident
    incident.status, incident.acknowledged_at = Incident.Status.ACKNOWLEDGED, timezone.now()
    incident.save(update_fields=["status", "acknowledged_at"])
    add_event(
        incident=incident, kind=IncidentEvent.Kind.STATUS, message="Acknowledged.", actor=actor, status="acknowledged"
    )
    audit.record(
        action=audit.Action.STATE, actor=actor, obj=incident, changes={"status": ["triggered", "acknowledged"]}
    )
    _queue_notifications([(incident, "acknowledged")])
    return incident


@transaction.atomic
def resolve_incident(*, incident: Incident, actor: Actor, note: str = "") -> Incident:
    incident = _locked(incident)
    if incident.status == Incident.Status.RESOLVED:
        return incident
    before = incident.status
    now = timezone.now()
    incident.status, incident.resolved_at = Incident.Status.RESOLVED, now
    if incident.acknowledged_at is None:
        incident.acknowledged_at = now
    incident.save(update_fields=["status", "resolved_at", "acknowledged_at"])
    message = "Resolved." + (f" {note}" if note else "")
    add_event(incident=incident, kind=IncidentEvent.Kind.STATUS, message=message, actor=actor, status="resolved")
    audit.record(action=audit.Action.STATE, actor=actor, obj=incident, changes={"status": [before, "resolved"]})
    _queue_notifications([(incident, "resolved")])
    return incident


@transaction.atomic
def reopen_incident(*, incident: Incident, actor: Actor) -> Incident:
    incident = _locked(incident)
    if incident.status != Incident.Status.RESOLVED:
        return incident
    incident.status, incident.resolved_at, incident.acknowledged_at = Incident.Status.TRIGGERED, None, None
    incident.save(update_fields=["status", "resolved_at", "acknowledged_at"])
    add_event(incident=incident, kind=IncidentEvent.Kind.STATUS, message="Reopened.", actor=actor, status="triggered")
    audit.record(action=audit.Action.STATE, actor=actor, obj=incident, changes={"status": ["resolved", "triggered"]})
    return incident


@transaction.atomic
def assign_incident(*, incident: Incident, assignee: User | None, actor: Actor) -> Incident:
    incident = _locked(incident)
    before = incident.assignee.get_username() if incident.assignee else None
    after = assignee.get_username() if assignee else None
    if before == after:
        return incident
    incident.assignee = assignee
    incident.save(update_fields=["assignee"])
    message = f"Assigned to {after}." if after else "Unassigned."
    add_event(incident=incident, kind=IncidentEvent.Kind.ASSIGNED, message=message, actor=actor, assignee=after)
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=incident, changes={"assignee": [before, after]})
    return incident


@transaction.atomic
def comment_on_incident(*, incident: Incident, body: str, actor: Actor) -> IncidentEvent:
    body = body.strip()
    if not body:
        raise ValueError("body: a comment cannot be empty.")
    event = add_event(incident=incident, kind=IncidentEvent.Kind.COMMENT, message=body, actor=actor)
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=incident, message=f"Comment: {body[:200]}")
    return event


@transaction.atomic
def update_incident(
    *,
    incident: Incident,
    actor: Actor,
    title: str | None = None,
    summary: str | None = None,
    severity_override: str | None = None,
) -> Incident:
    """Edit title, summary or override the severity ("" removes the override)."""
    incident = _locked(incident)
    fields = ("title", "summary", "severity_override")
    before = audit.snapshot(incident, fields)
    if title is not None:
        if not title.strip():
            raise ValueError("title: cannot be empty.")
        incident.title = title.strip()[:300]
    if summary is not None:
        incident.summary = summary
    if severity_override is not None:
        if severity_override and severity_override not in SEVERITY_RANK:
            raise ValueError(f"severity_override: must be one of {', '.join(SEVERITY_RANK)} or empty.")
        incident.severity_override = severity_override
    incident.save(update_fields=list(fields))
    changes = audit.diff(before, audit.snapshot(incident, fields))
    if changes:
        audit.record(action=audit.Action.UPDATE, actor=actor, obj=incident, changes=changes)
        if "severity_override" in changes:
            new = incident.severity_override or f"{incident.severity} (from alerts)"
            add_event(
                incident=incident, kind=IncidentEvent.Kind.SEVERITY, message=f"Severity set to {new}.", actor=actor
            )
    return incident


@transaction.atomic
def merge_incidents(*, source: Incident, target: Incident, actor: Actor) -> Incident:
    """Move every alert of `source` into `target` and resolve `source` as merged."""
    if source.pk == target.pk:
        raise ValueError("into: cannot merge an incident into itself.")
    source, target = _locked(source), _locked(target)
    if source.merged_into_id:
        raise ValueError(f"incident #{source.pk} is already merged into #{source.merged_into_id}.")
    moved = Alert.objects.filter(incident=source).update(incident=target)
    firing = Alert.objects.filter(incident=target, status=Alert.Status.FIRING).count()
    target.alert_count += moved
    target.firing_count = firing
    if SEVERITY_RANK[source.severity] > SEVERITY_RANK[target.severity]:
        target.severity = source.severity
    target.last_alert_at = max(target.last_alert_at, source.last_alert_at)
    if firing and target.status == Incident.Status.RESOLVED:
        target.status, target.resolved_at = Incident.Status.TRIGGERED, None
    target.save()
    now = timezone.now()
    source.merged_into = target
    source.alert_count = source.firing_count = 0
    if source.status != Incident.Status.RESOLVED:
        source.status, source.resolved_at = Incident.Status.RESOLVED, now
    source.save()
    message = f"Merged #{source.pk} ({moved} alerts) into this incident."
    add_event(incident=target, kind=IncidentEvent.Kind.MERGED, message=message, actor=actor, source=source.pk)
    add_event(
        incident=source,
        kind=IncidentEvent.Kind.MERGED,
        message=f"Merged into #{target.pk}.",
        actor=actor,
        target=target.pk,
    )
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=source, changes={"merged_into": [None, target.pk]})
    return target


@transaction.atomic
def split_alert(*, incident: Incident, alert: Alert, actor: Actor) -> Incident:
    """Move one alert out of an incident into a new incident of its own."""
    incident = _locked(incident)
    if alert.incident_id != incident.pk:
        raise ValueError(f"alert: alert {alert.pk} does not belong to incident #{incident.pk}.")
    if incident.alert_count <= 1:
        raise ValueError("alert: the incident has only this alert; nothing to split.")
    firing = alert.status == Alert.Status.FIRING
    new = Incident.objects.create(
        title=alert.title,
        summary=alert.description,
        severity=alert.severity,
        service=alert.service,
        rule=incident.rule,
        group_key=f"split-{alert.pk}",
        group_labels=incident.group_labels,
        links=_links_of(alert),
        alert_count=1,
        firing_count=int(firing),
        last_alert_at=alert.last_seen_at,
        status=Incident.Status.TRIGGERED if firing else Incident.Status.RESOLVED,
        resolved_at=None if firing else timezone.now(),
    )
    Alert.objects.filter(pk=alert.pk).update(incident=new)
    incident.alert_count -= 1
    incident.firing_count = max(0, incident.firing_count - int(firing))
    incident.save(update_fields=["alert_count", "firing_count"])
    add_event(
        incident=incident, kind=IncidentEvent.Kind.SPLIT, message=f"Split “{alert.title}” out into #{new.pk}.",
        actor=actor, alert=alert.pk, target=new.pk,
    )  # fmt: skip
    add_event(incident=new, kind=IncidentEvent.Kind.OPENED, message=f"Split out of #{incident.pk}.", actor=actor)
    audit.record(action=audit.Action.CREATE, actor=actor, obj=new, message=f"Split out of #{incident.pk}")
    return new


def bulk_transition(*, incidents: Iterable[Incident], action: str, actor: Actor) -> int:
    """Acknowledge or resolve many incidents; returns how many changed."""
    service = {"acknowledge": acknowledge_incident, "resolve": resolve_incident}[action]
    changed = 0
    for incident in incidents:
        before = incident.status
        changed += service(incident=incident, actor=actor).status != before
    return changed


# --- Silences and rules -------------------------------------------------------------------


def validate_matchers(matchers: object, field_name: str = "matchers") -> list[dict]:
    """Check a matcher list; raises ValueError naming the bad element."""
    import re

    if not isinstance(matchers, list) or not matchers:
        raise ValueError(f"{field_name}: a non-empty list of matchers is required.")
    cleaned = []
    for i, m in enumerate(matchers):
        where = f"{field_name}[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("label"), str) or not m.get("label"):
            raise ValueError(f"{where}: needs a 'label'.")
        op = m.get("op", "=")
        if op not in Matcher.OPS:
            raise ValueError(f"{where}.op: must be one of {', '.join(Matcher.OPS)}.")
        value = m.get("value")
        if not isinstance(value, str):
            raise ValueError(f"{where}.value: must be a string.")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{where}.value: not a valid regular expression ({exc}).") from None
        cleaned.append({"label": m["label"], "op": op, "value": value})
    return cleaned


@transaction.atomic
def create_silence(
    *,
    matchers: list[dict],
    ends_at: datetime.datetime,
    comment: str,
    actor: Actor,
    starts_at: datetime.datetime | None = None,
) -> Silence:
    matchers = validate_matchers(matchers)
    starts_at = starts_at or timezone.now()
    if ends_at <= starts_at:
        raise ValueError("ends_at: must be after starts_at.")
    if not comment.strip():
        raise ValueError("comment: say why (e.g. 'maintenance of db-3').")
    silence = Silence.objects.create(
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment.strip(),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit.record(
        action=audit.Action.CREATE, actor=actor, obj=silence,
        changes={"matchers": [None, matchers], "ends_at": [None, ends_at.isoformat()]},
    )  # fmt: skip
    return silence


@transaction.atomic
def expire_silence(*, silence: Silence, actor: Actor) -> Silence:
    if silence.expired_early_at is None and silence.ends_at > timezone.now():
        silence.expired_early_at = timezone.now()
        silence.save(update_fields=["expired_early_at"])
        audit.record(action=audit.Action.STATE, actor=actor, obj=silence, changes={"status": ["active", "expired"]})
    return silence


RULE_FIELDS = (
    "name",
    "position",
    "enabled",
    "matchers",
    "group_by",
    "window_minutes",
    "auto_resolve",
    "reopen_cooldown_minutes",
)


def _clean_rule(data: dict) -> dict:
    if "matchers" in data:
        data["matchers"] = validate_matchers(data["matchers"]) if data["matchers"] else []
    if "group_by" in data:
        group_by = data["group_by"]
        if not isinstance(group_by, list) or not group_by or not all(isinstance(k, str) and k for k in group_by):
            raise ValueError("group_by: a non-empty list of label keys is required.")
    if "name" in data and not str(data["name"]).strip():
        raise ValueError("name: required.")
    return data


@transaction.atomic
def save_rule(*, actor: Actor, rule: CorrelationRule | None = None, **data: object) -> CorrelationRule:
    """Create a correlation rule, or update `rule` with the given fields."""
    data = _clean_rule({k: v for k, v in data.items() if k in RULE_FIELDS})
    created = rule is None
    rule = rule or CorrelationRule()
    before = {} if created else audit.snapshot(rule, RULE_FIELDS)
    for key, value in data.items():
        setattr(rule, key, value)
    if CorrelationRule.objects.filter(name__iexact=rule.name).exclude(pk=rule.pk).exists():
        raise ValueError(f"name: a rule named {rule.name!r} already exists.")
    rule.save()
    changes = audit.diff(before, audit.snapshot(rule, RULE_FIELDS))
    audit.record(action=audit.Action.CREATE if created else audit.Action.UPDATE, actor=actor, obj=rule, changes=changes)
    return rule


@transaction.atomic
def delete_rule(*, rule: CorrelationRule, actor: Actor) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=rule, changes={"name": [rule.name, None]})
    rule.delete()


# --- Notification channels -------------------------------------------------------------


@transaction.atomic
def save_channel(
    *,
    actor: Actor,
    channel: NotificationChannel | None = None,
    name: str | None = None,
    kind: str | None = None,
    target: str | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
) -> NotificationChannel:
    """Create or update a channel. The webhook secret is stored encrypted and never shown again."""
    from opsportal.encryption import encrypt

    from .notifications import OutboundRefused, check_outbound_url

    created = channel is None
    channel = channel or NotificationChannel()
    before = {} if created else audit.snapshot(channel, ("name", "kind", "target", "enabled"))
    for key, value in (("name", name), ("kind", kind), ("target", target), ("enabled", enabled)):
        if value is not None:
            setattr(channel, key, value.strip() if isinstance(value, str) else value)
    if not channel.name:
        raise ValueError("name: required.")
    if channel.kind not in NotificationChannel.Kind.values:
        raise ValueError(f"kind: must be one of {', '.join(NotificationChannel.Kind.values)}.")
    if not channel.target:
        raise ValueError("target: required (email addresses or a URL).")
    if channel.kind == NotificationChannel.Kind.EMAIL:
        from django.core.validators import validate_email

        for address in channel.target.split(","):
            try:
                validate_email(address.strip())
            except Exception:
                raise ValueError(f"target: {address.strip()!r} is not an email address.") from None
    else:
        try:
            check_outbound_url(channel.target)
        except OutboundRefused as exc:
            raise ValueError(f"target: {exc}.") from None
    if NotificationChannel.objects.filter(name__iexact=channel.name).exclude(pk=channel.pk).exists():
        raise ValueError(f"name: a channel named {channel.name!r} already exists.")
    if secret is not None:
        channel.secret_encrypted = encrypt(secret)
    channel.save()
    changes = audit.diff(before, audit.snapshot(channel, ("name", "kind", "target", "enabled")))
    if secret is not None:
        changes["secret"] = ["***", "*** (changed)"]
    audit.record(
        action=audit.Action.CREATE if created else audit.Action.UPDATE, actor=actor, obj=channel, changes=changes
    )
    return channel


@transaction.atomic
def save_route(
    *, actor: Actor, channel: NotificationChannel, severities: list[str], services: list[str], enabled: bool = True
) -> NotificationRoute:
    unknown = [s for s in severities if s not in SEVERITY_RANK]
    if unknown:
        raise ValueError(f"severities: unknown {', '.join(unknown)}; use {', '.join(SEVERITY_RANK)}.")
    route = NotificationRoute.objects.create(
        channel=channel, severities=severities, services=[s.strip() for s in services if s.strip()], enabled=enabled
    )
    audit.record(action=audit.Action.CREATE, actor=actor, obj=route, changes={"route": [None, str(route)]})
    return route


@transaction.atomic
def delete_route(*, route: NotificationRoute, actor: Actor) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=route, changes={"route": [str(route), None]})
    route.delete()


@transaction.atomic
def delete_channel(*, channel: NotificationChannel, actor: Actor) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=channel, changes={"name": [channel.name, None]})
    channel.delete()
