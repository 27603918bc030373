"""Live anomaly detection in Chromium: create a monitor from the form (a bad selector named first), see the
explorer shade the anomaly beside the expected band, and mark it not interesting on the monitor's page."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import Alert, Anomaly, AnomalyMonitor, AnomalySeries
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

STEP = 60
LABELS = {"job": "api", "instance": "web1"}


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """Whatever the pages enqueue goes to a broker folder no developer's worker reads."""


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def write(values, end: float) -> None:
    key = store.series_key("http_latency_ms", LABELS)
    samples = [(key, end - STEP * (len(values) - 1 - i), float(v)) for i, v in enumerate(values)]
    store.write_samples(samples, kinds={key: "gauge"})


def latency(count: int, first: int = 0) -> np.ndarray:
    index = np.arange(first, first + count)
    return 50 + 5 * np.sin(2 * np.pi * index / 30) + np.random.default_rng(first + 3).uniform(-0.5, 0.5, count)


def at(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)


def test_create_a_monitor_see_the_anomaly_shaded_and_mark_it_not_interesting(page):
    UserFactory(username="otto", role=Role.OPERATOR)
    now = timezone.now().timestamp() // STEP * STEP
    write(latency(400), end=now - 3 * STEP)

    log_in(page, "otto")
    page.goto("/aiops/metrics/anomalies/")
    page.get_by_role("link", name="New monitor").click()
    page.get_by_label("Name").fill("Checkout latency")
    page.get_by_label("Selector").fill("http_latency_ms{job=")
    page.get_by_label("High (miss fewer)").check()
    page.get_by_role("button", name="Save monitor").click()
    expect(page.locator("#anomaly-form")).to_contain_text("unexpected end of the query")
    assert not AnomalyMonitor.objects.exists()
    page.get_by_label("Selector").fill('http_latency_ms{job="api"}')
    page.get_by_role("button", name="Save monitor").click()
    expect(page.get_by_role("heading", name="Checkout latency")).to_be_visible()
    monitor = AnomalyMonitor.objects.get()
    assert monitor.sensitivity == "high"

    # The minute task's runs: the history is learned, then a spike arrives.
    services.score_monitor(monitor_id=monitor.pk, now=at(now - 3 * STEP))
    spike = latency(3, 400)
    spike[1] += 40
    write(spike, end=now)
    services.score_monitor(monitor_id=monitor.pk, now=at(now))
    found = Anomaly.objects.get()
    page.reload()
    row = page.locator(f"#anomaly-{found.pk}")
    expect(row).to_contain_text("open")
    expect(page.locator("#anomaly-series")).to_contain_text('http_latency_ms{instance="web1",job="api"}')

    # The explorer on that series at that time: the band, the shaded anomaly, its marker.
    row.get_by_role("link").first.click()
    chart = page.locator("#explorer-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart).to_have_attribute("data-traces", "4")  # the band's two edges, the series, the anomaly marker
    expect(chart.locator(".legend")).to_contain_text("expected band (Checkout latency)")
    expect(chart.locator(".shapelayer path")).not_to_have_count(0)
    expect(page.locator(".anomaly-monitor")).to_contain_text("1 anomaly in this window")
    script = "el => el.data.find(t => t.name === 'expected band (Checkout latency)').y.filter(v => v !== null).length"
    band = chart.evaluate(script)
    assert band > 100

    # Not interesting: kept, the alert resolved, the series' threshold up a notch, precision 0%.
    page.go_back()
    page.get_by_role("button", name="Not interesting").click()
    expect(page.locator(".alert-success")).to_contain_text("Marked not interesting")
    expect(page.locator(f"#anomaly-{found.pk}")).to_contain_text("not interesting")
    expect(page.locator("#anomaly-precision")).to_contain_text("0%: 0 of 1 anomaly not marked not interesting")
    expect(page.locator(f"#anomaly-series-{found.series_id}")).to_contain_text("(+1 from feedback)")
    assert Alert.objects.get().status == "resolved" and AnomalySeries.objects.get().threshold_steps == 1
    # The refused form answered 400, as it should; nothing else complained.
    assert all("400" in error for error in page.console_errors) and page.outside_requests == []
