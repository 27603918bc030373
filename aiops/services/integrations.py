"""Integrations: the senders' endpoints and their secret tokens."""

from __future__ import annotations

import hmac

from django.db import transaction

from opsportal.accounts.models import hash_token, new_raw_token
from opsportal.audit import services as audit
from opsportal.errors import InvalidInput, NotAllowed

from ..models import Integration
from .actor import Actor, user_of


@transaction.atomic
def create_integration(
    *, name: str, kind: str, actor: Actor, rate_limit_per_minute: int = 6000
) -> tuple[Integration, str]:
    """Create an integration; returns it and its raw token (only its hash is stored)."""
    name = name.strip()
    if not name:
        raise InvalidInput("required.", field="name")
    if kind not in Integration.Kind.values:
        raise InvalidInput(f"must be one of {', '.join(Integration.Kind.values)}.", field="kind")
    if Integration.objects.filter(name__iexact=name).exists():
        raise InvalidInput(f"an integration named {name!r} already exists.", field="name")
    raw = new_raw_token().replace("opp_", "opi_", 1)
    integration = Integration.objects.create(
        name=name,
        kind=kind,
        token_hash=hash_token(raw),
        token_prefix=raw[:10],
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=user_of(actor),
    )
    audit.record(
        action=audit.Action.CREATE, actor=actor, obj=integration, changes={"name": [None, name], "kind": [None, kind]}
    )
    return integration, raw


@transaction.atomic
def rotate_integration_token(*, integration: Integration, actor: Actor) -> str:
    """Replace the token; the old one stops working at once. An app's internal integration has none."""
    if integration.is_internal:
        raise NotAllowed(f"the {integration.internal_source} app raises these alerts; no sender token to rotate.")
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
    """Change what is given (None leaves a field as it is)."""
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
    """True when `raw_token` is the token of this enabled integration (compared in constant time).

    An app's internal integration (see raise_alert) takes no deliveries over HTTP.
    """
    if integration is None or not integration.enabled or integration.internal_source:
        return False
    return hmac.compare_digest(integration.token_hash, hash_token(raw_token))
