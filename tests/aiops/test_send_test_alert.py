"""Send test alert: a sample delivery in the integration's own format through the real pipeline, page and API."""

from __future__ import annotations

import re

import pytest

from aiops import services
from aiops.models import Alert, Delivery, Incident
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for

from .factories import silence
from .pages import text_of

pytestmark = pytest.mark.django_db


def _result(body: str) -> str:
    match = re.search(r'<div class="alert[^"]*" role="status" id="test-alert-result".*?</div>', body, re.S)
    assert match, "no test alert result panel"
    return match.group(0)


@pytest.mark.parametrize("kind", ["alertmanager", "grafana", "pagerduty", "generic"])
def test_send_test_alert_opens_an_incident_and_the_page_links_it(operator, make_integration, kind):
    integration, _ = make_integration(kind)
    client = client_for(operator)
    page = client.get(f"/aiops/integrations/{integration.pk}/")
    assert ">Send test alert</button>" in page.content.decode()

    response = client.post(f"/aiops/integrations/{integration.pk}/test/", follow=True)
    assert response.redirect_chain[-1][0] == f"/aiops/integrations/{integration.pk}/"
    alert = Alert.objects.get(integration=integration)
    incident = Incident.objects.get()
    assert alert.incident == incident and not alert.pending
    assert incident.title == "Test alert from OpsPortal on opsportal-test" and incident.status == "triggered"
    panel = _result(response.content.decode())
    assert f'href="/aiops/incidents/{incident.pk}/"' in panel
    assert f"opened incident #{incident.pk}" in text_of(response)
    assert f"Open incident #{incident.pk}" in panel
    # Stored as a sender's delivery, marked as a test in the delivery list.
    delivery = Delivery.objects.get(integration=integration)
    assert delivery.meta["test_alert"]["by"] == "otto"
    assert "test alert by otto" in text_of(response)
    # Its source link leads back to the integration page it was sent from.
    incident_page = client.get(f"/aiops/incidents/{incident.pk}/").content.decode()
    assert f'href="http://testserver/aiops/integrations/{integration.pk}/"' in incident_page
    # The panel is shown once, not on every later visit.
    assert 'id="test-alert-result"' not in client.get(f"/aiops/integrations/{integration.pk}/").content.decode()


def test_a_second_click_sends_a_new_alert_not_a_duplicate_delivery(operator, alertmanager):
    integration, _ = alertmanager
    client = client_for(operator)
    client.post(f"/aiops/integrations/{integration.pk}/test/")
    response = client.post(f"/aiops/integrations/{integration.pk}/test/", follow=True)
    assert Delivery.objects.filter(integration=integration).count() == 2
    first, second = Alert.objects.order_by("pk")
    assert first.fingerprint != second.fingerprint
    assert first.labels["test_id"] != second.labels["test_id"]
    # The second joins the incident the first opened (the default grouping: alertname and service).
    incident = Incident.objects.get()
    assert incident.alert_count == 2 and second.incident_id == incident.pk
    assert f"joined incident #{incident.pk}" in text_of(response)


def test_sending_a_test_alert_is_audited(operator, alertmanager):
    integration, _ = alertmanager
    client_for(operator).post(f"/aiops/integrations/{integration.pk}/test/")
    entry = AuditEntry.objects.for_object("aiops", "integration", integration.pk).get(actor_name="otto")
    alert = Alert.objects.get()
    assert entry.changes == {"test_alert": [None, alert.pk]}
    assert entry.message.startswith("Sent a test alert")


def test_viewers_cannot_send_test_alerts(viewer, alertmanager):
    integration, _ = alertmanager
    client = client_for(viewer)
    assert "Send test alert" not in client.get(f"/aiops/integrations/{integration.pk}/").content.decode()
    assert client.post(f"/aiops/integrations/{integration.pk}/test/").status_code == 403
    assert not Alert.objects.exists()


def test_operators_still_cannot_rotate_disable_or_delete(operator, alertmanager):
    integration, _ = alertmanager
    client = client_for(operator)
    for action in ("rotate", "toggle", "delete"):
        assert client.post(f"/aiops/integrations/{integration.pk}/{action}/").status_code == 403, action
    integration.refresh_from_db()
    assert integration.enabled


