"""Senders post native payloads; alerts are stored once, deduplicated, and bad input is refused whole."""

from __future__ import annotations

import json
import time

import pytest

from aiops import services
from aiops.models import Alert, AlertDelivery, Delivery, Incident
from tests.helpers import client_for

from .factories import am_alert, am_payload, deliver

pytestmark = pytest.mark.django_db


def test_admin_creates_an_integration_and_gets_url_and_token_once(admin_api, viewer_api, operator_api):
    response = admin_api.post("/api/v1/aiops/integrations/", {"name": "prod AM", "kind": "alertmanager"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert {"id", "name", "kind", "url", "token"} <= set(body)
    assert body["url"] == f"http://testserver/api/v1/aiops/ingest/{body['id']}/"
    assert body["token"].startswith("opi_")
    listed = admin_api.get("/api/v1/aiops/integrations/").json()["results"][0]
    assert "token" not in listed and body["token"] not in json.dumps(listed)
    assert viewer_api.get("/api/v1/aiops/integrations/").status_code == 200
    for client in (viewer_api, operator_api):
        denied = client.post("/api/v1/aiops/integrations/", {"name": "x", "kind": "generic"}, format="json")
        assert denied.status_code == 403


def test_integration_kind_is_validated(admin_api):
    response = admin_api.post("/api/v1/aiops/integrations/", {"name": "x", "kind": "nagios"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("kind:")


def test_alertmanager_delivery_is_parsed_field_by_field(alertmanager):
    integration, token = alertmanager
    payload = am_payload(am_alert(fingerprint="abc123", instance="web-1:9100"))
    response = deliver(integration, token, payload)
    assert response.status_code == 202
    assert response.json()["created"] == 1
    alert = Alert.objects.get()
    assert (alert.fingerprint, alert.status, alert.severity, alert.service) == (
        "abc123",
        "firing",
        "critical",
        "checkout",
    )
    assert alert.title == "HighErrorRate on checkout"
    assert alert.labels["instance"] == "web-1:9100"
    assert alert.ends_at is None and alert.starts_at is not None
    assert alert.generator_url.startswith("http://prometheus.example:9090/")
    assert alert.raw["fingerprint"] == "abc123"
    assert alert.pending is True
    assert AlertDelivery.objects.get().status == "firing"


def test_the_same_delivery_twice_changes_nothing(alertmanager):
    integration, token = alertmanager
    payload = am_payload(am_alert())
    deliver(integration, token, payload)
    again = deliver(integration, token, payload)
    assert again.status_code == 202
    assert again.json()["duplicate"] is True
    assert Delivery.objects.count() == 1
    assert Alert.objects.get().times_seen == 1


def test_idempotency_key_marks_retries_even_if_the_body_differs(alertmanager):
    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert()), idempotency_key="retry-1")
    again = deliver(integration, token, am_payload(am_alert(), group_key="other"), idempotency_key="retry-1")
    assert again.json()["duplicate"] is True
    assert Alert.objects.get().times_seen == 1


def test_a_resent_firing_alert_updates_last_seen_and_counter(alertmanager):
    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert(fingerprint="f1")))
    first_seen = Alert.objects.get().last_seen_at
    deliver(integration, token, am_payload(am_alert(fingerprint="f1"), group_key="repeat-2"))
    alert = Alert.objects.get()
    assert alert.times_seen == 2 and alert.last_seen_at > first_seen
    assert alert.delivery_history.count() == 2


def test_resolve_closes_and_a_later_firing_is_a_new_occurrence(alertmanager):
    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert(fingerprint="f1")))
    resolved = deliver(integration, token, am_payload(am_alert(fingerprint="f1", status="resolved")))
    assert resolved.json()["resolved"] == 1
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.ends_at is not None
    deliver(integration, token, am_payload(am_alert(fingerprint="f1"), group_key="third"))
    assert list(Alert.objects.order_by("id").values_list("status", flat=True)) == ["resolved", "firing"]


