"""Ingest: one sender delivery's alerts, deduplicated by fingerprint and committed in the request.

Speed matters here (see bench/bench_aiops.py): the common case, a sender repeating
firing alerts unchanged, is one statement; new alerts go in with COPY.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from opsportal.bulk import copy_rows, fast_bulk_create, fast_bulk_update
from opsportal.enqueue import enqueue_on_commit

from ..models import Alert, AlertDelivery, Delivery, Integration, Silence
from ..parsers import ParsedAlert, ParsedPayload

ALERT_REFRESH_FIELDS = [
    "status", "severity", "title", "description", "labels", "annotations", "ends_at", "last_seen_at", "times_seen",
    "links", "raw", "pending", "pending_change", "content_hash",
]  # fmt: skip
LAST_DELIVERY_RESOLUTION = datetime.timedelta(seconds=10)
# Deliveries arriving within this many seconds share one correlation task.
CORRELATION_DEBOUNCE_SECONDS = 1
# An identical body from the same sender within this window is a retry, not a new delivery.
DUPLICATE_WINDOW_SECONDS = 600


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
    """What recognises a sender's retry: the Idempotency-Key if it sent one, else the body."""
    if idempotency_key:
        return hashlib.sha256(b"key:" + idempotency_key.encode()).hexdigest()
    return hashlib.sha256(body).hexdigest()


def active_silences(now: datetime.datetime | None = None) -> list[Silence]:
    """The silences in force at `now` (default: now)."""
    now = now or timezone.now()
    return list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now, expired_early_at__isnull=True))


def matching_silence(silences: list[Silence], labels: dict[str, str]) -> Silence | None:
    """The first of `silences` that matches these labels."""
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
