"""Capacity forecasts in Chromium: create one from the form (a bad value named on its field first), recompute it,
and read "full in N days" beside the chart of history, forecast, band, limit and full date."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aiops.metrics import partitions, store
from aiops.models import CapacityForecast
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

GB = 1e9
DAY = 86400
LABELS = {"job": "node", "instance": "db1:9100", "device": "/dev/sda1", "mountpoint": "/data"}


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The fit a saved forecast enqueues goes to a broker folder no developer's worker reads."""


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def filling_disk() -> None:
    """A week every 5 minutes: 300 GB used of 500 GB at the end, 6 GB more a day, a 10 GB daily swing."""
    rng = np.random.default_rng(4)
    end = timezone.now().timestamp()
    stamps = end - 300 * np.arange(7 * 288)[::-1]
    used = (300 + 6 * (stamps - end) / DAY + 10 * np.sin(2 * np.pi * stamps / DAY)) * GB + rng.normal(
        0, GB, len(stamps)
    )
    used_key = store.series_key("node_filesystem_used_bytes", LABELS)
    size_key = store.series_key("node_filesystem_size_bytes", LABELS)
    samples = [(used_key, float(at), float(value)) for at, value in zip(stamps, used, strict=True)]
    samples += [(size_key, float(at), 500 * GB) for at in stamps[::12]]
    store.write_samples(samples, kinds={used_key: "gauge", size_key: "gauge"})


def test_create_a_forecast_and_read_full_in_n_days_beside_its_chart(page):
    UserFactory(username="otto", role=Role.OPERATOR)
    filling_disk()
    log_in(page, "otto")
    page.goto("/aiops/metrics/forecasts/")
    expect(page.get_by_role("heading", name="Capacity forecasts")).to_be_visible()
    page.get_by_role("link", name="New forecast").click()

    page.get_by_label("Name").fill("Data disks")
    page.get_by_label("Usage").fill('node_filesystem_used_bytes{mountpoint="/data"}')
    # The form shows the fields of the chosen kind of limit.
    expect(page.get_by_label("Limit value")).to_be_visible()
    expect(page.get_by_label("Limit series")).to_be_hidden()
    page.get_by_label("A series matched by labels").check()
    expect(page.get_by_label("Limit value")).to_be_hidden()
    page.get_by_role("button", name="Save forecast").click()
    # No limit series given: the form says so on that field and nothing is saved.
    expect(page.locator("#id_limit_selector ~ .invalid-feedback")).to_contain_text("required for a limit series")
    assert not CapacityForecast.objects.exists()

    page.get_by_label("Limit series").fill("node_filesystem_size_bytes")
    page.get_by_label("Match on labels").fill("instance, mountpoint")
    page.get_by_label("Horizon (days)").fill("45")
    page.get_by_role("button", name="Save forecast").click()
    expect(page.get_by_role("heading", name=re.compile("Data disks"))).to_be_visible()
    expect(page.get_by_text("Not computed yet.")).to_be_visible()

    page.get_by_role("button", name="Recompute now").click()
    summary = page.locator("#forecast-summary")
    expect(summary).to_have_text(re.compile(r"^Full in \d+(\.\d)? days \(\d+(\.\d)?\u2013\d+(\.\d)?\)$"))
    days = float(re.match(r"Full in ([\d.]+) days", summary.inner_text()).group(1))
    assert 27 < days < 37, days
    chart = page.locator("#forecast-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    # Plotly drew the band, the two lines, the limit and the full date.
    expect(chart.locator(".scatterlayer .trace")).to_have_count(4)
    expect(chart.locator(".annotation-text", has_text="limit 500 G")).to_have_count(1)
    expect(chart.locator(".annotation-text", has_text="full 20")).to_have_count(1)
    expect(page.locator("#forecast-mase")).to_have_text(re.compile(r"^0\.\d\d$"))
    # Full within 45 days at the interval's earliest: the warning state shows, on the list too.
    expect(page.locator("h1 .badge")).to_have_text("full within horizon")
    page.get_by_role("link", name="Capacity forecasts").first.click()
    row = page.locator("#forecasts tbody tr").first
    expect(row).to_contain_text("Data disks")
    expect(row.locator(".forecast-full")).to_contain_text(re.compile(r"full in \d+(\.\d)? days \("))
    # The refused form was answered 400 (the browser logs that); nothing else went wrong or left the portal.
    assert [e for e in page.console_errors if "status of 400" not in e] == [] and page.outside_requests == []
