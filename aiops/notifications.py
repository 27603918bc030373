"""Incident notifications: routing into an outbox, and sending by email or (signed) webhook.

`queue()` runs inside the transaction that changed the incident and writes one
`Notification` row per matching route; a task sends each after commit. The rows
are an `opsportal.outbox` (one sender, backoff and sweeper for every outbox):
webhooks go through `opsportal.outbound` (allow-list, no redirects, DNS-rebinding
safe, HMAC signature), Slack channels get an unsigned text message, email channels
a mail; every attempt goes on the incident's timeline.
"""

from __future__ import annotations

import datetime
import json

from django.conf import settings
from django.core.mail import send_mail

from opsportal import outbox
from opsportal.encryption import decrypt
from opsportal.enqueue import enqueue_on_commit
from opsportal.outbound import (  # noqa: F401 (OutboundRefused and check_outbound_url are part of this module's API)
    OutboundRefused,
    check_outbound_url,
    post_json,
)

from .models import Incident, IncidentEvent, Notification, NotificationChannel, NotificationRoute

MAX_ATTEMPTS = outbox.MAX_ATTEMPTS


def queue(items: list[tuple[Incident, str]]) -> list[Notification]:
    """Create the notifications routed for (incident, event) pairs and send them after commit."""
    routes = list(NotificationRoute.objects.filter(enabled=True, channel__enabled=True).select_related("channel"))
    if not routes:
        return []
    rows = []
    for incident, event in items:
        channels = {route.channel_id: route.channel for route in routes if route.wants(incident)}
        rows += [
            Notification(incident=incident, channel=channel, event=event, target=channel.target)
            for channel in channels.values()
        ]
    Notification.objects.bulk_create(rows)
    for row in rows:
        enqueue_on_commit(NOTIFICATIONS.task, row.pk)
    return rows


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


class Notifications(outbox.Outbox[Notification]):
    """The notification outbox: the document describes the incident as it is when sent."""

    model = Notification
    task = "aiops.tasks.send_notification"
    select_related = ("incident", "channel")
    target_label = "the channel's target"

    def prepare(self, message: Notification) -> str:
        channel = message.channel
        if not channel.enabled:
            return "not sent: the channel was disabled"
        # An admin may have fixed the channel's target while a retry waited.
        message.target = channel.target
        message.payload = incident_document(message.incident, message.event)
        return ""

    def signing_secret(self, message: Notification) -> str:
        try:
            return decrypt(message.channel.secret_encrypted)
        except ValueError as exc:
            raise outbox.PermanentFailure(f"{exc}; an admin must enter the channel's signing secret again") from None

    def deliver(self, message: Notification) -> int | None:
        """Email and Slack channels get a text; webhook channels the signed document."""
        kind = message.channel.kind
        if kind == NotificationChannel.Kind.WEBHOOK:
            return super().deliver(message)
        incident, event = message.incident, message.event
        text = (
            f"[{incident.effective_severity.upper()}] {event}: #{incident.pk} {incident.title}"
            f" ({incident.service or 'no service'}) {message.payload['incident']['url']}"
        )
        if kind == NotificationChannel.Kind.SLACK:
            return post_json(message.target, json.dumps({"text": text}).encode())
        recipients = [a.strip() for a in message.target.split(",") if a.strip()]
        subject = " ".join(text.split())[:200]  # a line break in a subject is refused (BadHeaderError)
        send_mail(subject, json.dumps(message.payload, indent=2), None, recipients, fail_silently=False)
        return None

    def recorded(self, message: Notification) -> None:
        """Each attempt is a line on the incident's timeline."""
        channel, status = message.channel, message.status
        code = f" (HTTP {message.response_code})" if message.response_code else ""
        if status == Notification.Status.SENT:
            text = f"Notified {channel.name} ({channel.get_kind_display()}) of “{message.event}”{code}."
        elif status == Notification.Status.PENDING:
            text = f"Notifying {channel.name} failed (attempt {message.attempts}, will retry): {message.last_error}"
        else:
            text = f"Notifying {channel.name} failed for good after {message.attempts} attempt(s): {message.last_error}"
        IncidentEvent.objects.create(
            incident=message.incident,
            kind=IncidentEvent.Kind.NOTIFICATION,
            message=text,
            actor_name="system",
            data={"channel": channel.pk, "attempt": message.attempts, "status": status, "event": message.event},
        )


NOTIFICATIONS = Notifications()


def send(*, notification_id: int) -> str:
    """Attempt one notification. Returns 'sent', 'failed', 'retry' or 'gone'."""
    return NOTIFICATIONS.send(notification_id)


def requeue_pending(older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
    """Re-enqueue notifications left pending (broker down at commit, or a worker died)."""
    return NOTIFICATIONS.requeue_pending(older_than=older_than)
