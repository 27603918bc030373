"""Integration pages: admins create senders, see each token once, rotate, disable and delete."""

from __future__ import annotations

import html
import re

import pytest

from aiops import services
from aiops.models import Integration
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for

from .factories import am_alert, am_payload, deliver
from .pages import text_of

pytestmark = pytest.mark.django_db


def test_admin_creates_an_alertmanager_integration_and_sees_the_token_once(admin_user):
    client = client_for(admin_user)
    response = client.post(
        "/aiops/integrations/", {"name": "prod Alertmanager", "kind": "alertmanager", "rate_limit_per_minute": 600}
    )
    assert response.status_code == 302
    detail_url = response["Location"]
    first = client.get(detail_url)
    token = re.search(r'value="(opi_[^"]+)" id="token-value"', first.content.decode()).group(1)
    assert "shown only now" in text_of(first)
    config = html.unescape(re.search(r'id="sender-config"><code>(.*?)</code>', first.content.decode(), re.S).group(1))
    integration = Integration.objects.get(name="prod Alertmanager")
    url = f"http://testserver/api/v1/aiops/ingest/{integration.pk}/"
    assert f"- url: {url}" in config
    assert f"credentials: {token}" in config
    assert "600 deliveries/minute" in text_of(first)
    # The token works.
    assert deliver(integration, token, am_payload(am_alert())).status_code == 202

    again = client.get(detail_url)
    assert token not in again.content.decode()
    assert "shown only now" not in text_of(again)
    assert "credentials: <your integration token>" in text_of(again)
    assert integration.token_prefix in text_of(again)
    listing = text_of(client.get("/aiops/integrations/"))
    assert "prod Alertmanager" in listing and "Prometheus Alertmanager" in listing
    assert AuditEntry.objects.for_object("aiops", "integration", integration.pk).filter(action="create").exists()


def test_the_token_page_is_not_cached(admin_user):
    client = client_for(admin_user)
    response = client.post("/aiops/integrations/", {"name": "am", "kind": "alertmanager", "rate_limit_per_minute": 60})
    first = client.get(response["Location"])
    assert "no-store" in first["Cache-Control"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("grafana", ["Grafana contact point", "authorization_credentials: {token}", "url: {url}"]),
        ("pagerduty", ["Routing key: {token}", "Events URL: {url}", '"routing_key": "{token}"']),
        ("generic", ["Authorization: Bearer {token}", "curl -X POST {url}", "Generic JSON schema"]),
    ],
)
def test_each_kind_shows_its_sender_configuration(admin_user, kind, expected):
    client = client_for(admin_user)
    response = client.post("/aiops/integrations/", {"name": f"{kind} one", "kind": kind, "rate_limit_per_minute": 60})
    detail = client.get(response["Location"])
    page = text_of(detail)
    integration = Integration.objects.get(kind=kind)
    token = re.search(r'value="(opi_[^"]+)" id="token-value"', detail.content.decode()).group(1)
    url = f"http://testserver/api/v1/aiops/ingest/{integration.pk}/"
    for snippet in expected:
        assert snippet.format(token=token, url=url) in page, snippet


def test_rotate_issues_a_new_token_shown_once(admin_user, alertmanager):
    integration, old = alertmanager
    client = client_for(admin_user)
    response = client.post(f"/aiops/integrations/{integration.pk}/rotate/", follow=True)
    body = response.content.decode()
    new = re.search(r'value="(opi_[^"]+)" id="token-value"', body).group(1)
    assert new != old and "New token issued; the old one no longer works." in text_of(response)
    assert f"credentials: {new}" in html.unescape(body)
    assert new not in client.get(f"/aiops/integrations/{integration.pk}/").content.decode()
    assert deliver(integration, old, am_payload(am_alert())).status_code == 401
    assert deliver(integration, new, am_payload(am_alert())).status_code == 202


def test_disable_and_delete_an_integration(admin_user, alertmanager):
    integration, _ = alertmanager
    client = client_for(admin_user)
    page = text_of(client.post(f"/aiops/integrations/{integration.pk}/toggle/", follow=True))
    assert "disabled" in page and "Enable" in page
    response = client.post(f"/aiops/integrations/{integration.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/aiops/integrations/"
    assert "Integration alertmanager test deleted." in text_of(response)
    assert not Integration.objects.exists()


def test_duplicate_integration_name_is_a_form_error(admin_user, alertmanager):
    response = client_for(admin_user).post(
        "/aiops/integrations/", {"name": "Alertmanager Test", "kind": "grafana", "rate_limit_per_minute": 60}
    )
    assert response.status_code == 200
    assert "already exists" in text_of(response)


def test_only_admins_manage_integrations(operator, viewer, alertmanager):
    integration, _ = alertmanager
    for user in (operator, viewer):
        client = client_for(user)
        page = client.get("/aiops/integrations/")
        assert page.status_code == 200 and "alertmanager test" in text_of(page)
        assert "New integration" not in text_of(page)
        response = client.post("/aiops/integrations/", {"name": "x", "kind": "generic", "rate_limit_per_minute": 6})
        assert response.status_code == 403
        assert client.post(f"/aiops/integrations/{integration.pk}/rotate/").status_code == 403
        assert "Rotate token" not in text_of(client.get(f"/aiops/integrations/{integration.pk}/"))
    assert Integration.objects.count() == 1


def test_an_apps_own_integration_shows_where_its_alerts_come_from_and_no_token(admin_user):
    services.raise_alert(source="mlops", dedup_key="drift:1", title="Drift on fraud-model")
    integration = Integration.objects.get(internal_source="mlops")
    client = client_for(admin_user)
    listing = text_of(client.get("/aiops/integrations/"))
    assert "mlops (internal)" in listing
    response = client.get(f"/aiops/integrations/{integration.pk}/")
    page = text_of(response)
    assert "The mlops app raises these alerts itself; no sender posts here, and there is no token." in page
    assert "Rotate token" not in page and "Sender configuration" not in page
    assert client.post(f"/aiops/integrations/{integration.pk}/rotate/").status_code == 302
    assert "no sender token to rotate" in text_of(client.get(f"/aiops/integrations/{integration.pk}/"))
