"""The troubleshooting context of incidents: anomalies, checks down and the portal's recent changes in the
incident's window, stored, refreshed while it is open, on the page (htmx), in the API and by a real worker."""

from __future__ import annotations

import datetime
import json
import urllib.request

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.metrics import store
from aiops.models import Anomaly, AnomalyMonitor, Check, CheckOutage, Incident, IncidentContext, LogTemplate, Series
from aiops.services import incident_context as ctx
from aiops.tasks import refresh_incident_contexts
from llmops import services as llm_services
from mlops import services as ml_services
from mlops.models import Stage
from opsportal.registry import portal_apps
from tests.helpers import client_for, wait_for
from tests.llmops import factories as llm_factories
from tests.mlops import factories as ml_factories

from . import factories
from .check_targets import closed_port
from .factories import am_alert, am_payload

pytestmark = pytest.mark.django_db


# --- What the context is made of ------------------------------------------------------------------------------


def down_check(actor, *, name: str = "Checkout TCP", service: str = "checkout") -> Check:
    """A TCP check of a closed port, run once by the dispatcher: it is down, with an open outage and its alert."""
    check = services.create_check(
        actor=actor, name=name, kind="tcp", service=service, config={"host": "127.0.0.1", "port": closed_port()}
    )
    services.run_due_checks(budget_seconds=5)
    check.refresh_from_db()
    assert check.status == Check.Status.DOWN
    return check


def anomaly(actor, *, service: str = "checkout", minutes_ago: float = 10, **fields) -> Anomaly:
    """An anomaly the monitor of `service`'s latency found on its series, `minutes_ago` minutes ago."""
    labels = {"job": "api", "instance": "web1", "service": service}
    key = store.series_key("http_latency_ms", labels)
    store.write_samples([(key, timezone.now().timestamp(), 480.0)], kinds={key: "gauge"})
    monitor = AnomalyMonitor.objects.filter(service=service).first() or services.save_anomaly_monitor(
        actor=actor,
        name=f"{service} latency",
        selector=f'http_latency_ms{{service="{service}"}}',
        sensitivity="medium",
        severity="error",
        service=service,
    )
    started = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    values = dict(
        monitor=monitor,
        series=Series.objects.get(name="http_latency_ms", labels__service=service),
        started_at=started,
        last_above_at=started,
        peak_score=0.97,
        peak_at=started,
        value=480.0,
        expected_low=40.0,
        expected_high=60.0,
        threshold=0.8,
    )
    return Anomaly.objects.create(**{**values, **fields})


def promote(actor, *, name: str = "churn") -> None:
    model = ml_factories.registered_model(actor=actor, name=name, versions=2)
    ml_services.transition_stage(version=ml_factories.version(model, 2), stage=Stage.PRODUCTION, actor=actor)


def move_prompt_label(actor, *, label: str = "staging") -> None:
    prompt = llm_factories.prompt(actor=actor, name="support-answer")
    second = llm_factories.version(prompt=prompt, actor=actor, messages=[{"role": "user", "content": "Hi {{ x }}"}])
    llm_services.move_label(prompt=prompt, label=label, version=second, actor=actor)


def items_of(incident: Incident, kind: str) -> list[ctx.ContextItem]:
    return [item for item in ctx.assemble_context(incident) if item.kind == kind]


@pytest.fixture
def checkout(alertmanager) -> Incident:
    integration, token = alertmanager
    return factories.incident(integration, token, "checkout")


# --- Providers --------------------------------------------------------------------------------------------------


def test_a_down_check_of_the_service_is_in_the_context_with_its_page(operator, checkout):
    check = down_check(operator)
    down_check(operator, name="Search TCP", service="search")  # another service: not this incident's
    [item] = items_of(checkout, "check")
    assert item.title == "Check Checkout TCP is down"
    assert item.url == f"/aiops/checks/{check.pk}/"
    assert "down now" in item.detail and "refused" in item.detail.lower()
    assert item.severity == "error"


def test_a_check_that_recovered_in_the_window_says_when(operator, checkout):
    check = down_check(operator)
    CheckOutage.objects.filter(check_obj=check).update(ended_at=timezone.now())
    Check.objects.filter(pk=check.pk).update(status=Check.Status.UP)
    [item] = items_of(checkout, "check")
    assert item.title == "Check Checkout TCP was down" and "recovered at" in item.detail


def test_anomalies_on_the_service_series_in_the_window_but_not_others(operator, checkout):
    shown = anomaly(operator)
    anomaly(operator, service="search")
    old = anomaly(operator, minutes_ago=600)
    Anomaly.objects.filter(pk=old.pk).update(ended_at=timezone.now() - datetime.timedelta(minutes=500))
    [item] = items_of(checkout, "anomaly")
    assert item.title == 'Anomaly on http_latency_ms{instance="web1",job="api",service="checkout"}'
    assert item.url == f"/aiops/metrics/anomalies/{shown.monitor_id}/?series={shown.series_id}"
    assert "480 at the peak, expected 40 to 60" in item.detail and "still going on" in item.detail


