"""The analytics page: MTTA and MTTR per service and severity, over the chosen period."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from aiops import services
from aiops.models import Incident
from tests.helpers import client_for

from .factories import am_alert, fire
from .pages import json_script, text_of

pytestmark = pytest.mark.django_db


def test_analytics_shows_mtta_and_mttr(viewer, operator, alertmanager, monkeypatch):
    integration, token = alertmanager
    fire(integration, token, am_alert(service="checkout", instance="1"))
    fire(integration, token, am_alert(alertname="Disk", service="storage", severity="warning"))
    checkout, storage = Incident.objects.get(service="checkout"), Incident.objects.get(service="storage")
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


def test_the_unfinished_day_is_drawn_apart_from_the_trend_lines(viewer, alertmanager):
    integration, token = alertmanager
    now = timezone.now()
    fire(integration, token, am_alert(service="old"))
    fire(integration, token, am_alert(service="new"))
    day_before = now - datetime.timedelta(days=2)
    Incident.objects.filter(service="old").update(
        created_at=day_before,
        acknowledged_at=day_before + datetime.timedelta(minutes=30),
        resolved_at=day_before + datetime.timedelta(minutes=90),
    )
    Incident.objects.filter(service="new").update(created_at=now, acknowledged_at=now + datetime.timedelta(minutes=1))
    response = client_for(viewer).get("/aiops/analytics/?days=30")
    traces = {t["name"]: t for t in json_script(response, "trend-chart")["data"]}
    today = now.date().isoformat()
    # The lines stop at the last finished day; today's one-minute MTTA is not a drop on the line.
    assert traces["MTTA median"]["x"] == [day_before.date().isoformat()]
    assert traces["MTTA median"]["y"] == [30.0]
    partial = traces["MTTA median today so far (partial)"]
    assert partial["x"] == [today] and partial["y"] == [1.0] and partial["mode"] == "markers"
    assert "MTTR median today so far (partial)" not in traces  # nothing resolved today yet
    assert "Today is not over" in text_of(response)


def test_an_unknown_period_is_named(viewer):
    page = text_of(client_for(viewer).get("/aiops/analytics/?days=365"))
    assert "Filter days: “365” — not a value it knows; the allowed values are 7, 30, 90." in page
    assert "opened in the last 30 days." in page
