"""Registry webhooks: create, change and delete them (sending is `mlops.webhooks`'s outbox)."""

from __future__ import annotations

import secrets

from django.db import transaction

from opsportal.audit import services as audit
from opsportal.encryption import encrypt
from opsportal.errors import InvalidInput
from opsportal.outbound import OutboundRefused, check_outbound_url

from ..models import RegisteredModel, Webhook
from .history import Actor


class WebhookInvalid(InvalidInput):
    """A webhook's URL or events are refused (400, on that field)."""


def _clean(url: str, events: list[str] | None) -> list[str]:
    """The webhook's events, checked, once its URL passes the outbound allow-list."""
    try:
        check_outbound_url(url)
    except OutboundRefused as exc:
        raise WebhookInvalid(str(exc), field="url") from None
    events = list(events or [])
    unknown = sorted(set(events) - set(Webhook.Event.values))
    if unknown:
        raise WebhookInvalid(
            f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(Webhook.Event.values)}", field="events"
        )
    return events


@transaction.atomic
def create_webhook(
    *, name: str, url: str, actor: Actor, events: list[str] | None = None, model: RegisteredModel | None = None,
    secret: str = "", enabled: bool = True,
) -> tuple[Webhook, str]:  # fmt: skip
    """Create a webhook (a disabled one sends nothing until enabled); returns it and its signing secret
    (generated unless given), shown only now."""
    events = _clean(url, events)
    secret = secret or secrets.token_urlsafe(32)
    hook = Webhook.objects.create(
        name=name, url=url, events=events, model=model, secret=encrypt(secret), enabled=enabled
    )
    audit.record(action="create", actor=actor, obj=hook, message=f"Registry webhook {name} -> {url}")
    return hook, secret


@transaction.atomic
def update_webhook(*, webhook: Webhook, actor: Actor, **fields: object) -> Webhook:
    """Change a webhook's fields; a new URL or event list is checked as on creation."""
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
def delete_webhook(*, webhook: Webhook, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=webhook)
    webhook.delete()
