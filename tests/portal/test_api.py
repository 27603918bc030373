"""API conventions: page form, error bodies naming the problem, OpenAPI schema, local docs, throttling."""

from __future__ import annotations

import datetime
import re

import pytest
from rest_framework.test import APIClient

from opsportal.accounts import services
from opsportal.accounts.roles import Role

pytestmark = pytest.mark.django_db


def test_root_lists_every_app(viewer_api):
    body = viewer_api.get("/api/v1/").json()
    assert {"accounts", "audit", "system", "aiops", "mlops", "llmops", "schema", "docs"} <= set(body)
    assert viewer_api.get(body["aiops"]).status_code == 200


def test_every_app_root_lists_its_collections_and_each_answers(viewer_api):
    for app in ("aiops", "mlops", "llmops"):
        response = viewer_api.get(f"/api/v1/{app}/")
        assert response.status_code == 200, app
        links = response.json()
        assert links, app
        # Nested collections are reached from their parent; no link carries a URL pattern.
        assert not any("(?P<" in name or "{" in url for name, url in links.items()), links
        for name, url in links.items():
            assert viewer_api.get(url).status_code in {200, 403}, (app, name)
    assert set(viewer_api.get("/api/v1/mlops/").json()) == {
        "models",
        "approvals",
        "webhooks",
        "monitors",
        "batches",
        "breaches",
        "retraining-hooks",
    }


@pytest.mark.parametrize(
    ("path", "parameter", "value"),
    [
        ("/api/v1/aiops/incidents/", "since", "0001-01-01T00:00:00+01:00"),
        ("/api/v1/audit/entries/", "until", "9999-12-31T23:59:59-01:00"),
        ("/api/v1/aiops/alerts/", "until", "yesterday"),
    ],
)
def test_a_date_filter_that_cannot_be_represented_is_a_400_naming_it(admin_api, path, parameter, value):
    response = admin_api.get(path, {parameter: value})
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {parameter}
    assert body["detail"].startswith(f"{parameter}: ")


@pytest.mark.parametrize(
    ("path", "parameter", "value"),
    [
        ("/api/v1/aiops/alerts/", "since", "1423-10-23T14:48:39+16:15"),
        ("/api/v1/aiops/incidents/", "until", "0350-05-03T03:24:15+23:05"),
        ("/api/v1/audit/entries/", "since", "0002-01-01T00:00:00+23:59"),
    ],
)
def test_old_dates_with_offsets_postgresql_refuses_still_filter(admin_api, path, parameter, value):
    response = admin_api.get(path, {parameter: value})
    assert response.status_code == 200, response.content


def test_a_far_time_zone_offset_is_honoured_in_utc(admin_api):
    from tests.aiops import factories

    incident = factories.incident(*factories.integration())
    opened = incident.created_at.astimezone(datetime.UTC)
    # +16:15 is beyond what PostgreSQL accepts as an offset; it still names an instant.
    before = (opened - datetime.timedelta(minutes=1) + datetime.timedelta(hours=16, minutes=15)).replace(
        tzinfo=datetime.timezone(datetime.timedelta(hours=16, minutes=15))
    )
    after = before + datetime.timedelta(minutes=2)
    found = admin_api.get("/api/v1/aiops/incidents/", {"since": before.isoformat()}).json()
    assert [row["id"] for row in found["results"]] == [incident.pk]
    assert admin_api.get("/api/v1/aiops/incidents/", {"since": after.isoformat()}).json()["count"] == 0
    comments = admin_api.get(f"/api/v1/aiops/incidents/{incident.pk}/comments/", {"until": after.isoformat()})
    assert comments.status_code == 200


def test_lists_are_paginated_and_ordered(admin_api, admin_user):
    for i in range(7):
        services.create_user(username=f"p{i}", role=Role.VIEWER, actor=admin_user)
    first = admin_api.get("/api/v1/accounts/users/", {"page_size": 3, "ordering": "-username"}).json()
    assert first["count"] == 8
    assert [u["username"] for u in first["results"]] == ["p6", "p5", "p4"]
    assert first["previous"] is None and "page=2" in first["next"]
    last = admin_api.get("/api/v1/accounts/users/", {"page_size": 3, "page": 3}).json()
    assert last["next"] is None and len(last["results"]) == 2


def test_errors_share_one_body(admin_api, viewer_api):
    missing = admin_api.post("/api/v1/accounts/users/", {}, format="json")
    assert missing.status_code == 400
    body = missing.json()
    assert body["code"] == "invalid"
    assert "username: This field is required." in body["detail"]
    assert "role: This field is required." in body["detail"]
    assert set(body["errors"]) == {"username", "role"}

    not_found = admin_api.get("/api/v1/accounts/users/999999/")
    assert not_found.status_code == 404
    assert not_found.json()["code"] == "not_found"

    forbidden = viewer_api.get("/api/v1/accounts/users/")
    assert forbidden.json() == {"detail": "This needs the admin role.", "code": "permission_denied"}

    bad_json = admin_api.generic("POST", "/api/v1/accounts/users/", "{not json", content_type="application/json")
    assert bad_json.status_code == 400
    assert "JSON parse error" in bad_json.json()["detail"]

    bad_page = admin_api.get("/api/v1/accounts/users/", {"page": 99})
    assert bad_page.status_code == 404
    assert "Invalid page" in bad_page.json()["detail"]


