"""Metric collection pages in Chromium: a scrape target made with Test against a local exposition server and
scraped; a source made with Test against Debian's real Prometheus, a watched query on it pulled now, and
the series it stores opened in the explorer."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from aiops.metrics import partitions, store
from aiops.models import PromSource, ScrapeTarget, Series, WatchedQuery
from opsportal.accounts.roles import Role
from tests.aiops.metrics_helpers import ExpositionServer, PrometheusServer
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

EXPOSITION = """# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 1027
http_requests_total{code="500",path="/"} 3
# TYPE temperature_celsius gauge
temperature_celsius{room="a"} 21.5
"""
SECRET = "e2e-scrape-token"


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """Whatever the pages enqueue goes to a broker folder no developer's worker reads."""


@pytest.fixture(autouse=True)
def _local_servers(allow_loopback):
    """The exposition server and Prometheus listen on 127.0.0.1."""


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test's rows are flushed; the writer's per-process caches must forget them too."""
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture
def exporter():
    server = ExpositionServer(EXPOSITION)
    yield server
    server.close()


@pytest.fixture
def prometheus(tmp_path):
    server = PrometheusServer(tmp_path, [])
    yield server
    server.close()


def test_a_scrape_target_is_made_with_test_and_scraped(page, exporter):
    UserFactory(username="otto", role=Role.OPERATOR)
    exporter.token = SECRET
    log_in(page, "otto")
    page.goto("/aiops/metrics/")
    page.get_by_role("list", name="Metrics sections").get_by_role("link", name="Scrape targets").click()
    page.get_by_role("link", name="New target").click()
    expect(page.get_by_role("heading", name="New scrape target")).to_be_visible()

    page.get_by_role("textbox", name="Name", exact=True).fill("app")
    page.get_by_role("textbox", name="URL").fill(exporter.url)
    page.get_by_label("Labels").fill("env=e2e")
    # The auth fields follow the chosen auth.
    expect(page.get_by_label("Token or password")).to_be_hidden()
    page.get_by_role("combobox", name="Auth").select_option("basic")
    expect(page.get_by_label("User name")).to_be_visible()
    page.get_by_role("combobox", name="Auth").select_option("bearer")
    expect(page.get_by_label("User name")).to_be_hidden()
    page.get_by_label("Token or password").fill("wrong")
    page.evaluate("window.__samePage = true")
    page.get_by_role("button", name="Test", exact=True).click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_contain_text("Down")
    expect(outcome).to_contain_text("401")

    page.get_by_label("Token or password").fill(SECRET)
    page.get_by_role("button", name="Test", exact=True).click()
    expect(outcome).to_contain_text("Up")
    expect(outcome).to_contain_text("3 samples")
    expect(outcome).to_contain_text(re.compile(r"\d+ ms"))
    expect(outcome.locator("table")).to_contain_text("temperature_celsius")
    expect(outcome.locator("table")).to_contain_text("env=e2e")
    expect(outcome).to_contain_text("Nothing was saved.")

    page.get_by_role("textbox", name="URL").fill("ftp://nowhere")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(outcome).to_contain_text("Not run: URL:")
    assert page.evaluate("window.__samePage") is True
    assert ScrapeTarget.objects.count() == 0

    page.get_by_role("textbox", name="URL").fill(exporter.url)
    page.get_by_role("button", name="Save target").click()
    expect(page.get_by_role("heading", name="app")).to_be_visible()
    target = ScrapeTarget.objects.get()
    assert target.labels == {"env": "e2e"} and target.auth == "bearer"

    page.get_by_role("button", name="Scrape now").click()
    expect(page.get_by_text("Scraped app: up, 3 samples")).to_be_visible()
    expect(page.locator("#scrape-report")).to_contain_text("http_requests_total")
    expect(page.locator("#target-series")).to_contain_text("6 series stored with")
    expect(page.locator("#target-scrapes tbody tr")).to_have_count(1)
    expect(page.locator("#target-status")).to_contain_text("Up")

    page.get_by_role("list", name="Metrics sections").get_by_role("link", name="Scrape targets").click()
    row = page.locator(f"#target-{target.pk}")
    expect(row).to_contain_text("Up")
    expect(row).to_contain_text("env=e2e")
    row.get_by_role("link", name="app").click()
    page.get_by_role("link", name="Open in the explorer").click()
    expect(page.locator("#explorer-chart")).to_have_attribute("data-rendered", "true")
    expect(page.locator("#explorer-series tbody tr")).to_have_count(6)
    expect(page.locator("#explorer-series")).to_contain_text("temperature_celsius")

    page.go_back()
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="app")).to_be_visible()
    assert ScrapeTarget.objects.count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Scrape target app deleted")).to_be_visible()
    assert ScrapeTarget.objects.count() == 0
    # The refused Test answered 400 (Chromium logs it); nothing else went wrong.
    assert [error for error in page.console_errors if "status of 400" not in error] == []
    assert len(page.console_errors) == 1
    assert page.outside_requests == []


def test_a_source_is_made_with_test_against_prometheus_and_a_watched_query_pulled_now(page, prometheus):
    UserFactory(username="otto", role=Role.OPERATOR)
    log_in(page, "otto")
    page.goto("/aiops/metrics/targets/")
    page.get_by_role("list", name="Metrics sections").get_by_role("link", name="Sources & queries").click()
    page.get_by_role("link", name="New source").click()

    page.get_by_role("textbox", name="Name", exact=True).fill("prom")
    page.get_by_role("textbox", name="URL").fill("http://127.0.0.1:9")
    page.get_by_role("button", name="Test", exact=True).click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_contain_text("Failed")
    expect(outcome).to_contain_text("All connection attempts failed")
    page.get_by_role("textbox", name="URL").fill(prometheus.url)
    page.get_by_role("button", name="Test", exact=True).click()
    expect(outcome).to_contain_text("Answers the Prometheus API")
    expect(outcome).to_contain_text("Nothing was saved.")
    assert PromSource.objects.count() == 0
    page.get_by_role("button", name="Save source").click()
    expect(page.get_by_role("heading", name="prom")).to_be_visible()
    expect(page.locator("#source-last-test")).to_contain_text("never tested")
    page.get_by_role("group", name="Source actions").get_by_role("button", name="Test").click()
    expect(page.get_by_text(re.compile(r"prom answers: the API query took \d+ ms"))).to_be_visible()
    expect(page.locator("#source-last-test")).to_contain_text("Ok")

    page.get_by_role("link", name="New watched query").click()
    page.get_by_role("textbox", name="Name", exact=True).fill("answer:value")
    page.get_by_label("PromQL").fill("vector(42)")
    page.get_by_label("Service").fill("checkout")
    page.get_by_label("Step (seconds)").fill("60")
    page.get_by_role("button", name="Save watched query").click()
    expect(page.get_by_role("heading", name="answer:value")).to_be_visible()
    expect(page.locator("#query-status")).to_contain_text("Not pulled yet")

    page.get_by_role("button", name="Pull now").click()
    expect(page.get_by_text(re.compile(r"Pulled answer:value: 61 samples in \d+ ms"))).to_be_visible()
    expect(page.locator("#query-status")).to_contain_text("Ok")
    expect(page.locator("#query-series")).to_contain_text('1 series stored with answer:value{service="checkout"}')
    assert Series.objects.filter(name="answer:value", labels={"service": "checkout"}).count() == 1

    page.get_by_role("link", name="prom", exact=True).first.click()
    watched = WatchedQuery.objects.get()
    row = page.locator(f"#query-{watched.pk}")
    expect(row).to_contain_text("Ok")
    expect(row).to_contain_text("vector(42)")
    expect(row).to_contain_text("service=checkout")
    row.get_by_role("link", name="Explorer").click()
    expect(page.locator("#explorer-chart")).to_have_attribute("data-rendered", "true")
    expect(page.locator("#explorer-series")).to_contain_text('answer:value{service="checkout"}')

    page.goto("/aiops/metrics/sources/")
    source = PromSource.objects.get()
    source_row = page.locator(f"#source-{source.pk}")
    expect(source_row).to_contain_text(prometheus.url)
    expect(source_row.locator(".query-count")).to_have_text("1")
    expect(source_row).to_contain_text(re.compile(r"ok in \d+ ms"))
    assert page.console_errors == []
    assert page.outside_requests == []
