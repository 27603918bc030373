"""Registry webhooks: an outbox (`opsportal.outbox`) written with the registry change, sent by Celery with retries.

Each call is a JSON POST signed like every OpsPortal webhook: `X-OpsPortal-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<unix>." + body>` with the webhook's secret, plus
`X-OpsPortal-Timestamp`, `X-OpsPortal-Event` and `X-OpsPortal-Delivery` (the delivery
id, the same on every retry, for receivers that deduplicate). Outgoing URLs pass
`opsportal.outbound`'s allow-list. The `WebhookDelivery` rows are the delivery log.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from opsportal import outbox
from opsportal.audit import services as audit
from opsportal.encryption import decrypt
from opsportal.enqueue import enqueue_on_commit

from .models import ModelVersion, RegisteredModel, Webhook, WebhookDelivery

MAX_ATTEMPTS = outbox.MAX_ATTEMPTS


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
        [WebhookDelivery(webhook=hook, event=event, payload=payload, target=hook.url) for hook in hooks]
    )
    for row in rows:
        enqueue_on_commit(DELIVERIES.task, row.pk)
    return len(rows)


class Deliveries(outbox.Outbox[WebhookDelivery]):
    """The webhook outbox: the payload is the registry change as it was when queued."""

    model = WebhookDelivery
    task = "mlops.tasks.send_webhook"
    select_related = ("webhook",)
    target_label = "the webhook's URL"

    def prepare(self, message: WebhookDelivery) -> str:
        hook = message.webhook
        if not hook.enabled:
            return "not sent: the webhook was disabled"
        # An admin may have fixed the webhook's URL while a retry waited.
        message.target = hook.url
        return ""

    def signing_secret(self, message: WebhookDelivery) -> str:
        try:
            return decrypt(message.webhook.secret)
        except ValueError as exc:
            raise outbox.PermanentFailure(f"{exc}; set the webhook's secret again") from None


DELIVERIES = Deliveries()


def send(*, delivery_id: int) -> str:
    """Attempt one delivery. Returns 'sent', 'failed', 'retry' or 'gone'."""
    return DELIVERIES.send(delivery_id)


def requeue_pending(older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
    """Re-enqueue deliveries left pending (broker down at commit, or a worker died)."""
    return DELIVERIES.requeue_pending(older_than=older_than)
