"""Alerts are grouped into incidents by rules; incidents resolve and reopen with their alerts."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from aiops import services
from aiops.models import Alert, CorrelationRule, Incident, IncidentEvent

from .factories import am_alert, am_payload, deliver

pytestmark = pytest.mark.django_db


def send(integration, token, *alerts, key: str = "k"):
    response = deliver(integration, token, am_payload(*alerts, group_key=f"{key}-{timezone.now().timestamp()}"))
    assert response.status_code == 202, response.content
    services.process_pending_alerts()


def test_default_rule_groups_by_alertname_and_service(alertmanager):
    integration, token = alertmanager
    send(integration, token, am_alert(instance="a"), am_alert(instance="b"), am_alert(service="search", instance="c"))
    incidents = {i.service: i for i in Incident.objects.all()}
    assert set(incidents) == {"checkout", "search"}
    assert incidents["checkout"].alert_count == 2 and incidents["checkout"].firing_count == 2
    assert incidents["checkout"].title == "HighErrorRate on checkout"
    assert incidents["checkout"].links[0]["href"].startswith("http://prometheus.example")
    assert Alert.objects.filter(incident__isnull=True).count() == 0


def test_service_falls_back_to_job(alertmanager):
    integration, token = alertmanager
    a, b = am_alert(instance="1"), am_alert(instance="2")
    for alert in (a, b):
        del alert["labels"]["service"]
        alert["labels"]["job"] = "node"
    send(integration, token, a, b)
    incident = Incident.objects.get()
    assert incident.service == "node" and incident.alert_count == 2


def test_incident_takes_the_highest_severity(alertmanager):
    integration, token = alertmanager
    send(integration, token, am_alert(severity="warning", instance="1"))
    send(integration, token, am_alert(severity="critical", instance="2"))
    assert Incident.objects.get().severity == "critical"


def test_auto_resolve_when_all_alerts_resolve_then_reopen_within_cooldown(alertmanager):
    integration, token = alertmanager
    send(integration, token, am_alert(instance="1"), am_alert(instance="2"))
    send(integration, token, am_alert(instance="1", status="resolved"))
    incident = Incident.objects.get()
    assert incident.status == "triggered" and incident.firing_count == 1
    send(integration, token, am_alert(instance="2", status="resolved"))
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    send(integration, token, am_alert(instance="1"))
    incident.refresh_from_db()
    assert incident.status == "triggered" and Incident.objects.count() == 1
    kinds = list(incident.events.values_list("kind", flat=True))
    assert kinds.count("alert_firing") == 3 and kinds.count("alert_resolved") == 2
    assert "Reopened" in incident.events.filter(kind="status").last().message


def test_after_the_cooldown_a_new_incident_opens(alertmanager):
    integration, token = alertmanager
    send(integration, token, am_alert(instance="1"))
    send(integration, token, am_alert(instance="1", status="resolved"))
    Incident.objects.update(
        resolved_at=timezone.now() - datetime.timedelta(hours=2),
        last_alert_at=timezone.now() - datetime.timedelta(hours=2),
    )
    send(integration, token, am_alert(instance="1"))
    assert Incident.objects.count() == 2


def test_custom_rule_with_regex_matcher_groups_by_cluster(alertmanager, admin_user):
    integration, token = alertmanager
    services.save_rule(
        actor=admin_user, name="prod clusters", position=10,
        matchers=[{"label": "env", "op": "=~", "value": "prod.*"}], group_by=["cluster"],
    )  # fmt: skip
    send(
        integration,
        token,
        am_alert(alertname="A", env="prod-eu", cluster="eu-1"),
        am_alert(alertname="B", service="search", env="prod-eu", cluster="eu-1"),
        am_alert(alertname="C", env="staging", cluster="eu-1"),
    )
    grouped = Incident.objects.get(rule__name="prod clusters")
    assert grouped.alert_count == 2 and grouped.group_labels == {"cluster": "eu-1"}
    assert Incident.objects.get(rule__name__startswith="Default").alert_count == 1


def test_rule_without_auto_resolve_keeps_the_incident_open(alertmanager, admin_user):
    rule = CorrelationRule.objects.get(name__startswith="Default")
    services.save_rule(actor=admin_user, rule=rule, auto_resolve=False)
    integration, token = alertmanager
    send(integration, token, am_alert())
    send(integration, token, am_alert(status="resolved"))
    incident = Incident.objects.get()
    assert incident.status == "triggered" and incident.firing_count == 0


def test_each_change_is_processed_exactly_once(alertmanager):
    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert(instance="1"), am_alert(instance="2")))
    assert services.process_pending_alerts() == 2
    assert services.process_pending_alerts() == 0
    assert Incident.objects.get().alert_count == 2
    assert IncidentEvent.objects.filter(kind="alert_firing").count() == 2


def test_rules_are_validated(admin_api):
    bad = admin_api.post(
        "/api/v1/aiops/rules/",
        {"name": "x", "group_by": ["service"], "matchers": [{"label": "env", "op": "=~", "value": "("}]},
        format="json",
    )
    assert bad.status_code == 400 and "matchers[0].value" in bad.json()["detail"]
    empty = admin_api.post("/api/v1/aiops/rules/", {"name": "y", "group_by": []}, format="json")
    assert empty.status_code == 400 and "group_by" in empty.json()["detail"]
    ok = admin_api.post("/api/v1/aiops/rules/", {"name": "z", "group_by": ["cluster"]}, format="json")
    assert ok.status_code == 201
