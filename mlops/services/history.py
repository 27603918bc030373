"""What every registry change writes besides itself: the model's history, the audit log, the webhook outbox."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from opsportal.audit import services as audit

from .. import webhooks
from ..models import ModelVersion, RegisteredModel, VersionEvent

Actor = User | AnonymousUser | None


def actor_user(actor: Actor) -> User | None:
    """The signed-in user behind `actor`, or None for the system and anonymous callers."""
    return actor if actor is not None and actor.is_authenticated else None


def actor_name(actor: Actor) -> str:
    user = actor_user(actor)
    return user.get_username() if user else "system"


def record_event(
    model: RegisteredModel,
    kind: str,
    message: str,
    actor: Actor,
    *,
    version: ModelVersion | None = None,
    audit_action: str | None = None,
    changes: dict | None = None,
    webhook_event: str | None = None,
    **data: object,
) -> VersionEvent:
    """History line + audit entry + webhook outbox rows, in the caller's transaction."""
    event = VersionEvent.objects.create(
        model=model,
        version=version,
        kind=kind,
        message=message[:500],
        data=audit._plain(data),
        actor=actor_user(actor),
        actor_name=actor_name(actor),
    )
    obj = version if version is not None else model
    audit.record(action=audit_action or kind, actor=actor, obj=obj, changes=changes, message=message)
    if webhook_event:
        webhooks.queue(webhook_event, model, version=version, actor=actor, **data)
    return event


def touch(model: RegisteredModel, version: ModelVersion | None = None) -> None:
    """Mark the model (and the version) as just updated, without loading or saving them whole."""
    now = timezone.now()
    RegisteredModel.objects.filter(pk=model.pk).update(updated_at=now)
    model.updated_at = now
    if version is not None:
        ModelVersion.objects.filter(pk=version.pk).update(updated_at=now)
        version.updated_at = now
