"""Incident pages as on-call people use them: the triage list, one-click and bulk actions, one incident."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aiops import services
from aiops.models import Alert, Incident, IncidentEvent
from opsportal.accounts.roles import Role
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for
from tests.portal.factories import UserFactory

from .factories import am_alert, deliver, fire
from .pages import json_script, text_of

pytestmark = pytest.mark.django_db


# --- The list -----------------------------------------------------------------------------------------------


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


def test_bad_filter_value_is_reported_and_the_filter_ignored(viewer, two_incidents):
    response = client_for(viewer).get("/aiops/?since=yesterday")
    assert response.status_code == 200
    page = text_of(response)
    assert "Filter since: “yesterday” — Enter " in page
    assert "HighErrorRate on checkout" in page and "SlowQueries on search" in page


def test_status_all_means_every_status(viewer, two_incidents):
    _, search = two_incidents
    services.resolve_incident(incident=search, actor=None)
    page = text_of(client_for(viewer).get("/aiops/?status=all"))
    assert "HighErrorRate on checkout" in page and "SlowQueries on search" in page
    assert "2 incidents ·" in page
    assert "Filter status:" not in page


@pytest.mark.parametrize(
    ("query", "named", "allowed"),
    [
        ("status=bogus", "Filter status: “bogus”", "triggered, acknowledged, resolved (or all)"),
        ("severity=urgent", "Filter severity: “urgent”", "critical, error"),
        ("open=maybe", "Filter open: “maybe”", "true, false (or all)"),
    ],
)
def test_an_unknown_filter_value_is_named_with_its_allowed_values_never_an_empty_list(
    viewer, two_incidents, query, named, allowed
):
    for client_kwargs in ({}, {"HTTP_HX_REQUEST": "true"}):  # the page, and the table the filter form swaps in
        page = text_of(client_for(viewer).get(f"/aiops/?{query}", **client_kwargs))
        assert named in page and allowed in page, page
        assert "No incidents match." not in page
        assert "HighErrorRate on checkout" in page


def test_a_known_value_beside_an_unknown_one_still_filters(viewer, two_incidents):
    _, search = two_incidents
    services.resolve_incident(incident=search, actor=None)
    page = text_of(client_for(viewer).get("/aiops/?status=resolved&status=bogus"))
    assert "SlowQueries on search" in page and "HighErrorRate on checkout" not in page
    assert "Filter status: “bogus”" in page


def test_an_unknown_sort_order_is_named(viewer, two_incidents):
    page = text_of(client_for(viewer).get("/aiops/?ordering=-colour"))
    assert "Sort ordering: “-colour” — not a value it knows" in page and "HighErrorRate on checkout" in page


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


# --- One incident -------------------------------------------------------------------------------------------


def test_incident_page_shows_alerts_timeline_chart_and_source(viewer, alertmanager):
    integration, token = alertmanager
    fire(integration, token, am_alert(instance="web-1", cluster="eu-1"))
    fire(integration, token, am_alert(instance="web-2", cluster="eu-1"))
    fire(integration, token, am_alert(instance="web-1", cluster="eu-1", status="resolved"))
    checkout = Incident.objects.get(service="checkout")
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
    assert len(traces["firing"]["y"]) == 1 and len(traces["resolved"]["y"]) == 1
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
    billing = Incident.objects.get(service="billing")
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
    assert items[3][2].strip() == "<p>Rolling back release 42.<br />\nWatching.</p>"  # Markdown, line breaks kept
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
    checkout, payments = Incident.objects.get(service="checkout"), Incident.objects.get(service="payments")
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


@pytest.mark.parametrize(
    ("into", "message"),
    [
        ("", "into: choose the incident to merge into."),
        ("abc", "into: choose the incident to merge into."),
        ("424242", "into: No incident #424242."),
        ("self", "into: cannot merge an incident into itself."),
    ],
)
def test_merging_into_nothing_says_why_on_the_incident_page(operator, two_incidents, into, message):
    """A bad merge target is the person's mistake: back to the incident, with what was wrong."""
    checkout, _ = two_incidents
    into = str(checkout.pk) if into == "self" else into
    response = client_for(operator).post(f"/aiops/incidents/{checkout.pk}/merge/", {"into": into}, follow=True)
    assert response.redirect_chain == [(f"/aiops/incidents/{checkout.pk}/", 302)]
    assert message in text_of(response)
    checkout.refresh_from_db()
    assert checkout.merged_into is None and checkout.status == "triggered"


