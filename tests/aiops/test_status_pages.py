"""Status pages: an admin publishes chosen checks at /status/<slug>/; anyone reads it, nothing private leaks."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.models import Check, CheckHourlyStat, Incident, StatusPage
from aiops.services import status_pages
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

SECRET_URL = "https://internal-billing.corp.example/health"


def make_check(name: str, status: str = Check.Status.UP, **extra) -> Check:
    return Check.objects.create(
        name=name,
        kind=Check.Kind.HTTP,
        config={"url": SECRET_URL},
        labels={"team": "payments-secret-team"},
        status=status,
        last_error="connect to 10.1.2.3 refused",
        **extra,
    )


def hourly(check: Check, day_offset: int, total: int, up: int) -> None:
    hour = (timezone.now() - datetime.timedelta(days=day_offset)).replace(minute=0, second=0, microsecond=0)
    CheckHourlyStat.objects.create(check_obj=check, hour=hour, total=total, up=up)


def publish(*checks: Check, slug: str = "public-api", published: bool = True) -> StatusPage:
    return status_pages.save_status_page(
        actor=None, name="Public API", slug=slug, check_ids=[c.pk for c in checks], published=published
    )


def test_anyone_reads_a_published_page_with_state_and_90_days_of_uptime_and_nothing_private():
    api = make_check("Checkout API")
    web = make_check("Website", status=Check.Status.DOWN)
    hourly(api, 0, 60, 60)
    hourly(api, 3, 100, 90)
    publish(api, web)

    response = Client().get("/status/public-api/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Checkout API" in html and "Website" in html
    assert "Some systems are down" in html
    assert html.count('class="bar ') == 2 * status_pages.DAYS
    assert "93.75% uptime" in html  # 150 of 160 runs over the 90 days
    assert "90% up (90 of 100 runs)" in html
    for private in (SECRET_URL, "internal-billing", "payments-secret-team", "10.1.2.3", "/aiops/"):
        assert private not in html, private


def test_drafts_and_unknown_pages_are_404_except_an_admins_preview(viewer, admin_user):
    publish(make_check("API"), published=False)
    assert Client().get("/status/public-api/").status_code == 404
    assert client_for(viewer).get("/status/public-api/").status_code == 404
    assert Client().get("/status/nope/").status_code == 404
    preview = client_for(admin_user).get("/status/public-api/")
    assert preview.status_code == 200
    assert "Preview: this page is not published" in preview.content.decode()
    assert preview["Cache-Control"] == "private, no-store"


def test_an_open_incident_shows_a_public_title_not_the_internal_one():
    check = make_check("Checkout API", status=Check.Status.DOWN)
    publish(check)
    services.raise_alert(
        source="check", dedup_key=check.dedup_key, title=f"GET {SECRET_URL} answered 500", severity="error"
    )
    services.process_pending_alerts()
    assert Incident.objects.filter(resolved_at__isnull=True).count() == 1

    html = Client().get("/status/public-api/").content.decode()
    assert "Open incidents" in html
    assert "Checkout API is down" in html
    assert "Investigating" in html
    assert SECRET_URL not in html

    services.raise_alert(source="check", dedup_key=check.dedup_key, resolve=True)
    services.process_pending_alerts()
    assert "Open incidents" not in Client().get("/status/public-api/").content.decode()


def test_the_json_answer_and_its_query_count_do_not_grow_with_the_checks():
    checks = [make_check(f"Service {n}") for n in range(3)]
    page = publish(*checks)
    client = Client()
    with CaptureQueriesContext(connection) as few:
        data = client.get("/status/public-api/status.json").json()
    assert data["status"] == "operational"
    assert [c["name"] for c in data["checks"]] == ["Service 0", "Service 1", "Service 2"]
    assert len(data["checks"][0]["days"]) == status_pages.DAYS
    assert set(data["checks"][0]) == {"name", "status", "uptime_90d", "days"}
    page.checks.add(*[make_check(f"More {n}") for n in range(12)])
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/status/public-api/status.json").json()["checks"]) == 15
    assert len(many.captured_queries) == len(few.captured_queries)


def test_paused_checks_show_maintenance_and_pending_ones_degraded():
    publish(make_check("API", paused=True), make_check("Web", status=Check.Status.PENDING))
    data = Client().get("/status/public-api/status.json").json()
    assert {c["name"]: c["status"] for c in data["checks"]} == {"API": "maintenance", "Web": "degraded"}
    assert data["status_text"] == "Some systems are degraded"


def test_an_admin_publishes_from_the_page_and_the_change_is_audited(admin_user):
    api = make_check("Checkout API")
    client = client_for(admin_user)
    form = client.get("/aiops/status-pages/new/")
    assert form.status_code == 200
    assert "Checkout API (HTTP(S))" in form.content.decode()
    response = client.post(
        "/aiops/status-pages/new/",
        {"name": "Customers", "slug": "customers", "description": "", "checks": [str(api.pk)], "published": "on"},
    )
    assert response.status_code == 302
    page = StatusPage.objects.get(slug="customers")
    assert list(page.checks.all()) == [api]
    assert AuditEntry.objects.filter(model="statuspage", action="create", object_id=str(page.pk)).exists()
    listing = client.get("/aiops/status-pages/").content.decode()
    assert "/status/customers/" in listing and "Published" in listing

    again = client.post("/aiops/status-pages/new/", {"name": "Other", "slug": "customers", "checks": []})
    assert again.status_code == 200
    assert "exists already" in again.content.decode()


def test_viewers_see_the_list_but_cannot_change_pages(viewer):
    client = client_for(viewer)
    assert client.get("/aiops/status-pages/").status_code == 200
    assert client.get("/aiops/status-pages/new/").status_code == 403
    assert client.post("/aiops/status-pages/new/", {"name": "X", "slug": "x"}).status_code == 403
    assert not StatusPage.objects.exists()


def test_the_api_creates_changes_previews_and_deletes_and_names_bad_fields(admin_api, viewer_api):
    api = make_check("Checkout API")
    created = admin_api.post(
        "/api/v1/aiops/status-pages/", {"name": "Public", "slug": "public", "checks": [api.pk]}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["url"] == "/status/public/" and body["checks"] == [api.pk] and body["published"] is False
    pk = body["id"]

    bad = admin_api.post("/api/v1/aiops/status-pages/", {"name": "X", "slug": "Not A Slug"}, format="json")
    assert bad.status_code == 400 and "slug" in bad.content.decode()
    unknown = {"name": "X", "slug": "x", "checks": [999999]}
    missing = admin_api.post("/api/v1/aiops/status-pages/", unknown, format="json")
    assert missing.status_code == 400 and "999999" in missing.content.decode()
    taken = admin_api.post("/api/v1/aiops/status-pages/", {"name": "X", "slug": "public"}, format="json")
    assert taken.status_code == 409
    assert StatusPage.objects.count() == 1

    assert viewer_api.get("/api/v1/aiops/status-pages/").status_code == 200
    assert viewer_api.patch(f"/api/v1/aiops/status-pages/{pk}/", {"published": True}, format="json").status_code == 403

    changed = admin_api.patch(f"/api/v1/aiops/status-pages/{pk}/", {"published": True}, format="json")
    assert changed.status_code == 200 and changed.json()["checks"] == [api.pk]
    assert Client().get("/status/public/").status_code == 200
    preview = admin_api.get(f"/api/v1/aiops/status-pages/{pk}/preview/").json()
    assert preview["checks"][0]["name"] == "Checkout API"

    assert admin_api.delete(f"/api/v1/aiops/status-pages/{pk}/").status_code == 204
    assert Client().get("/status/public/").status_code == 404