def test_an_anomaly_marked_not_interesting_is_left_out(operator, checkout):
    anomaly(operator, feedback=Anomaly.Feedback.NOT_INTERESTING)
    assert items_of(checkout, "anomaly") == []


def test_new_and_bursting_log_patterns_of_the_service_link_to_their_records(admin_user, checkout):
    _, token = factories.integration("logs", "app logs", actor=admin_user)
    lines = [
        {"service": "checkout", "severity": "error", "body": "payment gateway timeout after 30s"},
        {"service": "search", "severity": "error", "body": "index shard 4 missing"},
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    answer = Client().post(
        "/api/v1/aiops/logs/ingest/", body, content_type="application/x-ndjson", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert answer.status_code == 202, answer.content
    [item] = items_of(checkout, "log_pattern")
    template = LogTemplate.objects.get(service="checkout")
    assert item.title == f"New log pattern: {template.template}" and "payment gateway timeout" in item.title
    assert item.severity == "error" and item.detail.startswith("error, 1 record, first seen")
    assert item.url.startswith(f"/aiops/logs/?template={template.pk}&since=")
    first_section = ctx.context_sections(ctx.refresh_incident_context(incident=checkout))[0]
    assert first_section[:2] == ("log_pattern", "Log patterns") and first_section[2] == [item]


def test_changes_across_the_portal_each_app_its_own_with_links(admin_user, checkout):
    promote(admin_user)
    move_prompt_label(admin_user)
    factories.silence(actor=admin_user, comment="db-3 maintenance", service="payments")
    changes = {item.detail.split(",")[0]: item for item in items_of(checkout, "change")}
    assert set(changes) == {"mlops", "llmops", "aiops"}
    assert changes["mlops"].title == "Model churn v2: Moved to Production from None."
    assert changes["mlops"].url == "/mlops/models/churn/versions/2/"
    assert changes["mlops"].detail == "mlops, by ada"
    assert changes["llmops"].title == "Prompt support-answer: @staging -> v2"
    assert changes["llmops"].url == "/llmops/prompts/support-answer/"
    assert changes["aiops"].title == "Silence created: db-3 maintenance"
    assert changes["aiops"].url == "/aiops/silences/"


def test_changes_outside_the_window_are_not_shown(admin_user, checkout):
    opened = timezone.now() - datetime.timedelta(hours=5)
    Incident.objects.filter(pk=checkout.pk).update(
        created_at=opened, status=Incident.Status.RESOLVED, resolved_at=opened + datetime.timedelta(minutes=10)
    )
    checkout.refresh_from_db()
    start, end = ctx.context_window(checkout)
    assert (start, end) == (opened - ctx.LOOKBACK, opened + ctx.LOOKAHEAD)
    promote(admin_user)
    assert items_of(checkout, "change") == []


def test_each_app_reports_its_changes_in_one_query(admin_user, checkout):
    for name in ("churn", "fraud"):
        promote(admin_user, name=name)
    move_prompt_label(admin_user)
    factories.silence(actor=admin_user, service="payments")
    factories.silence(actor=admin_user, service="search")
    start, end = timezone.now() - datetime.timedelta(hours=1), timezone.now()
    for app in portal_apps():
        with CaptureQueriesContext(connection) as queries:
            found = app.recent_changes(start=start, end=end, limit=20)
        assert found, f"{app.label} reported no change"
        assert len(queries) == 1, f"{app.label}: {[q['sql'] for q in queries]}"


def test_a_failing_provider_is_left_out_and_the_others_still_show(operator, checkout, monkeypatch):
    def broken(incident, start, end):
        raise RuntimeError("log store unreachable")

    down_check(operator)
    monkeypatch.setattr(ctx, "PROVIDERS", [broken, *ctx.PROVIDERS])
    # The check, and its creation among the recent changes.
    assert [item.kind for item in ctx.assemble_context(checkout)] == ["check", "change"]


# --- Stored, refreshed ------------------------------------------------------------------------------------------


def test_opening_an_incident_queues_its_context_after_commit(
    alertmanager, operator, django_capture_on_commit_callbacks
):
    integration, token = alertmanager
    down_check(operator)
    with django_capture_on_commit_callbacks() as callbacks:
        factories.fire(integration, token, am_alert(service="checkout"))
    assert callbacks, "nothing was queued after the batch"
    # The broker of this test is not consumed: the periodic refresh picks up incidents without a context.
    assert not IncidentContext.objects.exists()
    assert refresh_incident_contexts() == Incident.objects.open().count()
    stored = IncidentContext.objects.get(incident__title="HighErrorRate on checkout")
    assert [item["title"] for item in stored.items] == ["Check Checkout TCP is down", "Check created: Checkout TCP"]


def test_periodic_refresh_takes_stale_open_incidents_only(operator, two_incidents):
    checkout, search = two_incidents
    for incident in (checkout, search):
        ctx.refresh_incident_context(incident=incident)
    assert refresh_incident_contexts() == 0, "fresh contexts are left alone"
    down_check(operator)
    IncidentContext.objects.update(refreshed_at=timezone.now() - datetime.timedelta(minutes=5))
    services.resolve_incident(incident=search, actor=operator)
    assert refresh_incident_contexts() == 1
    assert [item["kind"] for item in IncidentContext.objects.get(incident=checkout).items] == ["check", "change"]


def test_viewing_refreshes_a_context_older_than_a_minute(viewer, operator, checkout):
    ctx.refresh_incident_context(incident=checkout)
    down_check(operator)
    client = client_for(viewer)
    fresh = client.get(f"/aiops/incidents/{checkout.pk}/context/", HTTP_HX_REQUEST="true").content.decode()
    assert "Checkout TCP" not in fresh and "None found." in fresh
    IncidentContext.objects.update(refreshed_at=timezone.now() - datetime.timedelta(seconds=61))
    body = client.get(f"/aiops/incidents/{checkout.pk}/context/", HTTP_HX_REQUEST="true").content.decode()
    assert "Check Checkout TCP is down" in body
    assert f'href="/aiops/checks/{Check.objects.get().pk}/"' in body
    assert 'hx-trigger="every 60s"' in body, "an open incident's panel keeps refreshing"


def test_the_refresh_button_assembles_again_at_once(viewer, operator, checkout):
    ctx.refresh_incident_context(incident=checkout)
    down_check(operator)
    body = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/context/?refresh=1").content.decode()
    assert "Check Checkout TCP is down" in body


def test_a_resolved_incidents_panel_stops_polling(viewer, operator, checkout):
    services.resolve_incident(incident=checkout, actor=operator)
    body = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/context/").content.decode()
    assert "hx-trigger" not in body and "until it resolved" in body


# --- Page and API -----------------------------------------------------------------------------------------------


def test_the_incident_page_loads_the_panel_with_htmx(viewer, checkout):
    body = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/").content.decode()
    assert f'hx-get="/aiops/incidents/{checkout.pk}/context/"' in body
    assert 'hx-trigger="load"' in body


def test_the_panel_needs_a_login(client, checkout):
    response = client.get(f"/aiops/incidents/{checkout.pk}/context/")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert not IncidentContext.objects.exists()


def test_api_answers_the_context(viewer_api, operator, admin_user, checkout):
    check = down_check(operator)
    promote(admin_user)
    answer = viewer_api.get(f"/api/v1/aiops/incidents/{checkout.pk}/context/")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["incident"] == checkout.pk and data["window_start"] and data["refreshed_at"]
    by_kind = {item["kind"]: item for item in data["items"]}
    assert by_kind["check"]["url"] == f"/aiops/checks/{check.pk}/"
    changes = {item["title"] for item in data["items"] if item["kind"] == "change"}
    assert "Model churn v2: Moved to Production from None." in changes
    assert set(by_kind["check"]) == {"kind", "title", "detail", "at", "url", "severity"}


def test_api_bad_refresh_is_a_400_naming_it_and_unknown_incident_a_404(viewer_api, checkout):
    answer = viewer_api.get(f"/api/v1/aiops/incidents/{checkout.pk}/context/?refresh=maybe")
    assert answer.status_code == 400 and "refresh" in answer.content.decode()
    assert not IncidentContext.objects.exists()
    assert viewer_api.get("/api/v1/aiops/incidents/999999/context/").status_code == 404


def test_api_needs_a_token(client, checkout):
    assert client.get(f"/api/v1/aiops/incidents/{checkout.pk}/context/").status_code in (401, 403)


def test_the_context_endpoint_is_in_the_openapi_schema(viewer_api):
    schema = viewer_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    operation = document["paths"]["/api/v1/aiops/incidents/{id}/context/"]["get"]
    assert operation["operationId"] == "aiops_incidents_context_retrieve"
    assert "items" in document["components"]["schemas"]["IncidentContext"]["properties"]


# --- With a real worker -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_real_worker_assembles_the_context_when_the_incident_opens(admin_user, worker, live_server):
    operator_check = down_check(admin_user)
    integration, token = services.create_integration(name="am", kind="alertmanager", actor=admin_user)
    request = urllib.request.Request(
        f"{live_server.url}{integration.ingest_path()}",
        data=json.dumps(am_payload(am_alert(service="checkout"))).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 202
    opened = lambda: IncidentContext.objects.filter(incident__title="HighErrorRate on checkout").first()  # noqa: E731
    assert wait_for(opened, timeout=30), "the worker never assembled the new incident's context"
    check_url = f"/aiops/checks/{operator_check.pk}/"
    assert [(item["kind"], item["url"]) for item in opened().items] == [("check", check_url), ("change", check_url)]