def test_splitting_out_a_missing_alert_says_why(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    for alert, message in (("", "alert: choose the alert to split out."), ("424242", "alert: No alert #424242.")):
        response = client.post(f"/aiops/incidents/{checkout.pk}/split/", {"alert": alert}, follow=True)
        assert response.redirect_chain == [(f"/aiops/incidents/{checkout.pk}/", 302)]
        assert message in text_of(response)
    assert Incident.objects.count() == 2


def test_an_unknown_action_is_not_found(operator, two_incidents):
    checkout, _ = two_incidents
    assert client_for(operator).post(f"/aiops/incidents/{checkout.pk}/explode/").status_code == 404
    checkout.refresh_from_db()
    assert checkout.status == "triggered"


def test_unknown_incident_is_404(viewer):
    assert client_for(viewer).get("/aiops/incidents/424242/").status_code == 404


# --- Sorting and the section tabs ---------------------------------------------------------------------------


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
    services.acknowledge_incident(incident=Incident.objects.get(service="checkout"), actor=operator)
    client = client_for(operator)
    by_status = client.get("/aiops/", {"ordering": "status", "open": ""}).context["page"].object_list
    assert [i.status for i in by_status][:2] == ["triggered", "acknowledged"]
    by_severity = [
        i.effective_severity for i in client.get("/aiops/", {"ordering": "severity", "open": ""}).context["page"]
    ]
    ranks = ["critical", "error", "warning", "info"]
    assert by_severity == sorted(by_severity, key=ranks.index)


def test_a_resolved_incident_whose_alerts_still_fire_says_so(operator, alertmanager):
    integration, token = alertmanager
    fire(integration, token, am_alert(service="checkout", instance="a"), am_alert(service="checkout", instance="b"))
    incident = Incident.objects.get()
    client = client_for(operator)
    assert "still firing" not in text_of(client.get(incident.get_absolute_url()))

    client.post(f"/aiops/incidents/{incident.pk}/resolve/")
    page = text_of(client.get(incident.get_absolute_url()))
    assert "Alerts (2 firing of 2)" in page
    assert "Resolved by hand; 2 alerts still firing." in page
    listed = client.get("/aiops/?status=resolved").content.decode()
    assert re.search(r"2/2<div [^>]*title=\"Resolved by hand while 2 alerts still fire\">still firing</div>", listed)

    # Once the sender resolves them, the hint goes.
    fire(integration, token, *(am_alert(service="checkout", instance=i, status="resolved") for i in "ab"))
    assert "still firing" not in text_of(client.get(incident.get_absolute_url()))


def test_merge_into_preselects_no_incident(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    page = client.get(checkout.get_absolute_url()).content.decode()
    select = re.search(r'<select [^>]*id="merge-into"[^>]*>(.*?)</select>', page, flags=re.S)
    assert "required" in select.group(0)
    options = re.findall(r"<option ([^>]*)>", select.group(1))
    assert options[0] == 'value="" selected'
    assert all("selected" not in option for option in options[1:]) and len(options) == 2
    # Submitting the form untouched merges nothing and says what is missing.
    response = client.post(f"/aiops/incidents/{checkout.pk}/merge/", {"into": ""}, follow=True)
    assert "choose the incident to merge into." in text_of(response)
    checkout.refresh_from_db()
    assert checkout.merged_into_id is None and checkout.status == "triggered"
