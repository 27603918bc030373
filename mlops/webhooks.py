"""Registry webhooks: an outbox written with the registry change, sent by Celery with retries.

Each call is a JSON POST signed like every OpsPortal webhook: `X-OpsPortal-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<unix>." + body>` with the webhook's secret, plus
`X-OpsPortal-Event` and `X-OpsPortal-Delivery` (the delivery id, for receivers that
deduplicate). Outgoing URLs pass `opsportal.outbound`'s allow-list.
"""

from __future__ import annotations

import datetime
import json
import secrets
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.encryption import decrypt, encrypt
from opsportal.outbound import SIGNATURE_HEADER, HTTPStatusError, OutboundRefused, check_outbound_url, post_json, sign
from opsportal.enqueue import enqueue_on_commit, resend

from .models import ModelVersion, RegisteredModel, Webhook, WebhookDelivery

MAX_ATTEMPTS = 6


class WebhookInvalid(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _clean(url: str, events: list[str] | None) -> list[str]:
    try:
        check_outbound_url(url)
    except OutboundRefused as exc:
        raise WebhookInvalid(str(exc), "url") from None
    events = list(events or [])
    unknown = sorted(set(events) - set(Webhook.Event.values))
    if unknown:
        raise WebhookInvalid(
            f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(Webhook.Event.values)}", "events"
        )
    return events


@transaction.atomic
def create_webhook(
    *, name: str, url: str, actor, events: list[str] | None = None, model: RegisteredModel | None = None,
    secret: str = "",
) -> tuple[Webhook, str]:  # fmt: skip
    """Create a webhook; returns it and its signing secret (generated unless given), shown only now."""
    events = _clean(url, events)
    secret = secret or secrets.token_urlsafe(32)
    hook = Webhook.objects.create(name=name, url=url, events=events, model=model, secret=encrypt(secret))
    audit.record(action="create", actor=actor, obj=hook, message=f"Registry webhook {name} -> {url}")
    return hook, secret


@transaction.atomic
def update_webhook(*, webhook: Webhook, actor, **fields) -> Webhook:
    url = fields.get("url", webhook.url)
    if "url" in fields or "events" in fields:
        fields["events"] = _clean(url, fields.get("events", webhook.events))
    before = audit.snapshot(webhook, fields)
    for key, value in fields.items():
        setattr(webhook, key, value)
    webhook.save()
    audit.record(action="update", actor=actor, obj=webhook, changes=audit.diff(before, audit.snapshot(webhook, fields)))
    return webhook


@transaction.atomic
def delete_webhook(*, webhook: Webhook, actor) -> None:
    audit.record(action="delete", actor=actor, obj=webhook)
    webhook.delete()


def document(event: str, model: RegisteredModel, version: ModelVersion | None, actor, data: dict) -> dict:
    body = {
        "event": event,
        "timestamp": timezone.now().isoformat(),
        "actor": actor.get_username() if actor is not None and actor.is_authenticated else "system",
        "model": {"name": model.name, "url": f"{settings.OPSPORTAL_BASE_URL}{model.get_absolute_url()}"},
        "data": data,
    }
    if version is not None:
        body["version"] = {
            "version": str(version.version),
            "stage": version.stage,
            "source": version.source,
            "run_id": version.run_id,
            "url": f"{settings.OPSPORTAL_BASE_URL}{version.get_absolute_url()}",
        }
    return body


def queue(event: str, model: RegisteredModel, *, version: ModelVersion | None = None, actor=None, **data) -> int:
    """Write one delivery per interested webhook (in the caller's transaction) and send each after commit."""
    hooks = [h for h in Webhook.objects.filter(Q(model__isnull=True) | Q(model=model), enabled=True)
             if h.wants(event, model.pk)]  # fmt: skip
    if not hooks:
        return 0
    payload = audit._plain(document(event, model, version, actor, data))
    rows = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=hook, event=event, payload=payload) for hook in hooks]
    )
    for row in rows:
        enqueue_on_commit("mlops.tasks.send_webhook", row.pk)
    return len(rows)


def send(*, delivery_id: int) -> str:
    """Attempt one delivery. Returns 'sent', 'failed', 'retry' or 'gone'."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("webhook")
            .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
            .first()
        )
        if delivery is None:
            return "gone"
        delivery.attempts += 1
        hook = delivery.webhook
        if not hook.enabled:
            return _finish(delivery, WebhookDelivery.Status.FAILED, "not sent: the webhook was disabled")
        try:
            secret = decrypt(hook.secret)
        except ValueError as exc:
            return _finish(delivery, WebhookDelivery.Status.FAILED, f"{exc}; set the webhook's secret again")
        body = json.dumps(delivery.payload).encode()
        timestamp = int(time.time())
        headers = {
            "X-OpsPortal-Event": delivery.event,
            "X-OpsPortal-Delivery": str(delivery.pk),
            "X-OpsPortal-Timestamp": str(timestamp),
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            delivery.response_code = post_json(hook.url, body, headers)
        except OutboundRefused as exc:
            return _finish(delivery, WebhookDelivery.Status.FAILED, f"refused: {exc}")
        except HTTPStatusError as exc:
            delivery.response_code = exc.code
            permanent = 300 <= exc.code < 500 and exc.code not in (408, 429)
            return _finish(delivery, WebhookDelivery.Status.FAILED if permanent else None, f"HTTP {exc.code}")
        except Exception as exc:  # network errors: retried
            return _finish(delivery, None, f"{type(exc).__name__}: {exc}")
        return _finish(delivery, WebhookDelivery.Status.SENT, "")


def _finish(delivery: WebhookDelivery, status: str | None, error: str) -> str:
    if status is None:
        status = WebhookDelivery.Status.FAILED if delivery.attempts >= MAX_ATTEMPTS else WebhookDelivery.Status.PENDING
    delivery.status = status
    delivery.last_error = error[:500]
    now = timezone.now()
    delivery.next_attempt_at = now + delivery.retry_delay() if status == WebhookDelivery.Status.PENDING else None
    if status == WebhookDelivery.Status.SENT:
        delivery.delivered_at = now
    delivery.save()
    return {"sent": "sent", "failed": "failed", "pending": "retry"}[status]


def retry_delay_for(delivery_id: int) -> datetime.timedelta:
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    return delivery.retry_delay() if delivery else datetime.timedelta(seconds=8)


def requeue_pending(older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
    """Re-enqueue deliveries left pending (broker down at commit, or a worker died)."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True, created_at__lt=now - older_than) | Q(
        next_attempt_at__lt=now - datetime.timedelta(minutes=1)
    )
    ids = list(
        WebhookDelivery.objects.filter(due, status=WebhookDelivery.Status.PENDING)
        .order_by("created_at")
        .values_list("id", flat=True)[:1000]
    )
    return resend("mlops.tasks.send_webhook", ids)
