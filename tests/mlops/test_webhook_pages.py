"""Registry webhooks on their page (admins): creating one, its secret once, deliveries."""

from __future__ import annotations

import re

import pytest

from mlops.models import Webhook, WebhookDelivery
from tests.helpers import client_for

from . import factories
from .pages import text_of, text_of_html

pytestmark = pytest.mark.django_db


def test_admin_creates_a_webhook_and_sees_the_secret_once(admin_user, churn, hooks_allowed):
    client = client_for(admin_user)
    response = client.post(
        "/mlops/webhooks/",
        {"name": "ci", "url": "https://hooks.example.com/registry", "events": ["stage_changed", "alias_set"],
         "model": "churn"},
    )  # fmt: skip
    hook = Webhook.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mlops/webhooks/#webhook-{hook.pk}"
    assert hook.events == ["stage_changed", "alias_set"] and hook.model == churn
    page = client.get("/mlops/webhooks/")
    secret = re.search(r'value="([^"]+)" id="secret-value"', page.content.decode()).group(1)
    assert len(secret) >= 32
    assert "Stage changed, Alias set" in text_of(page) and "model churn" in text_of(page)
    assert page["Cache-Control"].startswith("max-age=0") or "no-cache" in page["Cache-Control"]
    again = client.get("/mlops/webhooks/")
    assert secret not in again.content.decode() and 'id="secret-value"' not in again.content.decode()


def test_webhook_form_problems(admin_user, hooks_allowed):
    client = client_for(admin_user)
    response = client.post("/mlops/webhooks/", {"name": "x", "url": "https://hooks.example.com/", "model": "ghost"})
    assert response.status_code == 400 and "There is no model named ghost." in text_of(response)
    response = client.post("/mlops/webhooks/", {"name": "x", "url": "http://127.0.0.1:9/"})
    assert response.status_code == 400 and "not a public address" in text_of(response)
    assert not Webhook.objects.exists()


def test_webhook_deliveries_toggle_and_delete(admin_user, churn, hooks_allowed):
    hook, _ = factories.webhook(url="https://hooks.example.com/x", actor=admin_user)
    WebhookDelivery.objects.create(
        webhook=hook, event="stage_changed", payload={}, status="failed", attempts=6, response_code=502,
        last_error="HTTP 502",
    )  # fmt: skip
    client = client_for(admin_user)
    section = re.search(rf'<section class="card mb-3" id="webhook-{hook.pk}".*?</section>',
                        client.get("/mlops/webhooks/").content.decode(), re.S).group(0)  # fmt: skip
    text = text_of_html(section)
    assert "stage_changed" in text and "Failed" in text and "502" in text and "HTTP 502" in text and "6" in text
    assert "every event" in text and "every model" in text
    client.post(f"/mlops/webhooks/{hook.pk}/toggle/")
    hook.refresh_from_db()
    assert not hook.enabled
    client.post(f"/mlops/webhooks/{hook.pk}/delete/")
    assert not Webhook.objects.exists()
