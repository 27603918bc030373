"""Integrations: the senders' endpoints, their secret tokens, and test alerts sent through them."""

from __future__ import annotations

import datetime
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from opsportal.accounts.models import hash_token, new_raw_token
from opsportal.audit import services as audit
from opsportal.audit.context import current_ip
from opsportal.errors import Conflict, InvalidInput, NotAllowed

from ..models import Alert, Delivery, Incident, Integration
from ..parsers import compute_fingerprint, is_web_url, parse
from .actor import Actor, actor_name, user_of
from .correlation import process_pending_alerts
from .ingest import delivery_digest, ingest_delivery


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


# --- Send test alert ----------------------------------------------------------------------------------------

TEST_ALERT_NAME = "OpsPortalTestAlert"
TEST_ALERT_SERVICE = "opsportal-test"
TEST_ALERT_TITLE = "Test alert from OpsPortal"
# Correlation runs in the request when at most this many alert changes wait before the test alert;
# behind a longer backlog the worker links it, and the page shows it pending until then.
INLINE_CORRELATION_BACKLOG = 500


@dataclass
class SentTestAlert:
    """What a test alert did: the delivery and alert stored, and the incident it opened or joined."""

    delivery: Delivery
    alert: Alert
    incident: Incident | None  # None while still waiting for correlation, or when a silence suppressed it

    @property
    def pending(self) -> bool:
        return self.incident is None and self.alert.pending

    @property
    def opened(self) -> bool:
        """True when the test alert opened its incident (False: it joined an open one)."""
        return self.incident is not None and self.incident.created_at >= self.alert.first_seen_at


def send_test_alert(*, integration: Integration, actor: Actor, source_url: str = "") -> SentTestAlert:
    """Run a sample delivery in the integration's own format through the real pipeline.

    The payload is parsed and ingested exactly as a sender's delivery (silences, deduplication,
    delivery history), then correlated (in this call unless a long backlog waits; else by the
    worker), so it opens or joins an incident and notifies as routes say. Every call is a new
    alert (its `test_id` label and the delivery's idempotency key are new each time), never a
    duplicate delivery. `source_url` becomes the alert's source link (the page it was sent from).
    """
    if integration.is_internal:
        raise NotAllowed(
            f"the {integration.internal_source} app raises these alerts itself; there is no sender to test."
        )
    if integration.kind == Integration.Kind.LOGS:
        raise NotAllowed("a logs integration receives log records, not alerts; send a log line instead.")
    if not integration.enabled:
        raise Conflict("the integration is disabled and refuses deliveries; enable it first.", code="disabled")
    test_id = uuid.uuid4().hex[:12]
    now = timezone.now()
    body = sample_payload(
        integration.kind, test_id=test_id, sent_by=actor_name(actor), at=now,
        integration_name=integration.name, source_url=source_url if is_web_url(source_url) else "",
    )  # fmt: skip
    raw = json.dumps(body).encode()
    parsed = parse(integration.kind, body)
    parsed.meta["test_alert"] = {"test_id": test_id, "by": actor_name(actor)}
    with transaction.atomic():
        result = ingest_delivery(
            integration=integration,
            payload=parsed,
            digest=delivery_digest(raw, f"opsportal-test-alert:{test_id}"),
            remote_addr=current_ip.get(),
        )
        alert = Alert.objects.get(integration=integration, fingerprint=result.fingerprints[0], status="firing")
        audit.record(
            action=audit.Action.CREATE, actor=actor, obj=integration, changes={"test_alert": [None, alert.pk]},
            message=f"Sent a test alert (alert {alert.pk}, test_id {test_id}).",
        )  # fmt: skip
    if alert.pending and Alert.objects.filter(pending=True, pk__lte=alert.pk).count() <= INLINE_CORRELATION_BACKLOG:
        process_pending_alerts(limit=INLINE_CORRELATION_BACKLOG)
        alert.refresh_from_db(fields=["pending", "pending_change", "incident"])
    return SentTestAlert(delivery=result.delivery, alert=alert, incident=alert.incident)


def sample_payload(
    kind: str, *, test_id: str, sent_by: str, at: datetime.datetime, integration_name: str, source_url: str = ""
) -> dict[str, Any]:
    """A firing test alert as that kind of sender posts it (Alertmanager v4, Grafana, PagerDuty v2, generic)."""
    labels = {"alertname": TEST_ALERT_NAME, "service": TEST_ALERT_SERVICE, "severity": "warning", "test_id": test_id}
    description = (
        f"Sent by {sent_by} with “Send test alert” on the {integration_name} integration at "
        f"{at:%Y-%m-%d %H:%M:%S} UTC. Nothing is wrong; resolve the incident when you have seen it."
    )
    annotations = {"summary": TEST_ALERT_TITLE, "description": description}
    started = at.isoformat().replace("+00:00", "Z")
    if kind in (Integration.Kind.ALERTMANAGER, Integration.Kind.GRAFANA):
        alert = {
            "status": "firing", "labels": labels, "annotations": annotations, "startsAt": started,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": source_url,
            "fingerprint": compute_fingerprint(labels)[:16],
        }  # fmt: skip
        payload = {
            "version": "4", "receiver": "opsportal", "status": "firing", "alerts": [alert],
            "groupLabels": {"alertname": TEST_ALERT_NAME}, "commonLabels": labels, "commonAnnotations": annotations,
            "externalURL": source_url, "groupKey": f'{{}}:{{test_id="{test_id}"}}', "truncatedAlerts": 0,
        }  # fmt: skip
        if kind == Integration.Kind.GRAFANA:
            alert["values"] = {"A": 1}
            alert["valueString"] = "[ var='A' labels={} value=1 ]"
            payload.update(version="1", orgId=1, state="alerting", title=f"[FIRING:1] {TEST_ALERT_NAME}")
            payload["message"] = f"**Firing**\n\n{TEST_ALERT_TITLE}\n{description}"
        return payload
    if kind == Integration.Kind.PAGERDUTY:
        event: dict[str, Any] = {
            "event_action": "trigger",
            "dedup_key": f"opsportal-test-{test_id}",
            "payload": {
                "summary": TEST_ALERT_TITLE, "source": "opsportal", "severity": "warning",
                "component": TEST_ALERT_SERVICE, "class": "test", "timestamp": started,
                "custom_details": {"description": description, "test_id": test_id},
            },
            "client": "OpsPortal",
        }  # fmt: skip
        if source_url:
            event["client_url"] = source_url
        return event
    alert = {
        "title": TEST_ALERT_TITLE, "severity": "warning", "service": TEST_ALERT_SERVICE, "source": "opsportal",
        "description": description, "labels": {"alertname": TEST_ALERT_NAME, "test_id": test_id},
        "fingerprint": f"opsportal-test-{test_id}", "occurred_at": started,
    }  # fmt: skip
    if source_url:
        alert["links"] = [{"href": source_url, "text": "Source"}]
    return alert
