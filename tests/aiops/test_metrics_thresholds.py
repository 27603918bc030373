"""Threshold rules on stored series open incidents through raise_alert, and resolve them."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import Alert, Incident, Series, ThresholdRule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def temperature(room: str, values: list[float], *, end: datetime.datetime, every: int = 15) -> None:
    """`values` every `every` seconds, the last one at `end`."""
    key = store.series_key("temperature_celsius", {"job": "dc", "room": room, "service": "cooling"})
    stamp = end.timestamp()
    samples = [(key, stamp - every * (len(values) - 1 - i), value) for i, value in enumerate(values)]
    store.write_samples(samples)


@pytest.fixture
def rule(operator) -> ThresholdRule:
    return services.save_threshold_rule(
        actor=operator,
        name="Server room too hot",
        selector='temperature_celsius{job="dc"}',
        comparison="above",
        value=30,
        for_seconds=60,
        severity="critical",
    )


def test_a_breach_that_lasts_fires_an_incident_with_the_series(rule):
    now = timezone.now()
    temperature("a", [25, 26, 31, 32, 33, 34, 35], end=now)  # above 30 for the last 60 s
    temperature("b", [20, 21, 22, 21, 20, 21, 22], end=now)
    counts = services.evaluate_threshold_rules(now=now)
    assert (counts["fired"], counts["firing"]) == (1, 1)
    rule.refresh_from_db()
    assert rule.state == "firing" and rule.last_evaluated_at == now
    alert = Alert.objects.get(source="metrics")
    series = Series.objects.get(labels__room="a")
    assert alert.fingerprint == f"threshold:{rule.pk}:{series.pk}"
    assert alert.severity == "critical" and alert.service == "cooling"
    assert alert.title == "Server room too hot: temperature_celsius above 30 (35)"
    assert alert.labels["room"] == "a" and alert.labels["alertname"] == "Server room too hot"
    assert alert.annotations["series"] == 'temperature_celsius{job="dc",room="a",service="cooling"}'
    assert alert.annotations["series_id"] == str(series.pk) and alert.annotations["value"] == "35"
    assert alert.links[0]["text"] == "Series" and alert.links[0]["href"].startswith("http")
    services.process_pending_alerts()
    incident = Incident.objects.get()
    assert incident.status == "triggered" and incident.severity == "critical"
    # Evaluated again while still breaching: no new alert, no new incident.
    services.evaluate_threshold_rules(now=now)
    assert Alert.objects.filter(source="metrics").count() == 1


def test_a_short_breach_is_only_pending(rule):
    now = timezone.now()
    temperature("a", [25, 25, 25, 25, 31, 32], end=now)  # above for 15 s of the 60 needed
    counts = services.evaluate_threshold_rules(now=now)
    assert (counts["pending"], counts["fired"]) == (1, 0)
    rule.refresh_from_db()
    assert rule.state == "pending" and not Alert.objects.exists()
    later = now + datetime.timedelta(seconds=60)
    temperature("a", [33, 34, 35, 36], end=later)
    assert services.evaluate_threshold_rules(now=later)["fired"] == 1


def test_back_below_the_value_resolves_the_alert_and_the_incident(rule):
    now = timezone.now()
    temperature("a", [31, 32, 33, 34, 35, 36], end=now)
    services.evaluate_threshold_rules(now=now)
    services.process_pending_alerts()
    later = now + datetime.timedelta(seconds=30)
    temperature("a", [29, 28], end=later)
    counts = services.evaluate_threshold_rules(now=later)
    assert counts["resolved"] == 1
    services.process_pending_alerts()
    assert Alert.objects.get(source="metrics").status == "resolved"
    assert Incident.objects.get().status == "resolved"
    rule.refresh_from_db()
    assert rule.state == "ok"


def test_a_series_that_stops_reporting_resolves(rule):
    now = timezone.now()
    temperature("a", [31, 32, 33, 34, 35, 36], end=now)
    services.evaluate_threshold_rules(now=now)
    stale = now + datetime.timedelta(minutes=6)
    assert services.evaluate_threshold_rules(now=stale)["resolved"] == 1
    assert Alert.objects.get(source="metrics").status == "resolved"


def test_below_rules_and_deleting_a_rule_resolves_what_it_fired(operator):
    now = timezone.now()
    key = store.series_key("up", {"job": "node", "instance": "n1:9100"})
    store.write_samples([(key, now.timestamp() - 15 * i, 0.0) for i in range(5)])
    down = services.save_threshold_rule(
        actor=operator, name="Node down", selector='up{job="node"}', comparison="below", value=1, for_seconds=30
    )
    assert services.evaluate_threshold_rules(now=now)["fired"] == 1
    services.delete_threshold_rule(rule=down, actor=operator)
    assert Alert.objects.get(source="metrics").status == "resolved"
