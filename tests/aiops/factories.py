"""AIOps test data, made as the app makes it: senders' payloads posted to ingest, the rest through services."""

from __future__ import annotations

import datetime
import itertools
import json

from django.test import Client
from django.utils import timezone

from aiops import services
from aiops.models import Incident, Integration, NotificationChannel, Silence

_keys = itertools.count()


def deliver(integration: Integration, token: str | None, payload, client: Client | None = None, **headers):
    """POST a payload to the integration's URL as a sender would."""
    client = client or Client()
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(integration.ingest_path(), data=body, content_type="application/json", **extra)


def am_alert(
    alertname: str = "HighErrorRate",
    service: str = "checkout",
    status: str = "firing",
    severity: str = "critical",
    fingerprint: str | None = None,
    **labels: str,
) -> dict:
    starts = (timezone.now() - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    ends = "0001-01-01T00:00:00Z" if status == "firing" else timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    alert = {
        "status": status,
        "labels": {"alertname": alertname, "service": service, "severity": severity, **labels},
        "annotations": {"summary": f"{alertname} on {service}", "description": "Error rate above 5% for 5 minutes."},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": f"http://prometheus.example:9090/graph?g0.expr={alertname}",
    }
    if fingerprint is not None:
        alert["fingerprint"] = fingerprint
    return alert


def am_payload(*alerts: dict, group_key: str = '{}:{alertname="HighErrorRate"}') -> dict:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "receiver": "opsportal",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def integration(kind: str = "alertmanager", name: str | None = None, actor=None, **kwargs) -> tuple[Integration, str]:
    """A sender's integration and its raw token."""
    return services.create_integration(name=name or f"{kind} test", kind=kind, actor=actor, **kwargs)


def fire(integration: Integration, token: str, *alerts: dict) -> None:
    """Deliver Alertmanager alerts to the ingest endpoint and let the worker correlate them."""
    response = deliver(integration, token, am_payload(*alerts, group_key=f"factory-{next(_keys)}"))
    assert response.status_code == 202, response.content
    services.process_pending_alerts()


def incident(integration: Integration, token: str, service: str = "checkout", **alert: str) -> Incident:
    """The incident one firing Alertmanager alert for `service` opens."""
    fire(integration, token, am_alert(service=service, **alert))
    return Incident.objects.get(service=service)


def silence(*, actor, comment: str = "maintenance", hours: float = 1, **labels: str) -> Silence:
    """An active silence matching `labels` exactly."""
    return services.create_silence(
        matchers=[{"label": key, "op": "=", "value": value} for key, value in labels.items()],
        ends_at=timezone.now() + datetime.timedelta(hours=hours),
        comment=comment,
        actor=actor,
    )


def email_channel(*, actor, to: str = "oncall@example.com", name: str = "on-call mail", **route) -> NotificationChannel:
    """An email channel with one route (any severity and service unless `severities`/`services` are given)."""
    return services.create_channel_with_route(
        actor=actor,
        name=name,
        kind=NotificationChannel.Kind.EMAIL,
        target=to,
        secret=None,
        severities=route.get("severities", []),
        services=route.get("services", []),
    )
