"""The checks REST API: CRUD with filters, test now, run now, bulk pause/resume, results, roles, bad input."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from aiops import services
from aiops.models import Check, CheckHourlyStat, CheckResult
from opsportal.audit.models import AuditEntry

from .check_targets import Target

pytestmark = pytest.mark.django_db
URL = "/api/v1/aiops/checks/"


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def create(api, **body):
    return api.post(URL, {"name": "Checkout API", "kind": "http", "config": {"url": "https://example.com/"}, **body},
                    format="json")  # fmt: skip


def test_operators_create_checks_and_viewers_read_them(operator_api, viewer_api, operator):
    response = create(operator_api, service="checkout", labels={"team": "payments"}, interval_seconds=30, retries=2)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "new" and body["interval_seconds"] == 30 and body["retries"] == 2
    assert body["config"]["method"] == "GET" and body["config"]["expected_status"] == ["200-299"]
    assert body["target"] == "https://example.com/" and body["ping_url"] is None
    assert body["page_url"] == f"/aiops/checks/{body['id']}/"
    assert AuditEntry.objects.filter(action="create", object_id=str(body["id"])).exists()

    listed = viewer_api.get(URL).json()
    assert [c["name"] for c in listed["results"]] == ["Checkout API"]
    assert {"uptime_24h", "uptime_7d", "uptime_30d", "next_due_at", "last_latency_ms"} <= set(listed["results"][0])
    assert create(viewer_api).status_code == 403
    assert viewer_api.patch(f"{URL}{body['id']}/", {"name": "x"}, format="json").status_code == 403


def test_heartbeats_get_a_ping_url(operator_api):
    body = create(operator_api, kind="heartbeat", config={}, cron="0 3 * * *", tz="Europe/Berlin", grace_seconds=600)
    body = body.json()
    assert body["ping_url"] == f"http://testserver/ping/{Check.objects.get().ping_uuid}"
    assert (body["cron"], body["tz"], body["period_seconds"], body["next_due_at"]) == (
        "0 3 * * *", "Europe/Berlin", None, None
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"config": {"url": "not a url"}}, "config.url", "is not a valid URL"),
        ({"config": {"url": "ftp://example.com/"}}, "config.url", "http:// or https://"),
        ({"kind": "smtp"}, "kind", "not a valid choice"),
        ({"interval_seconds": 0}, "interval_seconds", "at least 1 second"),
        ({"interval_seconds": 86401}, "interval_seconds", "at most 86400"),
        ({"config": {"url": "https://example.com/", "json_path": "$[?"}}, "config.json_path", "not a JSON path"),
        ({"config": {"url": "https://example.com/", "expected_status": ["99"]}}, "config.expected_status", "99"),
        ({"config": {"url": "https://example.com/", "colour": "red"}}, "config.colour", "unknown option"),
        ({"kind": "heartbeat", "config": {}, "cron": "every day"}, "cron", "not a cron expression"),
        ({"kind": "heartbeat", "config": {}, "tz": "Mars/Olympus"}, "tz", "not a time zone"),
        ({"kind": "heartbeat", "config": {}, "period_seconds": 0}, "period_seconds", "at least 1 second"),
        ({"kind": "tcp", "config": {"host": "db.internal"}}, "config.port", "port"),
        ({"severity": "huge"}, "severity", "not a valid choice"),
        ({"labels": {"bad key": "x"}}, "labels", "not a label name"),
        ({"cron": "0 3 * * *"}, "cron", "only heartbeat checks"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(operator_api, body, field, message):
    response = create(operator_api, **body)
    assert response.status_code == 400, response.json()
    answer = response.json()
    assert field in answer["errors"], answer
    assert message in " ".join(answer["errors"][field]), answer
    assert Check.objects.count() == 0


def test_updating_validates_and_keeps_the_kind(operator_api, operator):
    check_id = create(operator_api).json()["id"]
    assert operator_api.patch(f"{URL}{check_id}/", {"kind": "tcp"}, format="json").json()["errors"] == {
        "kind": ["cannot change; create a new check of the other kind."]
    }
    bad = operator_api.patch(f"{URL}{check_id}/", {"config": {"url": "https://x/", "method": "FETCH"}}, format="json")
    assert "config.method" in bad.json()["errors"]
    changed = operator_api.patch(f"{URL}{check_id}/", {"interval_seconds": 5, "upside_down": True}, format="json")
    assert changed.status_code == 200 and changed.json()["interval_seconds"] == 5 and changed.json()["upside_down"]


def test_filters_by_kind_status_service_and_paused(operator_api, operator, viewer_api):
    services.create_check(actor=operator, name="a", kind="http", config={"url": "https://a.example/"}, service="web")
    services.create_check(actor=operator, name="b", kind="tcp", config={"host": "db", "port": 5432}, paused=True)
    services.create_check(actor=operator, name="c", kind="heartbeat", service="batch")

    def names(**params) -> list[str]:
        return [c["name"] for c in viewer_api.get(URL, params).json()["results"]]

    assert names(kind="tcp") == ["b"]
    assert names(kind=["http", "heartbeat"]) == ["a", "c"]
    assert names(status="paused") == ["b"]
    assert names(service="batch") == ["c"]
    assert names(paused="false") == ["a", "c"]
    assert viewer_api.get(URL, {"kind": "smtp"}).status_code == 400


def test_the_list_shows_uptime_in_a_fixed_number_of_queries(viewer_api, operator, django_assert_max_num_queries):
    checks = [
        services.create_check(actor=operator, name=f"c{n}", kind="http", config={"url": f"https://{n}.example/"})
        for n in range(12)
    ]
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    CheckHourlyStat.objects.bulk_create([CheckHourlyStat(check_obj=c, hour=hour, total=4, up=3) for c in checks])
    with django_assert_max_num_queries(8):
        body = viewer_api.get(URL).json()
    assert {c["uptime_24h"] for c in body["results"]} == {75.0}


def test_test_now_runs_the_check_without_saving_it(operator_api, target, allow_loopback):
    response = operator_api.post(f"{URL}test/", {"kind": "http", "config": {"url": target.url()}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["up"] and body["status_code"] == 200 and body["error"] == "" and body["latency_ms"] > 0
    target.answer(500)
    down = operator_api.post(f"{URL}test/", {"kind": "http", "config": {"url": target.url()}}, format="json").json()
    assert not down["up"] and down["error"] == "HTTP 500 Internal Server Error; expected 200-299"
    assert Check.objects.count() == 0 and CheckResult.objects.count() == 0
    bad = operator_api.post(f"{URL}test/", {"kind": "http", "config": {"url": "nope"}}, format="json")
    assert bad.status_code == 400 and "config.url" in bad.json()["errors"]


def test_test_now_obeys_the_outbound_allow_list(operator_api, target, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    body = operator_api.post(f"{URL}test/", {"kind": "http", "config": {"url": target.url()}}, format="json").json()
    assert not body["up"] and body["error"].startswith("Refused by the outbound allow-list: 127.0.0.1")
    assert target.hits == 0


def test_run_now_stores_a_result_and_results_are_paged_and_filtered(operator_api, viewer_api, target, allow_loopback):
    check_id = create(operator_api, config={"url": target.url()}).json()["id"]
    result = operator_api.post(f"{URL}{check_id}/run/").json()
    assert result["up"] and result["status_code"] == 200
    target.answer(503)
    assert not operator_api.post(f"{URL}{check_id}/run/").json()["up"]
    page = viewer_api.get(f"{URL}{check_id}/results/").json()
    assert page["count"] == 2 and [r["status_code"] for r in page["results"]] == [503, 200]
    assert [
        r["status_code"] for r in viewer_api.get(f"{URL}{check_id}/results/", {"up": "false"}).json()["results"]
    ] == [503]
    future = (timezone.now() + datetime.timedelta(hours=1)).isoformat()
    assert viewer_api.get(f"{URL}{check_id}/results/", {"since": future}).json()["count"] == 0
    bad = viewer_api.get(f"{URL}{check_id}/results/", {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["errors"]
    latency = viewer_api.get(f"{URL}{check_id}/latency/").json()
    assert sum(p["runs"] for p in latency["points"]) == 2 and latency["down_periods"][0]["end"] is None
    assert viewer_api.get(f"{URL}{check_id}/latency/", {"max_points": 1}).status_code == 400
    assert viewer_api.get(f"{URL}{check_id}/incidents/").json()["count"] == 0


def test_bulk_pause_and_resume(operator_api, operator):
    ids = [create(operator_api, name=f"c{n}").json()["id"] for n in range(3)]
    paused = operator_api.post(f"{URL}bulk/", {"ids": ids[:2], "action": "pause"}, format="json")
    assert paused.status_code == 200 and sorted(paused.json()["updated"]) == ids[:2]
    assert list(Check.objects.filter(paused=True).values_list("status", flat=True)) == ["paused", "paused"]
    resumed = operator_api.post(f"{URL}bulk/", {"ids": ids[:1], "action": "resume"}, format="json")
    assert resumed.status_code == 200
    assert Check.objects.get(pk=ids[0]).status == "new"
    missing = operator_api.post(f"{URL}bulk/", {"ids": [ids[0], 999999], "action": "pause"}, format="json")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    assert operator_api.post(f"{URL}bulk/", {"ids": [], "action": "pause"}, format="json").status_code == 400
    assert operator_api.post(f"{URL}bulk/", {"ids": ids, "action": "explode"}, format="json").status_code == 400


def test_deleting_a_check_is_audited(operator_api):
    check_id = create(operator_api).json()["id"]
    assert operator_api.delete(f"{URL}{check_id}/").status_code == 204
    assert not Check.objects.exists()
    assert AuditEntry.objects.filter(action="delete", object_id=str(check_id)).exists()


def test_the_schema_documents_the_checks_api(viewer_api):
    schema = viewer_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in (
        URL,
        f"{URL}test/",
        f"{URL}bulk/",
        f"{URL}{{id}}/results/",
        f"{URL}{{id}}/run/",
        f"{URL}{{id}}/latency/",
    ):
        assert path in paths, path
    parameters = {p["name"] for p in paths[f"{URL}{{id}}/results/"]["get"]["parameters"]}
    assert {"since", "until", "up", "page"} <= parameters
