"""The metric explorer in Chromium: pick a series by label, range buttons and zoom reload the data, overlay a
second series, and go from an incident to the series its alert was about."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import Incident
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


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


def write(name: str, labels: dict[str, str], values: list[float], *, every: int = 60) -> None:
    """`values` every `every` seconds up to now."""
    end = timezone.now().timestamp()
    key = store.series_key(name, labels)
    store.write_samples([(key, end - every * (len(values) - 1 - i), value) for i, value in enumerate(values)])


def window_seconds(page) -> int:
    chart = page.locator("#explorer-chart")
    return int(chart.get_attribute("data-end")) - int(chart.get_attribute("data-start"))


def test_pick_by_label_change_the_window_and_overlay_a_second_series(page):
    UserFactory(username="vera", role=Role.VIEWER)
    day = 24 * 60
    write("node_load1", {"env": "prod", "instance": "web1"}, [1 + (i % 10) / 10 for i in range(day)])
    write("node_load1", {"env": "prod", "instance": "web2"}, [2.0] * day)
    write("node_load1", {"env": "staging", "instance": "web3"}, [3.0] * day)
    write("node_memory_free_bytes", {"instance": "web1"}, [1e9] * 10)

    log_in(page, "vera")
    page.goto("/aiops/")
    page.get_by_role("list", name="AIOps sections").get_by_role("link", name="Metrics").click()
    expect(page.get_by_role("heading", name="Metric explorer")).to_be_visible()
    page.wait_for_load_state()  # htmx wires the picker once the page has loaded

    page.get_by_label("Metric", exact=True).select_option("node_load1")
    expect(page.locator("#picker-series")).to_contain_text("Matching series (3)")
    page.get_by_label("Filter by label").select_option("env")
    page.get_by_label("Value of env").select_option("prod")
    expect(page.locator("#picker-series")).to_contain_text("Matching series (2)")
    expect(page.get_by_label("Selector", exact=True)).to_have_value('node_load1{env="prod"}')
    page.get_by_label("Filter by label").select_option("instance")
    # Narrowed by what is chosen: staging's web3 is not offered.
    expect(page.get_by_label("Value of instance").locator("option")).to_have_text(["(any)", "web1", "web2"])
    page.get_by_label("Value of instance").select_option("web1")
    expect(page.locator("#picker-series")).to_contain_text("Matching series (1)")
    page.get_by_label('node_load1{env="prod",instance="web1"}').check()
    page.get_by_role("button", name="Show").click()

    chart = page.locator("#explorer-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart).to_have_attribute("data-traces", "1")
    expect(page).to_have_url(re.compile(r"series=\d+"))
    assert window_seconds(page) == 3600
    expect(page.locator("#explorer-series")).to_contain_text('node_load1{env="prod",instance="web1"}')

    # A range button: the 6 h before the chart's end, read again at that window's resolution.
    chart.locator(".rangeselector .button", has_text="6h").click()
    expect(chart).to_have_attribute("data-loads", "1")
    assert abs(window_seconds(page) - 6 * 3600) <= 1
    expect(page).to_have_url(re.compile(r"start=\d+.*end=\d+|end=\d+.*start=\d+"))

    # Dragging across the middle of the plot zooms in and reads that window again.
    box = chart.locator(".nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
    page.mouse.up()
    expect(chart).to_have_attribute("data-loads", "2")
    assert 3600 <= window_seconds(page) <= 2 * 3600

    # Overlay a second series: web1 stays ticked while the picker shows web2.
    page.get_by_label("Value of instance").select_option("web2")
    expect(page.locator("#picker-kept")).to_contain_text('instance="web1"')
    page.get_by_label('node_load1{env="prod",instance="web2"}').check()
    page.get_by_role("button", name="Show").click()
    expect(chart).to_have_attribute("data-traces", "2")
    legend = chart.locator(".legend .traces")
    expect(legend).to_have_count(2)
    expect(chart.locator(".legend")).to_contain_text('node_load1{instance="web1"}')
    expect(chart.locator(".legend")).to_contain_text('node_load1{instance="web2"}')
    assert page.console_errors == [] and page.outside_requests == []


def test_from_an_incident_to_the_series_its_threshold_alert_was_about(page, operator):
    UserFactory(username="vera", role=Role.VIEWER)
    write("temperature_celsius", {"job": "dc", "room": "a"}, [25, 26, 31, 32, 33, 34, 35], every=15)
    write("temperature_celsius", {"job": "dc", "room": "b"}, [20] * 7, every=15)
    services.save_threshold_rule(actor=operator, name="Server room too hot", selector='temperature_celsius{job="dc"}',
                                 comparison="above", value=30, for_seconds=60)  # fmt: skip
    assert services.evaluate_threshold_rules()["fired"] == 1
    services.process_pending_alerts()
    incident = Incident.objects.get()

    log_in(page, "vera")
    page.goto(f"/aiops/incidents/{incident.pk}/")
    page.get_by_role("link", name="Metric explorer").click()

    chart = page.locator("#explorer-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart).to_have_attribute("data-traces", "1")
    expect(chart).to_contain_text(f"incident #{incident.pk} opened")
    expect(chart).to_contain_text("Server room too hot (above 30)")
    expect(page.locator("#explorer-incident")).to_contain_text(f"incident #{incident.pk}")
    expect(page.locator("#explorer-series")).to_contain_text('temperature_celsius{job="dc",room="a"}')
    assert page.console_errors == []


def test_a_typed_selector_finds_series_and_a_bad_one_is_named(page):
    UserFactory(username="vera", role=Role.VIEWER)
    write("node_load1", {"instance": "web1"}, [1.0] * 30)
    write("node_load1", {"instance": "web2"}, [2.0] * 30)
    write("node_load1", {"instance": "db1"}, [3.0] * 30)

    log_in(page, "vera")
    page.goto("/aiops/metrics/")
    page.get_by_label("Selector", exact=True).fill('node_load1{instance=~"web.*"}')
    page.get_by_role("button", name="Find series").click()
    expect(page.locator("#picker-series")).to_contain_text("Matching series (2)")
    expect(page.locator("#picker-metric")).to_have_value("node_load1")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#explorer-chart")).to_have_attribute("data-traces", "2")

    page.get_by_label("Selector", exact=True).fill("node_load1{instance=")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#explorer-problems")).to_contain_text("q: unexpected end of the query.")
    expect(page.locator("#explorer-chart")).to_have_count(0)
    assert page.console_errors == [] or all("400" in error for error in page.console_errors)
