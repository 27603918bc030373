"""AIOps test data, made through the services (and the ingest endpoint) as the app makes it."""

from __future__ import annotations

import datetime
import itertools

from django.utils import timezone

from aiops import services
from aiops.models import Incident, Integration, NotificationChannel, Silence

from .conftest import am_alert, am_payload, deliver

_keys = itertools.count()


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