def test_fingerprint_is_computed_from_labels_when_the_sender_gives_none(make_integration):
    integration, token = make_integration("generic")
    deliver(integration, token, {"title": "Disk full", "labels": {"host": "db-3", "mount": "/"}})
    deliver(integration, token, {"title": "Disk full", "labels": {"mount": "/", "host": "db-3"}, "severity": "error"})
    alert = Alert.objects.get()
    assert alert.times_seen == 2 and alert.severity == "error"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("{not json", "(body)"),
        ({"version": "4", "alerts": "nope"}, "alerts"),
        (
            {"version": "4", "alerts": [{"status": "firing", "labels": {}, "startsAt": "2024-01-01T00:00:00Z"}]},
            "alerts[0].labels",
        ),
        (
            {
                "version": "4",
                "alerts": [{"status": "burning", "labels": {"a": "b"}, "startsAt": "2024-01-01T00:00:00Z"}],
            },
            "alerts[0].status",
        ),
    ],
)
def test_malformed_payloads_get_400_naming_the_field_and_store_nothing(alertmanager, payload, field):
    integration, token = alertmanager
    response = deliver(integration, token, payload)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(field)
    assert Alert.objects.count() == 0 and Delivery.objects.count() == 0


def test_a_half_bad_payload_stores_none_of_it(alertmanager):
    integration, token = alertmanager
    bad = am_alert()
    bad["startsAt"] = "yesterday"
    response = deliver(integration, token, am_payload(am_alert(), bad))
    assert response.status_code == 400
    assert "alerts[1].startsAt" in response.json()["detail"]
    assert Alert.objects.count() == 0


def test_wrong_missing_and_disabled_tokens_get_401(alertmanager, make_integration):
    integration, token = alertmanager
    _other, other_token = make_integration("generic")
    payload = am_payload(am_alert())
    assert deliver(integration, None, payload).status_code == 401
    assert deliver(integration, "opi_wrong", payload).status_code == 401
    assert deliver(integration, other_token, payload).status_code == 401
    services.update_integration(integration=integration, actor=None, enabled=False)
    assert deliver(integration, token, payload).status_code == 401
    assert Alert.objects.count() == 0


def test_rotating_the_token_retires_the_old_one(alertmanager):
    integration, token = alertmanager
    new = services.rotate_integration_token(integration=integration, actor=None)
    integration.refresh_from_db()
    assert deliver(integration, token, am_payload(am_alert())).status_code == 401
    assert deliver(integration, new, am_payload(am_alert())).status_code == 202


def test_bodies_over_the_limit_get_413(alertmanager, settings):
    settings.AIOPS_MAX_BODY_BYTES = 2048
    integration, token = alertmanager
    payload = am_payload(*[am_alert(alertname=f"A{i}") for i in range(20)])
    response = deliver(integration, token, payload)
    assert response.status_code == 413
    assert "over the limit of 2048 bytes" in response.json()["detail"]
    assert Alert.objects.count() == 0


