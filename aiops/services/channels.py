"""Notification channels and their routes (what is sent where; sending is aiops.notifications)."""

from __future__ import annotations

from django.core.validators import validate_email
from django.db import transaction

from opsportal.audit import services as audit
from opsportal.encryption import encrypt
from opsportal.errors import InvalidInput
from opsportal.outbound import OutboundRefused, check_outbound_url

from ..models import SEVERITY_RANK, NotificationChannel, NotificationRoute
from .actor import Actor


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
    created = channel is None
    channel = channel or NotificationChannel()
    before = {} if created else audit.snapshot(channel, ("name", "kind", "target", "enabled"))
    for key, value in (("name", name), ("kind", kind), ("target", target), ("enabled", enabled)):
        if value is not None:
            setattr(channel, key, value.strip() if isinstance(value, str) else value)
    if not channel.name:
        raise InvalidInput("required.", field="name")
    if channel.kind not in NotificationChannel.Kind.values:
        raise InvalidInput(f"must be one of {', '.join(NotificationChannel.Kind.values)}.", field="kind")
    if not channel.target:
        raise InvalidInput("required (email addresses or a URL).", field="target")
    if channel.kind == NotificationChannel.Kind.EMAIL:
        for address in channel.target.split(","):
            try:
                validate_email(address.strip())
            except Exception:
                raise InvalidInput(f"{address.strip()!r} is not an email address.", field="target") from None
    else:
        try:
            check_outbound_url(channel.target)
        except OutboundRefused as exc:
            raise InvalidInput(f"{exc}.", field="target") from None
    if NotificationChannel.objects.filter(name__iexact=channel.name).exclude(pk=channel.pk).exists():
        raise InvalidInput(f"a channel named {channel.name!r} already exists.", field="name")
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
    """Add a route: which severities and services notify `channel` (empty lists mean any)."""
    unknown = [s for s in severities if s not in SEVERITY_RANK]
    if unknown:
        raise InvalidInput(f"unknown {', '.join(unknown)}; use {', '.join(SEVERITY_RANK)}.", field="severities")
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


@transaction.atomic
def create_channel_with_route(
    *,
    actor: Actor,
    name: str,
    kind: str,
    target: str,
    secret: str | None,
    severities: list[str],
    services: list[str],
) -> NotificationChannel:
    """A new channel and its first route, or neither (the channels page creates both in one form)."""
    channel = save_channel(actor=actor, name=name, kind=kind, target=target, secret=secret)
    save_route(actor=actor, channel=channel, severities=severities, services=services)
    return channel
