"""An operator triages an incident in the browser: filter, one-click acknowledge, comment, resolve."""

from __future__ import annotations

import datetime
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from aiops import services
from aiops.models import Incident
from opsportal.accounts.roles import Role
from tests.aiops.conftest import am_alert, am_payload, deliver
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The test correlates alerts itself; what it enqueues goes to a broker folder no developer's worker reads."""


def fire(integration, token, *alerts, key: str) -> None:
    response = deliver(integration, token, am_payload(*alerts, group_key=key))
    assert response.status_code == 202, response.content
    services.process_pending_alerts()


def after_refresh(page, locator) -> None:
    """Let the page's clock run past the 10 s refresh until `locator` shows.

    htmx starts the timer once it has processed the swapped-in table, which may be just after
    the filtered rows became visible; hence another 10 s if the first wasn't enough.
    """
    for _ in range(3):
        page.clock.fast_forward(11_000)
        if locator.is_visible() or wait_visible(locator):
            return
    expect(locator).to_be_visible()


def wait_visible(locator) -> bool:
    try:
        locator.wait_for(state="visible", timeout=2_000)
    except PlaywrightTimeoutError:
        return False
    return True


def test_filter_acknowledge_comment_and_resolve(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    fire(integration, token, am_alert(service="checkout", severity="critical"), key="a")
    fire(integration, token, am_alert(alertname="SlowQueries", service="search", severity="warning"), key="b")
    checkout = Incident.objects.get(service="checkout")

    page.clock.install()
    log_in(page, "otto")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="AIOps", exact=True).click()
    table = page.locator("#incidents")
    expect(table.get_by_role("link", name="HighErrorRate on checkout")).to_be_visible()
    expect(table.get_by_role("link", name="SlowQueries on search")).to_be_visible()
    # Marks this document: if it survives, the page was never reloaded.
    page.evaluate("window.__samePage = true")

    page.get_by_label("Service").fill("checkout")
    page.get_by_label("Service").press("Enter")
    expect(table.get_by_role("link", name="SlowQueries on search")).to_have_count(0)
    expect(table.get_by_role("link", name="HighErrorRate on checkout")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/aiops/\?.*service=checkout"))
    expect(page.get_by_label("Service")).to_have_value("checkout")
    page.wait_for_load_state("networkidle")  # the filter's requests are done before the clock jumps
    # The table refreshes itself every 10 s and keeps the filter: a new checkout incident appears, search doesn't.
    fire(integration, token, am_alert(alertname="Timeouts", service="checkout"), key="c")
    after_refresh(page, table.get_by_role("link", name="Timeouts on checkout"))
    expect(table.get_by_role("link", name="SlowQueries on search")).to_have_count(0)

    row = page.locator(f"#incident-{checkout.pk}")
    expect(row.locator(".badge.status-triggered")).to_have_text("Triggered")
    page.get_by_role("button", name=f"Acknowledge incident {checkout.pk}").click()
    expect(row.locator(".badge.status-acknowledged")).to_have_text("Acknowledged")
    expect(page.get_by_role("button", name=f"Acknowledge incident {checkout.pk}")).to_have_count(0)
    assert page.evaluate("window.__samePage") is True
    expect(page).to_have_url(re.compile(r"service=checkout"))

    row.get_by_role("link", name="HighErrorRate on checkout").click()
    expect(page.get_by_role("heading", name="HighErrorRate on checkout")).to_be_visible()
    expect(page.locator("#incident-status")).to_have_text("Acknowledged")
    page.get_by_label("Comment").fill("Rolling back release 42.")
    page.get_by_role("button", name="Add comment").click()
    timeline = page.get_by_role("list", name="Incident timeline")
    expect(timeline.locator(".kind-comment")).to_contain_text("Rolling back release 42.")
    expect(timeline.locator(".kind-comment")).to_contain_text("otto")

    page.get_by_role("group", name="Incident actions").get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-status")).to_have_text("Resolved")
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    items = timeline.locator("li")
    expect(items).to_have_count(5)
    kinds = [re.search(r"kind-(\w+)", c).group(1) for c in items.evaluate_all("els => els.map(e => e.className)")]
    assert kinds == ["opened", "alert_firing", "status", "comment", "status"]
    expect(items.nth(2)).to_contain_text("Acknowledged.")
    expect(items.nth(4)).to_contain_text("Resolved.")
    chart = page.locator("[data-chart='incident-activity']")
    expect(chart).to_have_attribute("data-rendered", "true")

    checkout.refresh_from_db()
    assert checkout.status == "resolved"
    assert page.console_errors == []
    assert page.outside_requests == []


def test_analytics_charts_render(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    fire(integration, token, am_alert(service="checkout"), key="a")
    fire(integration, token, am_alert(alertname="Disk", service="storage", severity="warning"), key="b")
    for incident in Incident.objects.all():
        services.acknowledge_incident(incident=incident, actor=admin)
        services.resolve_incident(incident=incident, actor=admin)
    Incident.objects.filter(service="checkout").update(
        created_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    )

    log_in(page, "ada")
    page.goto("/aiops/")
    page.get_by_role("list", name="AIOps sections").get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("link", name="Analytics")).to_have_attribute("aria-current", "page")
    charts = page.locator("[data-chart]")
    expect(charts).to_have_count(5)
    for index in range(5):
        expect(charts.nth(index)).to_have_attribute("data-rendered", "true")
        expect(charts.nth(index).locator(".main-svg").first).to_be_visible()
    expect(page.locator("[data-chart='service-chart'] g.trace.bars")).to_have_count(4)
    page.get_by_role("link", name="7 days").click()
    expect(page).to_have_url("/aiops/analytics/?days=7")
    expect(page.get_by_text("2 incidents opened in the last 7 days.")).to_be_visible()
    expect(page.locator("[data-chart='trend-chart']")).to_have_attribute("data-rendered", "true")
    assert page.console_errors == []
    assert page.outside_requests == []


def test_incident_page_buttons_markdown_comment_and_activity_chart(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    alerts = [am_alert(service="checkout", instance=f"web-{n}") for n in range(3)]
    for alert in alerts:
        alert["annotations"]["runbook_url"] = "https://runbooks.example/checkout"
        alert["annotations"]["dashboard_url"] = "javascript:alert(1)"
    fire(integration, token, *alerts, key="a")
    fire(integration, token, am_alert(service="checkout", instance="web-0", status="resolved"), key="b")
    checkout = Incident.objects.get(service="checkout")

    log_in(page, "otto")
    page.goto(f"/aiops/incidents/{checkout.pk}/")
    links = page.get_by_role("navigation", name="Incident links")
    expect(links.get_by_role("link", name="Runbook")).to_have_attribute("href", "https://runbooks.example/checkout")
    expect(links.get_by_role("link", name="Source")).to_have_attribute(
        "href", "http://prometheus.example:9090/graph?g0.expr=HighErrorRate"
    )
    expect(links.get_by_role("link", name="Dashboard")).to_have_count(0)  # a javascript: URL is no button

    actions = page.get_by_role("group", name="Incident actions")
    actions.get_by_role("button", name="Assign to me").click()
    expect(page.locator("#assignee")).to_have_text("otto")
    expect(page.get_by_text("Assigned to you.")).to_be_visible()
    expect(actions.get_by_role("button", name="Assign to me")).to_have_count(0)

    page.get_by_label("Comment").fill("Rolled back **release 42**.\n<script>window.__injected = true</script>")
    page.get_by_role("button", name="Add comment").click()
    comment = page.get_by_role("list", name="Incident timeline").locator(".kind-comment")
    expect(comment.locator(".timeline-message strong")).to_have_text("release 42")
    expect(comment).to_contain_text("<script>window.__injected = true</script>")  # shown as text, never run
    assert comment.locator("script").count() == 0
    assert page.evaluate("window.__injected") is None

    chart = page.locator("[data-chart='incident-activity']")
    expect(chart).to_have_attribute("data-rendered", "true")
    # One bar per alert: two firing, one resolved.
    expect(chart.locator("g.trace.bars")).to_have_count(2)
    expect(chart.locator("g.trace.bars g.point")).to_have_count(3)
    expect(chart.locator(".ytick")).to_have_count(3)
    assert page.console_errors == []
    assert page.outside_requests == []


def test_send_test_alert_lands_on_the_incident(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    integration, _ = services.create_integration(name="prod Grafana", kind="grafana", actor=admin)

    log_in(page, "otto")
    page.goto(f"/aiops/integrations/{integration.pk}/")
    page.get_by_role("button", name="Send test alert").click()
    result = page.locator("#test-alert-result")
    expect(result).to_contain_text("went through the pipeline and opened incident")
    incident = Incident.objects.get()
    result.get_by_role("link", name=f"Open incident #{incident.pk}").click()
    expect(page.get_by_role("heading", name="Test alert from OpsPortal on opsportal-test")).to_be_visible()
    expect(page.locator("[data-chart='incident-activity'] g.trace.bars g.point")).to_have_count(1)
    assert page.console_errors == []
    assert page.outside_requests == []