def test_a_disabled_integration_refuses_the_test_with_a_message(operator, admin_user, alertmanager):
    integration, _ = alertmanager
    services.update_integration(integration=integration, actor=admin_user, enabled=False)
    response = client_for(operator).post(f"/aiops/integrations/{integration.pk}/test/", follow=True)
    assert "the integration is disabled and refuses deliveries; enable it first." in text_of(response)
    assert not Alert.objects.exists()


def test_a_silenced_test_alert_says_which_silence_matched(operator, alertmanager):
    integration, _ = alertmanager
    silence(actor=operator, comment="testing the pager", service="opsportal-test")
    response = client_for(operator).post(f"/aiops/integrations/{integration.pk}/test/", follow=True)
    assert not Incident.objects.exists()
    assert "opened no incident: the silence “testing the pager” matches it" in text_of(response)


def test_behind_a_long_backlog_the_page_shows_pending_and_links_once_correlated(operator, alertmanager, monkeypatch):
    integration, _ = alertmanager
    monkeypatch.setattr("aiops.services.integrations.INLINE_CORRELATION_BACKLOG", 0)
    client = client_for(operator)
    response = client.post(f"/aiops/integrations/{integration.pk}/test/", follow=True)
    alert = Alert.objects.get()
    assert alert.pending and alert.incident is None
    panel = _result(response.content.decode())
    assert "waits for correlation" in panel
    assert f'hx-get="/aiops/integrations/{integration.pk}/?test_alert={alert.pk}"' in panel
    # The poll answers the same panel while pending...
    poll = f"/aiops/integrations/{integration.pk}/?test_alert={alert.pk}"
    assert "waits for correlation" in client.get(poll, HTTP_HX_REQUEST="true").content.decode()
    # ...and the link once the worker has correlated it.
    services.process_pending_alerts()
    incident = Incident.objects.get()
    answer = client.get(poll, HTTP_HX_REQUEST="true").content.decode()
    assert f'href="/aiops/incidents/{incident.pk}/"' in answer and "hx-get" not in answer


def test_the_poll_shows_only_this_integrations_alerts(operator, make_integration):
    first, _ = make_integration("alertmanager", "first")
    second, _ = make_integration("generic", "second")
    client = client_for(operator)
    client.post(f"/aiops/integrations/{first.pk}/test/")
    alert = Alert.objects.get()
    other = client.get(f"/aiops/integrations/{second.pk}/?test_alert={alert.pk}", HTTP_HX_REQUEST="true")
    assert 'id="test-alert-result"' not in other.content.decode()


# --- API ----------------------------------------------------------------------------------------------------


def test_api_sends_a_test_alert_and_answers_the_incident(operator_api, make_integration):
    integration, _ = make_integration("pagerduty")
    response = operator_api.post(f"/api/v1/aiops/integrations/{integration.pk}/test/")
    assert response.status_code == 201, response.content
    body = response.json()
    incident = Incident.objects.get()
    alert = Alert.objects.get()
    assert body["alert"] == alert.pk and body["incident"] == incident.pk
    assert body["incident_url"] == f"http://testserver/aiops/incidents/{incident.pk}/"
    assert body["opened"] is True and body["pending"] is False and body["suppressed_by"] is None
    assert body["delivery"] == Delivery.objects.get().pk
    assert body["fingerprint"] == alert.fingerprint
    again = operator_api.post(f"/api/v1/aiops/integrations/{integration.pk}/test/").json()
    assert again["alert"] != body["alert"] and again["incident"] == incident.pk and again["opened"] is False


def test_api_test_alert_roles_and_refusals(viewer_api, operator_api, admin_user, alertmanager):
    integration, _ = alertmanager
    assert viewer_api.post(f"/api/v1/aiops/integrations/{integration.pk}/test/").status_code == 403
    assert operator_api.post("/api/v1/aiops/integrations/999999/test/").status_code == 404
    services.update_integration(integration=integration, actor=admin_user, enabled=False)
    refused = operator_api.post(f"/api/v1/aiops/integrations/{integration.pk}/test/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "disabled" and "enable it first" in refused.json()["detail"]


def test_api_test_alert_is_in_the_schema(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/aiops/integrations/{id}/test/"]["post"]
    assert "201" in operation["responses"]
    assert "test alert" in operation["description"].lower()
