"""Incident notifications: routing into an outbox, and sending by email or (signed) webhook.

`queue()` runs inside the transaction that changed the incident and writes one
`Notification` row per matching route; a task sends each after commit. Rows
still pending are re-enqueued by a periodic sweeper, so none is lost when the
broker is down. Outgoing URLs must resolve to public addresses unless an admin
lists the host or network in OPSPORTAL_OUTBOUND_ALLOWLIST. The connection goes to
the very addresses that were checked (a second DNS answer cannot point it
elsewhere), redirects are not followed, and environment proxies are not used.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
import time
from urllib.parse import urlparse

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.encryption import decrypt
from opsportal.system.services import enqueue_on_commit

from .models import Incident, IncidentEvent, Notification, NotificationChannel, NotificationRoute

MAX_ATTEMPTS = 6
TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-OpsPortal-Signature"
MAX_RESPONSE_BYTES = 64 * 1024


class OutboundRefused(Exception):
    """The target URL is not allowed (scheme, or it resolves to a private address)."""


class PermanentFailure(Exception):
    """Sending cannot succeed by trying again (e.g. the signing secret cannot be decrypted)."""


class HTTPStatusError(Exception):
    """The receiver answered with a status other than 2xx."""

    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code


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
    from .tasks import send_notification

    for row in rows:
        enqueue_on_commit(send_notification, row.pk)
    return rows


def requeue_pending(older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
    from .tasks import send_notification

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
    for notification_id in ids:
        send_notification.apply_async(args=[notification_id], retry=False)
    return len(ids)


def retry_delay_for(notification_id: int) -> datetime.timedelta:
    notification = Notification.objects.filter(pk=notification_id).first()
    return notification.retry_delay() if notification else datetime.timedelta(seconds=8)


def check_outbound_url(url: str) -> None:
    """Refuse non-HTTP(S) URLs and hosts resolving to non-public addresses unless allow-listed."""
    _vet(url)


def _vet(url: str) -> list[str] | None:
    """The addresses `url`'s host resolves to, all allowed; None when the host name itself is allow-listed."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise OutboundRefused(f"{url!r} is not an http(s) URL")
    host = parsed.hostname
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundRefused(f"{url!r} has a bad port ({exc})") from None
    allow = settings.OPSPORTAL_OUTBOUND_ALLOWLIST
    if host in allow:
        return None
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global and not any(address in network for network in networks):
            raise OutboundRefused(
                f"{host} resolves to {address}, which is not a public address; "
                "an admin can allow it in OPSPORTAL_OUTBOUND_ALLOWLIST"
            )
        if info[4][0] not in addresses:
            addresses.append(info[4][0])
    return addresses


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


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex>` where v1 = HMAC-SHA256(secret, "<unix>." + body)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _connection(url: str, addresses: list[str] | None) -> http.client.HTTPConnection:
    """A connection to `url`'s host that, when `addresses` is given, connects only to those addresses.

    The Host header and (for HTTPS) the certificate check still use the host name.
    """
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if parsed.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parsed.hostname, port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parsed.hostname, port, timeout=TIMEOUT_SECONDS)
    if addresses is not None:

        def connect_to_checked(_: object, timeout: float, source_address: object = None) -> socket.socket:
            error: OSError = OSError(f"no address to connect to for {parsed.hostname}")
            for address in addresses:
                try:
                    return socket.create_connection((address, port), timeout, source_address)
                except OSError as exc:
                    error = exc
            raise error

        # http.client opens its socket through this attribute (in HTTPConnection.connect).
        connection._create_connection = connect_to_checked
    return connection


def _post_json(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """POST `body` to `url` once; returns the 2xx status. Other statuses (redirects too) raise HTTPStatusError."""
    addresses = _vet(url)
    parsed = urlparse(url)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    connection = _connection(url, addresses)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "OpsPortal", **(headers or {})},
        )
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise HTTPStatusError(response.status)
    return response.status


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
        return _post_json(channel.target, json.dumps({"text": text}).encode())
    timestamp = int(time.time())
    try:
        secret = decrypt(channel.secret_encrypted)
    except ValueError as exc:
        raise PermanentFailure(f"{exc}; an admin must enter the channel's signing secret again") from None
    body = json.dumps(document).encode()
    headers = {"X-OpsPortal-Timestamp": str(timestamp), "X-OpsPortal-Event": event}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return _post_json(channel.target, body, headers)


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
