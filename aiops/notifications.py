"""Incident notifications: routing into an outbox, and sending by email or (signed) webhook.

`queue()` runs inside the transaction that changed the incident and writes one
`Notification` row per matching route; a task sends each after commit. Rows
still pending are re-enqueued by a periodic sweeper, so none is lost when the
broker is down. Webhooks go through `opsportal.outbound` (allow-list, no
redirects, DNS-rebinding safe, HMAC signature).
"""

from __future__ import annotations

import datetime
import json
import time

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.encryption import decrypt
from opsportal.outbound import (  # noqa: F401 (check_outbound_url is part of this module's API)
    SIGNATURE_HEADER,
    HTTPStatusError,
    OutboundRefused,
    check_outbound_url,
    post_json,
    sign,
)
from opsportal.enqueue import enqueue_on_commit, resend

from .models import Incident, IncidentEvent, Notification, NotificationChannel, NotificationRoute

MAX_ATTEMPTS = 6


class PermanentFailure(Exception):
    """Sending cannot succeed by trying again (e.g. the signing secret cannot be decrypted)."""


def queue(items: list[tuple[Incident, str]]) -> list[Notification]:
    """Create the notifications routed for (incident, event) pairs and send them after commit."""
    routes = list(NotificationRoute.objects.filter(enabled=True, channel__enabled=True).select_related("channel"))
    if not routes:
        return []
    rows = []
    for incident, event in items:
        channels = {route.channel_id: route.channel for route in routes if route.wants(incident)}
        rows += [Notification(incident=incident, channel=channel, event=event) for channel in channels.values()]
    Notification.objects.bulk_create(rows)
    for row in rows:
        enqueue_on_commit("aiops.tasks.send_notification", row.pk)
    return rows


def requeue_pending(older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
    now = timezone.now()
    # Never tried and left behind, or a retry overdue by a minute (its task was lost).
    due = Q(next_attempt_at__isnull=True, created_at__lt=now - older_than) | Q(
        next_attempt_at__lt=now - datetime.timedelta(minutes=1)
    )
    ids = list(
        Notification.objects.filter(due, status=Notification.Status.PENDING)
        .order_by("created_at")
        .values_list("id", flat=True)[:1000]
    )
    return resend("aiops.tasks.send_notification", ids)


def retry_delay_for(notification_id: int) -> datetime.timedelta:
    notification = Notification.objects.filter(pk=notification_id).first()
    return notification.retry_delay() if notification else datetime.timedelta(seconds=8)


def incident_document(incident: Incident, event: str) -> dict:
    return {
        "event": event,
        "incident": {
            "id": incident.pk,
            "title": incident.title,
            "status": incident.status,
            "severity": incident.effective_severity,
            "service": incident.service,
            "created_at": incident.created_at.isoformat(),
            "acknowledged_at": incident.acknowledged_at.isoformat() if incident.acknowledged_at else None,
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "alert_count": incident.alert_count,
            "url": f"{settings.OPSPORTAL_BASE_URL}{incident.get_absolute_url()}",
        },
    }


def deliver(channel: NotificationChannel, incident: Incident, event: str) -> int | None:
    """Send once; returns the HTTP status (None for email). Raises on failure."""
    document = incident_document(incident, event)
    text = (
        f"[{incident.effective_severity.upper()}] {event}: #{incident.pk} {incident.title}"
        f" ({incident.service or 'no service'}) {document['incident']['url']}"
    )
    if channel.kind == NotificationChannel.Kind.EMAIL:
        recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
        subject = " ".join(text.split())[:200]  # a line break in a subject is refused (BadHeaderError)
        send_mail(subject, json.dumps(document, indent=2), None, recipients, fail_silently=False)
        return None
    if channel.kind == NotificationChannel.Kind.SLACK:
        return post_json(channel.target, json.dumps({"text": text}).encode())
    timestamp = int(time.time())
    try:
        secret = decrypt(channel.secret_encrypted)
    except ValueError as exc:
        raise PermanentFailure(f"{exc}; an admin must enter the channel's signing secret again") from None
    body = json.dumps(document).encode()
    headers = {"X-OpsPortal-Timestamp": str(timestamp), "X-OpsPortal-Event": event}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return post_json(channel.target, body, headers)


def send(*, notification_id: int) -> str:
    """Attempt one notification. Returns 'sent', 'failed', 'retry' or 'gone'."""
    with transaction.atomic():
        notification = (
            # of=("self",): lock only this row; the incident and channel rows stay free for triage and other sends.
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("incident", "channel")
            .filter(pk=notification_id, status=Notification.Status.PENDING)
            .first()
        )
        if notification is None:
            return "gone"
        notification.attempts += 1
        channel, incident = notification.channel, notification.incident
        if not channel.enabled:
            return _finish(notification, Notification.Status.FAILED, "not sent: the channel was disabled")
        try:
            code = deliver(channel, incident, notification.event)
        except OutboundRefused as exc:
            return _finish(notification, Notification.Status.FAILED, f"refused: {exc}")
        except PermanentFailure as exc:
            return _finish(notification, Notification.Status.FAILED, str(exc))
        except HTTPStatusError as exc:
            notification.response_code = exc.code
            permanent = 300 <= exc.code < 500 and exc.code not in (408, 429)
            error = f"HTTP {exc.code}"
            if 300 <= exc.code < 400:
                error += " (redirects are not followed: set the channel's target to the final URL)"
            return _finish(notification, Notification.Status.FAILED if permanent else None, error)
        except Exception as exc:  # network errors, SMTP errors: retried
            return _finish(notification, None, f"{type(exc).__name__}: {exc}")
        notification.response_code = code
        return _finish(notification, Notification.Status.SENT, "")


def _finish(notification: Notification, status: str | None, error: str) -> str:
    """Record the attempt on the row and the incident's timeline. status None means 'retry if attempts remain'."""
    if status is None:
        status = Notification.Status.FAILED if notification.attempts >= MAX_ATTEMPTS else Notification.Status.PENDING
    notification.status = status
    notification.last_error = error
    notification.next_attempt_at = (
        timezone.now() + notification.retry_delay() if status == Notification.Status.PENDING else None
    )
    if status == Notification.Status.SENT:
        notification.sent_at = timezone.now()
    notification.save()
    channel = notification.channel
    code = f" (HTTP {notification.response_code})" if notification.response_code else ""
    if status == Notification.Status.SENT:
        message = f"Notified {channel.name} ({channel.get_kind_display()}) of “{notification.event}”{code}."
    elif status == Notification.Status.PENDING:
        message = f"Notifying {channel.name} failed (attempt {notification.attempts}, will retry): {error}"
    else:
        message = f"Notifying {channel.name} failed for good after {notification.attempts} attempt(s): {error}"
    IncidentEvent.objects.create(
        incident=notification.incident,
        kind=IncidentEvent.Kind.NOTIFICATION,
        message=message,
        actor_name="system",
        data={"channel": channel.pk, "attempt": notification.attempts, "status": status, "event": notification.event},
    )
    return {"sent": "sent", "failed": "failed", "pending": "retry"}[status]
