"""The notification channels page (admins): a channel and its route, created together or not at all."""

from __future__ import annotations

import re

import pytest

from aiops.models import NotificationChannel
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for

from .pages import text_of

pytestmark = pytest.mark.django_db


def test_notifications_page_is_for_admins(operator, viewer, admin_user):
    for user in (operator, viewer):
        assert client_for(user).get("/aiops/channels/").status_code == 403
        assert "Notifications" not in text_of(client_for(user).get("/aiops/"))
    assert client_for(admin_user).get("/aiops/channels/").status_code == 200
    assert "Notifications" in text_of(client_for(admin_user).get("/aiops/"))


def test_admin_creates_an_email_channel_with_a_route(admin_user):
    response = client_for(admin_user).post(
        "/aiops/channels/",
        {
            "name": "on-call mail",
            "kind": "email",
            "target": "oncall@example.com, sre@example.com",
            "severities": ["critical", "error"],
            "services": "checkout, payments",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/aiops/channels/"
    page = text_of(response)
    assert "Channel on-call mail created." in page
    assert "oncall@example.com, sre@example.com" in page
    assert "critical, error · checkout, payments" in page
    channel = NotificationChannel.objects.get()
    route = channel.routes.get()
    assert (route.severities, route.services) == (["critical", "error"], ["checkout", "payments"])
    assert AuditEntry.objects.for_object("aiops", "notificationchannel", channel.pk).exists()


def test_channel_form_severities_are_real_checkboxes(admin_user):
    body = client_for(admin_user).get("/aiops/channels/").content.decode()
    boxes = re.findall(r'<input type="checkbox" name="severities"[^>]*>', body)
    assert len(boxes) == 4
    assert all('class="form-check-input"' in box for box in boxes), boxes


def test_channel_with_a_bad_address_is_not_half_created(admin_user):
    client = client_for(admin_user)
    response = client.post("/aiops/channels/", {"name": "mail", "kind": "email", "target": "not-an-address"})
    assert response.status_code == 200
    assert "is not an email address" in text_of(response)
    assert not NotificationChannel.objects.exists()


def test_channel_route_for_any_service(admin_user):
    client_for(admin_user).post("/aiops/channels/", {"name": "all", "kind": "email", "target": "a@example.com"})
    route = NotificationChannel.objects.get().routes.get()
    assert (route.severities, route.services) == ([], [])
    assert "any severity · any service" in text_of(client_for(admin_user).get("/aiops/channels/"))
