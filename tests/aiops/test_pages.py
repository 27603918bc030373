"""The AIOps pages as people use them: what they see, and what their clicks and forms change."""

from __future__ import annotations

import datetime
import html
import itertools
import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.models import Alert, CorrelationRule, Incident, IncidentEvent, Integration, NotificationChannel, Silence
from opsportal.accounts.roles import Role
from opsportal.audit.models import AuditEntry
from tests.portal.factories import UserFactory

from .conftest import am_alert, am_payload, deliver

pytestmark = pytest.mark.django_db

_keys = itertools.count()


def fire(integration, token, *alerts) -> None:
    """Deliver alerts as Alertmanager would and let the worker correlate them."""
    response = deliver(integration, token, am_payload(*alerts, group_key=f"pages-{next(_keys)}"))
    assert response.status_code == 202, response.content
    services.process_pending_alerts()


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, whitespace collapsed."""
    body = response.content.decode()
    body = re.sub(r"<script\b.*?</script>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def json_script(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))


def incident(service: str) -> Incident:
    return Incident.objects.get(service=service)


@pytest.fixture
def two_incidents(alertmanager):
    """checkout (critical, triggered) and search (warning, triggered)."""
    integration, token = alertmanager
    fire(integration, token, am_alert(service="checkout", severity="critical", instance="a"))
    fire(integration, token, am_alert(alertname="SlowQueries", service="search", severity="warning"))
    return incident("checkout"), incident("search")


# --- Incident list ------------------------------------------------------------------------------------------


def test_list_shows_open_incidents_by_default(viewer, two_incidents):
    _, search = two_incidents
    services.resolve_incident(incident=search, actor=None)
    response = client_for(viewer).get("/aiops/")
    assert response.status_code == 200
    page = text_of(response)
    assert "HighErrorRate on checkout" in page
    assert "SlowQueries on search" not in page
    assert "1 incident ·" in page
    # The severity counters above the list count open incidents only.
    assert "Critical 1" in page and "Warning 0" in page
    # Resolved ones are one click away.
    everything = text_of(client_for(viewer).get("/aiops/?open="))
    assert "SlowQueries on search" in everything and "HighErrorRate on checkout" in everything


def test_severity_counters_follow_an_overridden_severity(operator, two_incidents):
    checkout, _ = two_incidents
    services.update_incident(incident=checkout, actor=operator, severity_override="info")
    page = text_of(client_for(operator).get("/aiops/"))
    assert "Critical 0" in page and "Info 1" in page and "Warning 1" in page


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("status=acknowledged", "search", "checkout"),
        ("severity=critical", "checkout", "search"),
        ("severity=warning&severity=info", "search", "checkout"),
        ("service=search", "search", "checkout"),
        ("assignee=otto", "checkout", "search"),
        ("assignee=none", "search", "checkout"),
        ("q=slowquer", "search", "checkout"),
        ("q=%23{checkout}", "checkout", "search"),
        ("q={search}", "search", "checkout"),
    ],
)
def test_list_filters(operator, two_incidents, query, shown, hidden):
    checkout, search = two_incidents
    services.acknowledge_incident(incident=search, actor=operator)
    services.assign_incident(incident=checkout, assignee=operator, actor=operator)
    query = query.format(checkout=checkout.pk, search=search.pk)
    response = client_for(operator).get(f"/aiops/?{query}")
    rows = re.findall(r'<tr id="incident-(\d+)"', response.content.decode())
    expected = {"checkout": checkout.pk, "search": search.pk}
    assert rows == [str(expected[shown])], query
    assert f'id="incident-{expected[hidden]}"' not in response.content.decode()


def test_list_filter_form_shows_the_current_filter(viewer, two_incidents):
    response = client_for(viewer).get("/aiops/?service=search&severity=warning")
    body = response.content.decode()
    assert re.search(r'name="service"[^>]*value="search"', body)
    assert re.search(r'value="warning" id="severity-warning" checked', body)
    assert not re.search(r'value="critical" id="severity-critical" checked', body)


def test_bad_filter_value_is_reported_not_ignored(viewer, two_incidents):
    response = client_for(viewer).get("/aiops/?since=yesterday")
    assert response.status_code == 200
    assert "No incidents match." in text_of(response)
    assert "Enter a valid date/time." in text_of(response)


def test_htmx_request_returns_only_the_table(viewer, two_incidents):
    response = client_for(viewer).get("/aiops/?service=checkout", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="incidents"' in body and "HighErrorRate on checkout" in body
    assert "<html" not in body and 'id="incident-filters"' not in body and "SlowQueries" not in body


def test_history_restore_gets_the_whole_page(viewer, two_incidents):
    """After Back, htmx asks again for a page it has no snapshot of: it needs the whole page."""
    response = client_for(viewer).get(
        "/aiops/?service=checkout", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    body = response.content.decode()
    assert "<html" in body and 'id="incident-filters"' in body
    assert "HX-Request" in response["Vary"]


def test_table_refreshes_itself_with_the_current_filter(viewer, two_incidents):
    """The 10 s refresh must keep the filter chosen after the page loaded (htmx swapped the table)."""
    client = client_for(viewer)
    partial = client.get("/aiops/?service=checkout&q=", HTTP_HX_REQUEST="true").content.decode()
    poller = re.search(r'<[^>]*hx-trigger="every 10s[^"]*"[^>]*>', partial)
    assert poller, "the table partial must carry its own refresh"
    assert "service=checkout" in html.unescape(poller.group(0))
    # And the bulk form's return address follows the filter too.
    assert re.search(r'name="next" value="/aiops/\?service=checkout', partial)


def test_list_uses_a_constant_number_of_queries(operator, alertmanager, django_assert_max_num_queries):
    integration, token = alertmanager
    client = client_for(operator)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/aiops/").status_code == 200
        return len(queries)

    fire(integration, token, *[am_alert(service=f"svc-{i}") for i in range(5)])
    for i, pending in enumerate(Incident.objects.all()[:3]):
        services.assign_incident(incident=pending, assignee=operator, actor=operator)
        if i:
            services.acknowledge_incident(incident=pending, actor=operator)
    few = measure()
    fire(integration, token, *[am_alert(service=f"more-{i}") for i in range(35)])
    for pending in Incident.objects.filter(assignee__isnull=True)[:20]:
        services.assign_incident(incident=pending, assignee=operator, actor=operator)
    assert Incident.objects.count() == 40
    many = measure()
    assert few == many
    with django_assert_max_num_queries(few):
        client.get("/aiops/?severity=critical&ordering=-alert_count")


# --- One-click and bulk actions -----------------------------------------------------------------------------


def test_acknowledge_from_the_list_returns_the_refreshed_row(operator, two_incidents):
    checkout, _ = two_incidents
    response = client_for(operator).post(
        f"/aiops/incidents/{checkout.pk}/acknowledge/", {"from": "list"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith(f'<tr id="incident-{checkout.pk}"')
    assert "Acknowledged" in body and "Triggered" not in body
    assert "<html" not in body
    # The Ack button is gone, Resolve stays.
    assert f"Acknowledge incident {checkout.pk}" not in body and f"Resolve incident {checkout.pk}" in body
    checkout.refresh_from_db()
    assert checkout.status == "acknowledged"


def test_viewers_cannot_act_on_incidents(viewer, two_incidents):
    checkout, _ = two_incidents
    client = client_for(viewer)
    for action in ("acknowledge", "resolve", "comment"):
        response = client.post(f"/aiops/incidents/{checkout.pk}/{action}/", {"from": "list", "body": "x"})
        assert response.status_code == 403, action
    assert client.post("/aiops/incidents/bulk/", {"ids": [checkout.pk], "action": "resolve"}).status_code == 403
    checkout.refresh_from_db()
    assert checkout.status == "triggered"
    # And they see no buttons.
    page = client.get("/aiops/").content.decode()
    assert "hx-post" not in page and "Acknowledge selected" not in page


def test_bulk_acknowledge_then_resolve(operator, two_incidents):
    checkout, search = two_incidents
    client = client_for(operator)
    response = client.post(
        "/aiops/incidents/bulk/",
        {"ids": [checkout.pk, search.pk], "action": "acknowledge", "next": "/aiops/?service=checkout"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/aiops/?service=checkout"
    assert "2 incident(s) acknowledged." in text_of(response)
    assert set(Incident.objects.values_list("status", flat=True)) == {"acknowledged"}
    response = client.post("/aiops/incidents/bulk/", {"ids": [search.pk], "action": "resolve"}, follow=True)
    assert "1 incident(s) resolved." in text_of(response)
    search.refresh_from_db()
    checkout.refresh_from_db()
    assert (search.status, checkout.status) == ("resolved", "acknowledged")


def test_bulk_without_a_selection_says_so(operator, two_incidents):
    response = client_for(operator).post("/aiops/incidents/bulk/", {"action": "resolve"}, follow=True)
    assert "Select incidents and an action." in text_of(response)
    assert not Incident.objects.filter(status="resolved").exists()


def test_bulk_never_redirects_to_another_site(operator, two_incidents):
    checkout, _ = two_incidents
    for target in ("https://evil.example/phish", "//evil.example/", "javascript:alert(1)"):
        response = client_for(operator).post(
            "/aiops/incidents/bulk/", {"ids": [checkout.pk], "action": "acknowledge", "next": target}
        )
        assert response.status_code == 302
        assert response["Location"] == "/aiops/", target


# --- Incident page ------------------------------------------------------------------------------------------


def test_incident_page_shows_alerts_timeline_chart_and_source(viewer, alertmanager):
    integration, token = alertmanager
    fire(integration, token, am_alert(instance="web-1", cluster="eu-1"))
    fire(integration, token, am_alert(instance="web-2", cluster="eu-1"))
    fire(integration, token, am_alert(instance="web-1", cluster="eu-1", status="resolved"))
    checkout = incident("checkout")
    response = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    page = text_of(response)
    assert "HighErrorRate on checkout" in page
    assert "Alerts (1 firing of 2)" in page
    alerts_table = body[body.index('id="incident-alerts"') : body.index("</table>", body.index('id="incident-alerts"'))]
    for label in ("instance=web-1", "instance=web-2", "cluster=eu-1", "alertname=HighErrorRate"):
        assert label in alerts_table
    assert alerts_table.count("Firing") == 1 and alerts_table.count("Resolved") == 1
    # Links to where the alert comes from.
    assert 'href="http://prometheus.example:9090/graph?g0.expr=HighErrorRate"' in body
    # Timeline: opened, two firings, one resolution, in order.
    kinds = re.findall(r'class="timeline-item kind-(\w+)"', body)
    assert kinds == ["opened", "alert_firing", "alert_firing", "alert_resolved"]
    # The activity chart's data, drawn by portal.js.
    assert 'data-chart="incident-activity"' in body
    chart = json_script(response, "incident-activity")
    traces = {t["name"]: t for t in chart["data"]}
    assert len(traces["firing"]["x"]) == 2 and len(traces["resolved"]["x"]) == 1
    # Alerts that fired within a second still get a readable time axis (minutes, not milliseconds).
    start, end = (datetime.datetime.fromisoformat(x) for x in chart["layout"]["xaxis"]["range"])
    assert end - start >= datetime.timedelta(minutes=2)
    assert start < checkout.created_at < end
    # Viewers read but get no triage forms.
    assert "Add comment" not in page and ">Acknowledge</button>" not in body and "Split out" not in body


def test_incident_page_never_links_to_javascript(viewer, make_integration):
    """Links come from senders; only http(s) ones become clickable."""
    integration, token = make_integration("generic")
    payload = {
        "title": "Queue backlog",
        "service": "billing",
        "links": ["javascript:alert(document.cookie)", {"href": "https://grafana.example/d/q", "text": "Dashboard"}],
    }
    assert deliver(integration, token, payload).status_code == 202
    services.process_pending_alerts()
    billing = incident("billing")
    client = client_for(viewer)
    for url in (f"/aiops/incidents/{billing.pk}/", f"/aiops/alerts/{Alert.objects.get().pk}/"):
        body = client.get(url).content.decode()
        assert 'href="https://grafana.example/d/q"' in body, url
        assert not re.search(r"href=\"\s*javascript:", body, re.I), url


def test_timeline_shows_firing_comment_and_status_changes_in_order(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    base = f"/aiops/incidents/{checkout.pk}"
    assert client.post(f"{base}/acknowledge/").status_code == 302
    response = client.post(f"{base}/comment/", {"body": "Rolling back release 42.\nWatching."}, follow=True)
    assert response.redirect_chain[-1][0] == f"{base}/"
    assert client.post(f"{base}/resolve/", {"note": "Rollback done."}).status_code == 302
    response = client.get(f"{base}/")
    body = response.content.decode()
    items = re.findall(
        r'class="timeline-item kind-(\w+)">.*?<strong class="small">(.*?)</strong>\s*'
        r'<div class="timeline-message">(.*?)</div>',
        body,
        flags=re.S,
    )
    assert [(kind, who) for kind, who, _ in items] == [
        ("opened", "system"),
        ("alert_firing", "system"),
        ("status", "otto"),
        ("comment", "otto"),
        ("status", "otto"),
    ]
    assert items[2][2] == "Acknowledged."
    assert items[3][2] == "Rolling back release 42.<br>Watching."
    assert items[4][2] == "Resolved. Rollback done."
    assert '<span class="badge status-resolved" id="incident-status">Resolved</span>' in body
    # The timeline alone, for htmx's refresh.
    partial = client.get(f"{base}/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<ol class="list-unstyled timeline') and "Rolling back" in partial
    # Each change is audited.
    entries = AuditEntry.objects.for_object("aiops", "incident", checkout.pk).filter(actor_name="otto")
    assert {e.action for e in entries} == {"state", "update"}
    assert entries.filter(message__startswith="Comment: Rolling back").exists()


def test_empty_comment_is_refused_with_a_message(operator, two_incidents):
    checkout, _ = two_incidents
    response = client_for(operator).post(f"/aiops/incidents/{checkout.pk}/comment/", {"body": "  "}, follow=True)
    assert "a comment cannot be empty" in text_of(response)
    assert not IncidentEvent.objects.filter(kind="comment").exists()


def test_assign_and_set_severity(operator, two_incidents):
    checkout, _ = two_incidents
    sam = UserFactory(username="sam", role=Role.OPERATOR)
    client = client_for(operator)
    base = f"/aiops/incidents/{checkout.pk}"
    page = client.get(f"{base}/").content.decode()
    assert f'<option value="{sam.pk}">sam</option>' in page
    client.post(f"{base}/assign/", {"assignee": sam.pk})
    client.post(f"{base}/severity/", {"severity_override": "info"})
    response = client.get(f"{base}/")
    page = text_of(response)
    assert "Assigned to sam." in page and "Severity set to info." in page
    assert re.search(r'<dd class="col-7" id="assignee">sam</dd>', response.content.decode())
    assert re.search(r'<option value="info" selected>', response.content.decode())
    assert '<span class="badge sev-info">Info</span>' in response.content.decode()
    checkout.refresh_from_db()
    assert checkout.assignee == sam and checkout.severity_override == "info"
    changes = [
        e.changes for e in AuditEntry.objects.for_object("aiops", "incident", checkout.pk).filter(action="update")
    ]
    assert {"assignee": [None, "sam"]} in changes and {"severity_override": ["", "info"]} in changes
    # Unassign, and back to the alerts' severity.
    client.post(f"{base}/assign/", {"assignee": ""})
    client.post(f"{base}/severity/", {"severity_override": ""})
    page = text_of(client.get(f"{base}/"))
    assert "Unassigned." in page and "Severity set to critical (from alerts)." in page


def test_invalid_assign_and_severity_say_so(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    base = f"/aiops/incidents/{checkout.pk}"
    response = client.post(f"{base}/assign/", {"assignee": 999999}, follow=True)
    assert "assignee:" in text_of(response)
    response = client.post(f"{base}/severity/", {"severity_override": "apocalyptic"}, follow=True)
    assert "severity_override:" in text_of(response)
    checkout.refresh_from_db()
    assert checkout.assignee is None and checkout.severity_override == ""


def test_merge_and_split(operator, alertmanager):
    integration, token = alertmanager
    fire(integration, token, am_alert(service="checkout", instance="a"), am_alert(service="checkout", instance="b"))
    fire(integration, token, am_alert(alertname="Latency", service="payments"))
    checkout, payments = incident("checkout"), incident("payments")
    client = client_for(operator)
    page = client.get(f"/aiops/incidents/{payments.pk}/").content.decode()
    assert f'<option value="{checkout.pk}">#{checkout.pk} HighErrorRate on checkout</option>' in page

    response = client.post(f"/aiops/incidents/{payments.pk}/merge/", {"into": checkout.pk}, follow=True)
    assert response.redirect_chain[-1][0] == f"/aiops/incidents/{checkout.pk}/"
    page = text_of(response)
    assert f"Merged #{payments.pk} into #{checkout.pk}." in page
    assert f"Merged #{payments.pk} (1 alerts) into this incident." in page
    assert "Alerts (3 firing of 3)" in page
    source_page = text_of(client.get(f"/aiops/incidents/{payments.pk}/"))
    assert f"merged into #{checkout.pk}" in source_page and "Resolved" in source_page

    latency = Alert.objects.get(service="payments")
    response = client.post(f"/aiops/incidents/{checkout.pk}/split/", {"alert": latency.pk}, follow=True)
    new = Incident.objects.exclude(pk__in=[checkout.pk, payments.pk]).get()
    assert response.redirect_chain[-1][0] == f"/aiops/incidents/{new.pk}/"
    assert f"Split the alert out into #{new.pk}." in text_of(response)
    assert "Alerts (2 firing of 2)" in text_of(client.get(f"/aiops/incidents/{checkout.pk}/"))
    assert AuditEntry.objects.for_object("aiops", "incident", payments.pk).filter(
        changes__merged_into=[None, checkout.pk]
    )
    assert AuditEntry.objects.for_object("aiops", "incident", new.pk).filter(action="create", actor_name="otto")


def test_merge_into_nothing_is_an_error_not_a_crash(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    assert client.post(f"/aiops/incidents/{checkout.pk}/merge/", {"into": "abc"}).status_code in (302, 404)
    assert client.post(f"/aiops/incidents/{checkout.pk}/merge/", {"into": checkout.pk}, follow=True).status_code == 200
    checkout.refresh_from_db()
    assert checkout.merged_into is None


def test_unknown_incident_is_404(viewer):
    assert client_for(viewer).get("/aiops/incidents/424242/").status_code == 404


# --- Alert page ---------------------------------------------------------------------------------------------


def test_alert_page_shows_raw_payload_labels_and_deliveries(viewer, alertmanager):
    integration, token = alertmanager
    fire(integration, token, am_alert(instance="db-3", fingerprint="abc123"))
    fire(integration, token, am_alert(instance="db-3", fingerprint="abc123", status="resolved"))
    alert = Alert.objects.get()
    response = client_for(viewer).get(f"/aiops/alerts/{alert.pk}/")
    assert response.status_code == 200
    page = text_of(response)
    assert "HighErrorRate" in page and "Resolved" in page
    assert "instance=db-3" in page and "service=checkout" in page
    assert "abc123" in page
    raw = re.search(r"Raw payload</h2><pre[^>]*><code>(.*?)</code>", response.content.decode(), flags=re.S)
    assert json.loads(html.unescape(raw.group(1)))["labels"]["instance"] == "db-3"
    history = re.findall(r"<tr><td>[\d\- :]+</td><td>(\w+)</td>", response.content.decode())
    assert history == ["resolved", "firing"]
    assert f'href="/aiops/incidents/{alert.incident_id}/"' in response.content.decode()
    assert response.content.decode().count('href="http://prometheus.example:9090/graph?g0.expr=HighErrorRate"') == 1


def test_alert_list_filters(viewer, two_incidents):
    client = client_for(viewer)
    page = text_of(client.get("/aiops/alerts/?service=search"))
    assert "SlowQueries" in page and "HighErrorRate" not in page
    partial = client.get("/aiops/alerts/?q=higherr", HTTP_HX_REQUEST="true").content.decode()
    assert "HighErrorRate" in partial and "SlowQueries" not in partial and "<html" not in partial
    bad = text_of(client.get("/aiops/alerts/?status=sleeping"))
    assert "No alerts match." in bad and "Select a valid choice." in bad


# --- Integrations -------------------------------------------------------------------------------------------


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


# --- Silences -----------------------------------------------------------------------------------------------


def test_operator_creates_and_expires_a_silence(operator, alertmanager):
    integration, token = alertmanager
    client = client_for(operator)
    response = client.post(
        "/aiops/silences/",
        {"matchers": "service=checkout\nenv=~prod|staging", "duration_hours": 2, "comment": "db-3 maintenance"},
        follow=True,
    )
    assert "Silence created." in text_of(response)
    silence = Silence.objects.get()
    assert silence.matchers == [
        {"label": "service", "op": "=", "value": "checkout"},
        {"label": "env", "op": "=~", "value": "prod|staging"},
    ]
    fire(integration, token, am_alert(env="prod"))
    body = client.get("/aiops/silences/").content.decode()
    active = body[body.index('id="active-silences"') : body.index("Expired and scheduled")]
    assert "service=checkout env=~prod|staging" in html.unescape(active)
    assert "db-3 maintenance" in active and "by otto" in active
    assert re.search(r'<td class="text-end">1</td>', active), "one alert suppressed"
    assert not Incident.objects.exists()

    response = client.post(f"/aiops/silences/{silence.pk}/expire/", follow=True)
    assert "Silence expired." in text_of(response)
    body = response.content.decode()
    active = body[body.index('id="active-silences"') : body.index("Expired and scheduled")]
    assert "No active silences." in active and "db-3 maintenance" not in active
    assert "db-3 maintenance" in body[body.index("Expired and scheduled") :]
    assert AuditEntry.objects.for_object("aiops", "silence", silence.pk).count() == 2


@pytest.mark.parametrize(
    ("matchers", "error"),
    [
        ("service=checkout\nnonsense", "Line 2"),
        ("service=checkout\nnonsense", "nonsense"),
        ("=checkout", "Line 1"),
        ("env=~prod(", "Line 1"),
        ("", "This field is required."),
    ],
)
def test_bad_matcher_lines_name_the_line(operator, matchers, error):
    response = client_for(operator).post(
        "/aiops/silences/", {"matchers": matchers, "duration_hours": 1, "comment": "x"}
    )
    assert response.status_code == 200
    errors = " ".join(re.findall(r'<div class="invalid-feedback d-block">(.*?)</div>', response.content.decode()))
    assert error in html.unescape(errors)
    assert not Silence.objects.exists()


def test_matcher_values_may_contain_operators_and_quotes(operator):
    client_for(operator).post(
        "/aiops/silences/",
        {"matchers": 'summary=a!=b\nservice="checkout"\npath!~/api/.*', "duration_hours": 1, "comment": "x"},
    )
    assert Silence.objects.get().matchers == [
        {"label": "summary", "op": "=", "value": "a!=b"},
        {"label": "service", "op": "=", "value": "checkout"},
        {"label": "path", "op": "!~", "value": "/api/.*"},
    ]


def test_viewers_see_silences_but_cannot_create_or_expire(viewer, operator):
    silence = services.create_silence(
        matchers=[{"label": "service", "op": "=", "value": "batch"}],
        ends_at=timezone.now() + datetime.timedelta(hours=1),
        comment="nightly batch",
        actor=operator,
    )
    client = client_for(viewer)
    body = client.get("/aiops/silences/").content.decode()
    assert "nightly batch" in body and "New silence" not in body and ">Expire</button>" not in body
    assert client.post("/aiops/silences/", {"matchers": "a=b", "duration_hours": 1, "comment": "x"}).status_code == 403
    assert client.post(f"/aiops/silences/{silence.pk}/expire/").status_code == 403


# --- Correlation rules --------------------------------------------------------------------------------------


def test_admin_creates_and_edits_a_rule(admin_user):
    client = client_for(admin_user)
    assert client.get("/aiops/rules/new/").status_code == 200
    response = client.post(
        "/aiops/rules/new/",
        {
            "name": "Cluster outages",
            "position": 10,
            "matchers": "env=prod\nseverity=~critical|error",
            "group_by": "cluster, alertname",
            "window_minutes": 30,
            "reopen_cooldown_minutes": 15,
            "auto_resolve": "on",
            "enabled": "on",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/aiops/rules/"
    assert "Rule saved." in text_of(response)
    rule = CorrelationRule.objects.get(name="Cluster outages")
    assert rule.group_by == ["cluster", "alertname"]
    assert rule.matchers == [
        {"label": "env", "op": "=", "value": "prod"},
        {"label": "severity", "op": "=~", "value": "critical|error"},
    ]
    assert (rule.position, rule.window_minutes, rule.reopen_cooldown_minutes) == (10, 30, 15)
    assert rule.auto_resolve and rule.enabled
    listing = text_of(response)
    assert "env=prod severity=~critical|error" in listing and "cluster, alertname" in listing

    # The edit form shows the rule as it was entered.
    edit = client.get(f"/aiops/rules/{rule.pk}/").content.decode()
    assert "env=prod\nseverity=~critical|error</textarea>" in edit
    assert 'value="cluster, alertname"' in edit
    response = client.post(
        f"/aiops/rules/{rule.pk}/",
        {
            "name": "Cluster outages",
            "position": 10,
            "matchers": "",
            "group_by": "cluster",
            "window_minutes": 30,
            "reopen_cooldown_minutes": 15,
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.matchers == [] and rule.group_by == ["cluster"] and not rule.auto_resolve and not rule.enabled
    entries = AuditEntry.objects.for_object("aiops", "correlationrule", rule.pk)
    assert [e.action for e in entries] == ["update", "create"]
    assert entries[0].changes["group_by"] == [["cluster", "alertname"], ["cluster"]]


def test_bad_regex_in_a_rule_is_an_error_on_its_line(admin_user):
    response = client_for(admin_user).post(
        "/aiops/rules/new/",
        {
            "name": "bad",
            "position": 1,
            "matchers": "env=prod\nservice=~(checkout",
            "group_by": "service",
            "window_minutes": 5,
            "reopen_cooldown_minutes": 5,
        },
    )
    assert response.status_code == 400
    errors = html.unescape(
        " ".join(re.findall(r'class="invalid-feedback d-block">(.*?)</div>', response.content.decode()))
    )
    assert "Line 2" in errors and "regular expression" in errors
    assert not CorrelationRule.objects.filter(name="bad").exists()


def test_rule_needs_group_by_keys_and_a_unique_name(admin_user):
    client = client_for(admin_user)
    data = {
        "name": "x",
        "position": 1,
        "matchers": "",
        "group_by": " , ",
        "window_minutes": 5,
        "reopen_cooldown_minutes": 5,
    }
    response = client.post("/aiops/rules/new/", data)
    assert response.status_code == 400
    assert "At least one label key is required." in text_of(response)
    existing = CorrelationRule.objects.first()
    response = client.post("/aiops/rules/new/", {**data, "name": existing.name.upper(), "group_by": "service"})
    assert response.status_code == 400 and "already exists" in text_of(response)


def test_admin_deletes_a_rule(admin_user):
    rule = services.save_rule(actor=admin_user, name="temp", group_by=["service"])
    response = client_for(admin_user).post(f"/aiops/rules/{rule.pk}/", {"delete": "1"}, follow=True)
    assert "Rule temp deleted." in text_of(response)
    assert not CorrelationRule.objects.filter(pk=rule.pk).exists()


def test_viewers_and_operators_see_rules_but_cannot_edit(viewer, operator, admin_user):
    rule = services.save_rule(actor=admin_user, name="by cluster", group_by=["cluster"])
    for user in (viewer, operator):
        client = client_for(user)
        response = client.get("/aiops/rules/")
        assert response.status_code == 200
        assert "by cluster" in text_of(response) and f"/aiops/rules/{rule.pk}/" not in response.content.decode()
        assert "New rule" not in text_of(response)
        assert client.get(f"/aiops/rules/{rule.pk}/").status_code == 403
        assert client.get("/aiops/rules/new/").status_code == 403
        assert client.post(f"/aiops/rules/{rule.pk}/", {"delete": "1"}).status_code == 403
    assert CorrelationRule.objects.filter(pk=rule.pk).exists()


# --- Notification channels ----------------------------------------------------------------------------------


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


# --- Analytics ----------------------------------------------------------------------------------------------


def test_analytics_shows_mtta_and_mttr(viewer, operator, alertmanager, monkeypatch):
    integration, token = alertmanager
    fire(integration, token, am_alert(service="checkout", instance="1"))
    fire(integration, token, am_alert(alertname="Disk", service="storage", severity="warning"))
    checkout, storage = incident("checkout"), incident("storage")
    with monkeypatch.context() as clock:
        clock.setattr(timezone, "now", lambda: checkout.created_at + datetime.timedelta(minutes=10))
        services.acknowledge_incident(incident=checkout, actor=operator)
        clock.setattr(timezone, "now", lambda: checkout.created_at + datetime.timedelta(minutes=45))
        services.resolve_incident(incident=checkout, actor=operator)
        clock.setattr(timezone, "now", lambda: storage.created_at + datetime.timedelta(minutes=4))
        services.acknowledge_incident(incident=storage, actor=operator)
    client = client_for(viewer)
    for days in (7, 30, 90):
        response = client.get(f"/aiops/analytics/?days={days}")
        assert response.status_code == 200
        page = text_of(response)
        assert f"2 incidents opened in the last {days} days." in page
        body = response.content.decode()
        table = body[body.index('id="service-times"') :]
        rows = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", table)
        cells = {service: re.findall(r'<td class="text-end">(.*?)</td>', rest) for service, rest in rows}
        assert cells["checkout"] == ["1", "10.0 min", "10.0 min", "45.0 min", "45.0 min"]
        assert cells["storage"] == ["0", "4.0 min", "4.0 min", "—", "—"]
        # Overall medians: MTTA of 4 and 10 minutes, MTTR of the one resolved.
        assert "MTTA median 7.0 min" in page and "MTTR median 45.0 min" in page
        for chart in ("trend-chart", "service-chart", "severity-chart", "counts-chart", "noisy-chart"):
            assert f'data-chart="{chart}"' in body
            assert json_script(response, chart)["data"], chart
        assert f'href="?days={days}" aria-current="page"' in body
    response = client.get("/aiops/analytics/")
    service_chart = json_script(response, "service-chart")
    medians = {t["name"]: t["y"] for t in service_chart["data"]}
    assert medians["MTTA median"] == [10.0, 4.0]
    # The card's heading names the chart; no second title cut off at the top.
    assert not service_chart["layout"].get("title", {}).get("text")
    # The time axis covers the whole period, even with one day of data.
    start, end = json_script(response, "trend-chart")["layout"]["xaxis"]["range"]
    assert datetime.datetime.fromisoformat(end) - datetime.datetime.fromisoformat(start) == datetime.timedelta(days=30)


def test_analytics_with_nothing_yet(viewer):
    response = client_for(viewer).get("/aiops/analytics/?days=bogus")
    assert response.status_code == 200
    page = text_of(response)
    assert "0 incidents opened in the last 30 days." in page and "No incidents in this period." in page


def test_analytics_leaves_out_older_incidents(viewer, alertmanager):
    integration, token = alertmanager
    fire(integration, token, am_alert())
    Incident.objects.update(created_at=timezone.now() - datetime.timedelta(days=20))
    client = client_for(viewer)
    assert "0 incidents opened in the last 7 days." in text_of(client.get("/aiops/analytics/?days=7"))
    assert "1 incident opened in the last 30 days." in text_of(client.get("/aiops/analytics/?days=30"))


# --- Everyone's navigation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "tab"),
    [
        ("/aiops/", "Incidents"),
        ("/aiops/alerts/", "Alerts"),
        ("/aiops/analytics/", "Analytics"),
        ("/aiops/integrations/", "Integrations"),
        ("/aiops/silences/", "Silences"),
        ("/aiops/rules/", "Correlation rules"),
        ("/aiops/channels/", "Notifications"),
    ],
)
def test_the_current_tab_is_marked(admin_user, url, tab):
    body = client_for(admin_user).get(url).content.decode()
    body = body[body.index('aria-label="AIOps sections"') :]
    body = body[: body.index("</ul>")]
    current = re.findall(r'<a class="nav-link active" aria-current="page" href="[^"]+">([^<]+)</a>', body)
    assert current == [tab]


def test_sorting_by_status_and_severity_follows_triage_order(operator, two_incidents):
    from aiops import services as aiops_services

    aiops_services.acknowledge_incident(incident=incident("checkout"), actor=operator)
    client = client_for(operator)
    by_status = client.get("/aiops/", {"ordering": "status", "open": ""}).context["page"].object_list
    assert [i.status for i in by_status][:2] == ["triggered", "acknowledged"]
    by_severity = [
        i.effective_severity for i in client.get("/aiops/", {"ordering": "severity", "open": ""}).context["page"]
    ]
    ranks = ["critical", "error", "warning", "info"]
    assert by_severity == sorted(by_severity, key=ranks.index)
