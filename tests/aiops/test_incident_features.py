"""The incident page's shortcuts: Assign to me, link buttons, Markdown comments and the alert-activity chart."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from aiops import charts, services
from aiops.models import Alert, Incident
from opsportal.accounts.roles import Role
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for
from tests.portal.factories import UserFactory

from .factories import am_alert, deliver, fire
from .pages import json_script, text_of

pytestmark = pytest.mark.django_db


def _actions(body: str) -> str:
    """The header's action group (Assign to me, Acknowledge, Resolve...)."""
    start = body.index('aria-label="Incident actions"')
    return body[start : body.index("</div>", start)]


# --- Assign to me -------------------------------------------------------------------------------------------


def test_assign_to_me_assigns_in_one_click_and_then_hides(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    page = client.get(f"/aiops/incidents/{checkout.pk}/").content.decode()
    assert ">Assign to me</button>" in _actions(page)

    response = client.post(f"/aiops/incidents/{checkout.pk}/assign-to-me/", follow=True)
    assert response.redirect_chain[-1][0] == f"/aiops/incidents/{checkout.pk}/"
    body = response.content.decode()
    assert "Assigned to you." in text_of(response)
    assert re.search(r'<dd class="col-7" id="assignee">otto</dd>', body)
    assert "Assign to me" not in body
    assert "Assigned to otto." in text_of(response)  # on the timeline
    checkout.refresh_from_db()
    assert checkout.assignee == operator
    entry = AuditEntry.objects.for_object("aiops", "incident", checkout.pk).get(action="update")
    assert entry.actor_name == "otto" and {"assignee": [None, "otto"]} in [entry.changes]


def test_assign_to_me_takes_over_from_someone_else(operator, two_incidents):
    checkout, _ = two_incidents
    sam = UserFactory(username="sam", role=Role.OPERATOR)
    services.assign_incident(incident=checkout, assignee=sam, actor=sam)
    client = client_for(operator)
    assert ">Assign to me</button>" in _actions(client.get(f"/aiops/incidents/{checkout.pk}/").content.decode())
    client.post(f"/aiops/incidents/{checkout.pk}/assign-to-me/")
    checkout.refresh_from_db()
    assert checkout.assignee == operator


def test_viewers_get_no_assign_to_me_and_cannot_post_it(viewer, two_incidents):
    checkout, _ = two_incidents
    client = client_for(viewer)
    assert "Assign to me" not in client.get(f"/aiops/incidents/{checkout.pk}/").content.decode()
    assert client.post(f"/aiops/incidents/{checkout.pk}/assign-to-me/").status_code == 403
    checkout.refresh_from_db()
    assert checkout.assignee is None


# --- Link buttons -------------------------------------------------------------------------------------------


def _buttons(body: str) -> list[tuple[str, str]]:
    """(href, text) of each link button, in order."""
    match = re.search(r'<nav [^>]*id="incident-links">(.*?)</nav>', body, re.S)
    if not match:
        return []
    return [
        (href, re.sub(r"<[^>]+>|↗", "", text).strip())
        for href, text in re.findall(r'<a class="btn[^"]*" href="([^"]+)"[^>]*>(.*?)</a>', match.group(1), re.S)
    ]


def test_runbook_dashboard_and_source_become_buttons_once_each(viewer, alertmanager):
    integration, token = alertmanager
    annotations = {
        "runbook_url": "https://runbooks.example/checkout-errors",
        "dashboard_url": "https://grafana.example/d/checkout",
    }
    first = am_alert(instance="web-1")
    second = am_alert(instance="web-2")  # the same runbook, dashboard and source: no second button
    for alert in (first, second):
        alert["annotations"].update(annotations)
    fire(integration, token, first, second)
    checkout = Incident.objects.get(service="checkout")
    body = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/").content.decode()
    assert _buttons(body) == [
        ("https://runbooks.example/checkout-errors", "Runbook"),
        ("https://grafana.example/d/checkout", "Dashboard"),
        ("http://prometheus.example:9090/graph?g0.expr=HighErrorRate", "Source"),
    ]


def test_a_second_runbook_gets_its_own_numbered_button(viewer, alertmanager):
    integration, token = alertmanager
    first, second = am_alert(instance="web-1"), am_alert(instance="web-2")
    first["annotations"]["runbook_url"] = "https://runbooks.example/a"
    second["annotations"]["runbook_url"] = "https://runbooks.example/b"
    fire(integration, token, first, second)
    checkout = Incident.objects.get(service="checkout")
    buttons = _buttons(client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/").content.decode())
    assert [text for _, text in buttons if text.startswith("Runbook")] == ["Runbook", "Runbook 2"]
    assert {href for href, _ in buttons} >= {"https://runbooks.example/a", "https://runbooks.example/b"}


def test_grafana_dashboard_link_is_a_dashboard_button(viewer, make_integration):
    integration, token = make_integration("grafana")
    alert = am_alert(service="search")
    alert["dashboardURL"] = "https://grafana.example/d/search"
    payload = {"version": "1", "status": "firing", "alerts": [alert], "orgId": 1}
    assert deliver(integration, token, payload).status_code == 202
    services.process_pending_alerts()
    search = Incident.objects.get(service="search")
    buttons = _buttons(client_for(viewer).get(f"/aiops/incidents/{search.pk}/").content.decode())
    assert ("https://grafana.example/d/search", "Dashboard") in buttons


def test_a_senders_links_named_runbook_or_source_become_buttons(viewer, make_integration):
    integration, token = make_integration("generic")
    payload = {
        "title": "Queue backlog",
        "service": "billing",
        "links": [
            {"href": "javascript:alert(1)", "text": "Runbook"},
            {"href": "https://wiki.example/queue-backlog", "text": "runbook"},
            {"href": "https://ci.example/job/7", "text": "Source"},
            {"href": "https://status.example/", "text": "Status page"},
        ],
    }
    assert deliver(integration, token, payload).status_code == 202
    services.process_pending_alerts()
    billing = Incident.objects.get(service="billing")
    body = client_for(viewer).get(f"/aiops/incidents/{billing.pk}/").content.decode()
    assert _buttons(body) == [("https://wiki.example/queue-backlog", "Runbook"), ("https://ci.example/job/7", "Source")]
    # The other link stays in the list beside the incident's details.
    assert '<a href="https://status.example/" rel="noopener">Status page</a>' in body


@pytest.mark.parametrize(
    "url", ["javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>"]
)
def test_script_and_data_urls_never_become_buttons(viewer, alertmanager, url):
    integration, token = alertmanager
    alert = am_alert()
    alert["annotations"].update({"runbook_url": url, "dashboard_url": url})
    alert["generatorURL"] = url
    fire(integration, token, alert)
    checkout = Incident.objects.get(service="checkout")
    body = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/").content.decode()
    assert _buttons(body) == []
    assert 'id="incident-links"' not in body
    assert not re.search(r'href="\s*(javascript|data):', body, re.I)


# --- Markdown comments --------------------------------------------------------------------------------------


def test_comments_are_markdown_and_sanitised(operator, two_incidents):
    checkout, _ = two_incidents
    client = client_for(operator)
    body_text = (
        "Rolled back **release 42**.\n"
        "<script>alert('x')</script>\n\n"
        "- [graph](https://grafana.example/d/x)\n"
        "- [bad](javascript:alert(1))\n\n"
        "`kubectl rollout undo`"
    )
    client.post(f"/aiops/incidents/{checkout.pk}/comment/", {"body": body_text})
    response = client.get(f"/aiops/incidents/{checkout.pk}/")
    body = response.content.decode()
    comment = re.search(r'class="timeline-item kind-comment">.*?<div class="timeline-message">(.*?)</div>', body, re.S)
    html = comment.group(1)
    assert "<strong>release 42</strong>" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    assert '<a href="https://grafana.example/d/x">graph</a>' in html
    assert "javascript:" not in html.replace("[bad](javascript:alert(1))", "")
    assert not re.search(r'href="\s*javascript:', html, re.I)
    assert "<code>kubectl rollout undo</code>" in html
    # The whole page has no script from the comment.
    assert "alert('x')</script>" not in body
    # Other timeline entries stay plain text (a sender's title is never Markdown).
    firing = re.search(
        r'class="timeline-item kind-alert_firing">.*?<div class="timeline-message">(.*?)</div>', body, re.S
    )
    assert "<p>" not in firing.group(1)


def test_the_timeline_refresh_renders_comments_too(operator, two_incidents):
    checkout, _ = two_incidents
    services.comment_on_incident(incident=checkout, body="*on it*", actor=operator)
    partial = client_for(operator).get(f"/aiops/incidents/{checkout.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<em>on it</em>" in partial


# --- The alert-activity chart -------------------------------------------------------------------------------


def _spans(chart: dict) -> dict[str, tuple[str, datetime.datetime, datetime.datetime]]:
    """{row name: (trace, start, end)} from the figure's horizontal bars (base + duration in ms)."""
    spans = {}
    for trace in chart["data"]:
        assert trace["type"] == "bar" and trace["orientation"] == "h"
        for name, base, duration in zip(trace["y"], trace["base"], trace["x"], strict=True):
            start = datetime.datetime.fromisoformat(base)
            spans[name] = (trace["name"], start, start + datetime.timedelta(milliseconds=duration))
    return spans


def test_activity_chart_has_one_span_per_alert_from_start_to_resolve_or_now(viewer, make_integration):
    integration, token = make_integration("generic")
    now = timezone.now()
    t0 = now - datetime.timedelta(hours=2)
    t1 = now - datetime.timedelta(minutes=90)
    t2 = now - datetime.timedelta(minutes=30)
    disk = {"title": "Disk full", "service": "db"}
    alerts = [
        {**disk, "fingerprint": "a", "labels": {"host": "db-1"}, "occurred_at": t0.isoformat()},
        {**disk, "fingerprint": "b", "labels": {"host": "db-2"}, "occurred_at": t1.isoformat()},
    ]
    assert deliver(integration, token, {"alerts": alerts}).status_code == 202
    services.process_pending_alerts()
    resolved = {**alerts[0], "status": "resolved", "resolved_at": t2.isoformat()}
    assert deliver(integration, token, {"alerts": [resolved]}).status_code == 202
    services.process_pending_alerts()
    incident = Incident.objects.get(service="db")
    first, second = Alert.objects.get(fingerprint="a"), Alert.objects.get(fingerprint="b")

    before = timezone.now()
    chart = json_script(client_for(viewer).get(f"/aiops/incidents/{incident.pk}/"), "incident-activity")
    spans = _spans(chart)
    assert len(spans) == 2
    # Rows tell the alerts apart by the label that differs, earliest first.
    assert chart["layout"]["yaxis"]["categoryarray"] == [f"#{first.pk} host=db-1", f"#{second.pk} host=db-2"]
    status, start, end = spans[f"#{first.pk} host=db-1"]
    assert status == "resolved"
    assert abs(start - t0) < datetime.timedelta(seconds=1) and abs(end - t2) < datetime.timedelta(seconds=1)
    status, start, end = spans[f"#{second.pk} host=db-2"]
    assert status == "firing"
    assert abs(start - t1) < datetime.timedelta(seconds=1)
    assert before - datetime.timedelta(seconds=5) <= end <= timezone.now()  # still firing: up to now
    # The axis shows every span whole.
    low, high = (datetime.datetime.fromisoformat(x) for x in chart["layout"]["xaxis"]["range"])
    assert low < t0 and high > before


def test_alerts_that_fired_together_are_separate_bars_not_one_line(viewer, alertmanager):
    integration, token = alertmanager
    fire(integration, token, *(am_alert(instance=f"web-{n}") for n in range(3)))
    incident = Incident.objects.get(service="checkout")
    spans = _spans(json_script(client_for(viewer).get(f"/aiops/incidents/{incident.pk}/"), "incident-activity"))
    assert sorted(spans) == sorted(f"#{a.pk} instance={a.labels['instance']}" for a in incident.alerts.all())
    for _status, start, end in spans.values():
        assert end - start >= datetime.timedelta(minutes=4)  # am_alert started firing 5 minutes ago


def test_activity_chart_draws_the_latest_alerts_of_a_very_large_incident(alertmanager, monkeypatch):
    integration, token = alertmanager
    monkeypatch.setattr(charts, "ACTIVITY_LIMIT", 3)
    fire(integration, token, *(am_alert(instance=f"web-{n}") for n in range(5)))
    incident = Incident.objects.get(service="checkout")
    figure = charts.incident_activity(incident)
    assert sum(len(trace.y) for trace in figure.data) == 3
    assert figure.layout.title.text == "The latest 3 of 5 alerts"