def test_openapi_schema_documents_the_api(viewer_api):
    response = viewer_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/accounts/tokens/" in schema["paths"]
    assert "/api/v1/audit/entries/" in schema["paths"]


def test_docs_are_served_without_any_outside_host(client, viewer):
    client.force_login(viewer)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "https://" not in html and "http://cdn" not in html


def test_the_api_docs_entry_of_the_top_bar_is_marked_on_the_docs_page(client, viewer):
    client.force_login(viewer)

    def current(url: str) -> list[tuple[str, str]]:
        body = client.get(url).content.decode()
        bar = body[body.index('<ul class="navbar-nav me-auto">') :]
        bar = bar[: bar.index("</ul>")]
        return re.findall(r'<a class="nav-link active" aria-current="page" href="([^"]+)">([^<]+)</a>', bar)

    assert current("/api/docs/") == [("/api/docs/", "API docs")]
    assert current("/audit/") == [("/audit/", "Audit")]
    assert current("/") == [("/", "Overview")]


def test_throttling_answers_429_with_a_message(viewer, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": "3/minute"})
    # Ids are reused between tests, so forget any history an earlier test left under this user's key.
    cache.delete(f"throttle_user_{viewer.pk}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + services.create_api_token(user=viewer, name="t", actor=None)[1])
    statuses = [client.get("/api/v1/accounts/me/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    last = client.get("/api/v1/accounts/me/")
    assert "throttled" in last.json()["detail"].lower()
    assert int(last["Retry-After"]) > 0


def test_big_counts_are_capped_and_estimated(admin_user, settings):
    from opsportal import pagination
    from opsportal.audit.models import AuditEntry

    AuditEntry.objects.bulk_create([AuditEntry(action="update", app_label="x", model="y") for _ in range(30)])
    paginator = pagination.CappedCountPaginator(AuditEntry.objects.all(), 10)
    original, pagination.COUNT_CAP = pagination.COUNT_CAP, 20
    try:
        count = paginator.count
    finally:
        pagination.COUNT_CAP = original
    from django.db import connection

    if connection.vendor == "postgresql":
        assert paginator.count_is_estimate and count >= 21
    else:
        assert count == 30 and not paginator.count_is_estimate
    exact = pagination.CappedCountPaginator(AuditEntry.objects.all(), 10)
    assert exact.count == 30 and not exact.count_is_estimate


def test_json_with_a_nul_character_is_a_400_not_a_database_error(operator_api, operator):
    from llmops import services as llmops_services

    dataset = llmops_services.create_dataset(name="nul", actor=operator)
    response = operator_api.generic(
        "POST",
        f"/api/v1/llmops/datasets/{dataset.pk}/items/",
        '{"input": {"q": "a\\u0000b"}, "expected_output": "x"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert not dataset.items.exists()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_form_with_a_nul_character_is_a_400_not_a_database_error(operator_api, operator, content_type):
    """A form field with NUL (`%00`) is refused by the parser, before any lookup or write reaches PostgreSQL."""
    from llmops import services as llmops_services

    dataset = llmops_services.create_dataset(name="nul-form", actor=operator)
    url = f"/api/v1/llmops/datasets/{dataset.pk}/items/"
    if content_type.startswith("multipart"):
        response = operator_api.post(url, {"input": '{"q": "a\x00b"}', "expected_output": "x"}, format="multipart")
    else:
        response = operator_api.generic("POST", url, "expected_output=a%00b&input=x", content_type=content_type)
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert not dataset.items.exists()


def test_the_schema_links_identifiers_to_the_operations_that_take_them(viewer_api):
    schema = viewer_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]

    def links(path: str, method: str, status: str) -> dict:
        return paths[path][method]["responses"][status]["links"]

    created = links("/api/v1/aiops/integrations/", "post", "201")
    for target in ("aiops_integrations_retrieve", "aiops_integrations_partial_update", "aiops_integrations_destroy"):
        assert created[target]["parameters"] == {"id": "$response.body#/id"}
    assert links("/api/v1/mlops/models/", "post", "201")["mlops_models_versions_create"]["parameters"] == {
        "model_name": "$response.body#/name"
    }
    assert links("/api/v1/aiops/incidents/", "get", "200")["aiops_incidents_acknowledge_create"]["parameters"] == {
        "id": "$response.body#/results/0/id"
    }
    version_tag = links("/api/v1/mlops/models/{model_name}/versions/{version}/tags/", "post", "200")
    assert version_tag["mlops_models_versions_tags_destroy"]["parameters"] == {
        "key": "$request.body#/key",
        "model_name": "$request.path.model_name",
        "version": "$request.path.version",
    }
    operation_ids = {op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op}
    for item in paths.values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                assert {link["operationId"] for link in response.get("links", {}).values()} <= operation_ids
