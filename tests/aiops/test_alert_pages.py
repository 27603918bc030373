"""Alert pages: the list with its filters, and one alert with its deliveries and raw payload."""

from __future__ import annotations

import html
import json
import re

import pytest

from aiops.models import Alert
from tests.helpers import client_for

from .factories import am_alert, fire
from .pages import text_of

pytestmark = pytest.mark.django_db


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
    assert "Filter status: “sleeping” — not a value it knows; the allowed values are firing, resolved (or all)" in bad
    assert "SlowQueries" in bad and "HighErrorRate" in bad


@pytest.mark.parametrize("query", ["status=all", "severity=all", "status=ALL&severity=critical&severity=all"])
def test_all_means_no_filter_on_the_alert_list(viewer, two_incidents, query):
    page = text_of(client_for(viewer).get(f"/aiops/alerts/?{query}"))
    assert "SlowQueries" in page and "HighErrorRate" in page
    assert "filter-problem" not in client_for(viewer).get(f"/aiops/alerts/?{query}").content.decode()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("severity=urgent", "Filter severity: “urgent” — not a value it knows; the allowed values are critical"),
        ("integration=abc", "Filter integration: “abc” — Enter a number"),
        ("until=soon", "Filter until: “soon” — Enter "),
        ("suppressed=perhaps", "Filter suppressed: “perhaps” — not a value it knows"),
    ],
)
def test_an_unknown_alert_filter_value_is_named_and_ignored(viewer, two_incidents, query, named):
    page = text_of(client_for(viewer).get(f"/aiops/alerts/?{query}"))
    assert named in page
    assert "SlowQueries" in page and "HighErrorRate" in page