def test_rate_limit_per_integration(make_integration):
    from django.core.cache import cache

    integration, token = make_integration("generic", rate_limit_per_minute=3)
    if time.time() % 60 > 57:
        time.sleep(60 - time.time() % 60)  # the limit's window is a wall-clock minute; don't straddle two
    # Ids are reused between tests: forget counts an earlier test left for this id.
    window = int(time.time() // 60)
    cache.delete_many([f"aiops:ingest-rate:{integration.pk}:{w}" for w in (window, window + 1)])
    statuses = [deliver(integration, token, {"title": f"t{i}"}).status_code for i in range(5)]
    assert statuses.count(429) >= 1 and statuses[:3] == [202, 202, 202]
    limited = deliver(integration, token, {"title": "again"})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0


def test_pagerduty_events_v2(make_integration):
    integration, token = make_integration("pagerduty")
    trigger = {
        "routing_key": token,
        "event_action": "trigger",
        "payload": {
            "summary": "Disk 95% full on db-3",
            "source": "db-3",
            "severity": "critical",
            "component": "postgres",
        },
    }
    response = deliver(integration, None, trigger)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "success" and body["message"] == "Event processed" and body["dedup_key"]
    alert = Alert.objects.get()
    assert alert.fingerprint == body["dedup_key"] and alert.service == "postgres"
    resolve = {"routing_key": token, "event_action": "resolve", "dedup_key": body["dedup_key"]}
    assert deliver(integration, None, resolve).status_code == 202
    assert Alert.objects.get().status == "resolved"
    bad = deliver(
        integration,
        None,
        {
            "routing_key": token,
            "event_action": "trigger",
            "payload": {"summary": "x", "source": "y", "severity": "fatal"},
        },
    )
    assert bad.status_code == 400 and bad.json()["field"] == "payload.severity"
    assert deliver(integration, None, {"routing_key": "wrong", "event_action": "trigger"}).status_code == 401


def test_grafana_webhook(make_integration, viewer):
    integration, token = make_integration("grafana")
    alert = am_alert(alertname="CPUHigh", service="api")
    alert.update(
        {"dashboardURL": "http://grafana.example/d/abc", "panelURL": "", "silenceURL": "", "values": {"A": 97.5}}
    )
    payload = {
        **am_payload(alert),
        "version": "1",
        "orgId": 1,
        "title": "[FIRING:1] CPUHigh",
        "state": "alerting",
        "message": "m",
    }
    assert deliver(integration, token, payload).status_code == 202
    stored = Alert.objects.get()
    assert stored.title == "CPUHigh on api"
    # The dashboard is kept once, named as Grafana's own button names it; the empty panel URL is dropped.
    assert [link for link in stored.links if "grafana.example" in link["href"]] == [
        {"href": "http://grafana.example/d/abc", "text": "Dashboard"}
    ]
    # And on the incident page it is one click away.
    services.process_pending_alerts()
    page = client_for(viewer).get(Incident.objects.get().get_absolute_url()).content.decode()
    assert 'href="http://grafana.example/d/abc" title="http://grafana.example/d/abc"' in page  # the Dashboard button
    assert page.count('href="http://grafana.example/d/abc"') == 1


def test_silenced_alerts_are_stored_but_open_no_incident(alertmanager, operator):
    import datetime

    from django.utils import timezone

    integration, token = alertmanager
    services.create_silence(
        matchers=[{"label": "service", "op": "=", "value": "checkout"}],
        ends_at=timezone.now() + datetime.timedelta(hours=1),
        comment="deploy",
        actor=operator,
    )
    response = deliver(integration, token, am_payload(am_alert(), am_alert(alertname="Other", service="search")))
    assert response.json()["suppressed"] == 1
    services.process_pending_alerts()
    silenced = Alert.objects.get(service="checkout")
    assert silenced.suppressed_by is not None and silenced.incident is None
    assert Incident.objects.get().service == "search"


def test_a_burst_of_deliveries_schedules_one_correlation_task(alertmanager, django_capture_on_commit_callbacks):
    integration, token = alertmanager
    with django_capture_on_commit_callbacks() as first:
        deliver(integration, token, am_payload(am_alert(instance="1"), group_key="a"))
    with django_capture_on_commit_callbacks() as second:
        deliver(integration, token, am_payload(am_alert(instance="2"), group_key="b"))
    assert len(first) == 1 and len(second) == 0
    # Nothing is lost by the debounce: both alerts wait, pending, for the one task (or the sweeper).
    assert Alert.objects.filter(pending=True).count() == 2


def test_a_repeat_that_changes_nothing_schedules_no_work(alertmanager, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert(fingerprint="same"), group_key="a"))
    services.process_pending_alerts()
    cache.delete("aiops:correlation-scheduled")
    with django_capture_on_commit_callbacks() as callbacks:
        deliver(integration, token, am_payload(am_alert(fingerprint="same"), group_key="b"))
    assert callbacks == [] and Alert.objects.get().times_seen == 2


def test_a_repeat_with_new_annotations_updates_the_alert_then_dedups_again(alertmanager):
    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert(fingerprint="f1"), group_key="a"))
    changed = am_alert(fingerprint="f1")
    changed["annotations"]["summary"] = "Error rate above 20%"
    deliver(integration, token, am_payload(changed, group_key="b"))
    alert = Alert.objects.get()
    assert alert.title == "Error rate above 20%" and alert.times_seen == 2
    deliver(integration, token, am_payload(changed, group_key="c"))
    alert.refresh_from_db()
    assert alert.title == "Error rate above 20%" and alert.times_seen == 3


def test_alerts_stored_before_content_hashes_existed_are_still_deduplicated(alertmanager):
    """Rows from before the content hash (empty hash) take the slow path once, then the fast one."""
    integration, token = alertmanager
    deliver(integration, token, am_payload(am_alert(fingerprint="old"), group_key="a"))
    Alert.objects.update(content_hash="")
    for key in ("b", "c"):
        response = deliver(integration, token, am_payload(am_alert(fingerprint="old"), group_key=key))
        assert response.json()["updated"] == 1 and response.json()["created"] == 0
    alert = Alert.objects.get()
    assert alert.times_seen == 3 and alert.content_hash != ""
    assert alert.delivery_history.count() == 3
