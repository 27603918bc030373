"""AIOps fixtures: integrations with their real tokens, and helpers to post native payloads."""

from __future__ import annotations

import datetime
import json

import pytest
from django.test import Client
from django.utils import timezone

from aiops import services
from aiops.models import Integration


@pytest.fixture
def make_integration(admin_user):
    def make(kind: str = "alertmanager", name: str | None = None, **kwargs) -> tuple[Integration, str]:
        return services.create_integration(name=name or f"{kind} test", kind=kind, actor=admin_user, **kwargs)

    return make


@pytest.fixture
def alertmanager(make_integration) -> tuple[Integration, str]:
    return make_integration("alertmanager")


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


@pytest.fixture(autouse=True)
def _no_correlation_debounce_across_tests():
    """The once-a-second correlation debounce lives in the (possibly shared Redis) cache."""
    from django.core.cache import cache

    cache.delete("aiops:correlation-scheduled")
