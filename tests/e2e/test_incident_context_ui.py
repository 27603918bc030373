"""On an incident's page, the on-call sees its runbook first, then the context: the service's check that is
down, the anomaly on its latency and the model promoted just before, each a link to where it came from."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from playwright.sync_api import expect

from aiops import services
from aiops.models import Incident
from opsportal.accounts.roles import Role
from tests.aiops.conftest import am_alert, am_payload, deliver
from tests.aiops.test_incident_context import anomaly, down_check, promote
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

RUNBOOK = "https://runbooks.example/checkout-errors"


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The test correlates alerts itself; what it enqueues goes to a broker folder no developer's worker reads."""


def _in_another_thread(function, *args):
    """Run `function` in a thread of its own: the check runner uses asyncio.run, and Playwright's sync API
    keeps an event loop running in this one."""

    def call():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def test_panel_shows_the_down_check_the_anomaly_and_the_promotion_each_linking_to_its_page(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="vera", role=Role.VIEWER)
    check = _in_another_thread(down_check, admin)
    found = anomaly(admin)
    promote(admin)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    alert = am_alert(service="checkout")
    alert["annotations"]["runbook_url"] = RUNBOOK
    assert deliver(integration, token, am_payload(alert, group_key="checkout")).status_code == 202
    services.process_pending_alerts()
    incident = Incident.objects.get(title="HighErrorRate on checkout")

    log_in(page, "vera")
    page.goto(f"/aiops/incidents/{incident.pk}/")
    # The runbook is a solid button at the top, before the context and the alerts.
    runbook = page.locator("#incident-links").get_by_role("link", name="Runbook")
    expect(runbook).to_have_attribute("href", RUNBOOK)
    expect(runbook).to_have_class("btn btn-sm btn-primary")
    runbook_box = runbook.bounding_box()
    panel = page.locator("#incident-context")
    expect(panel.get_by_role("heading", name="Context")).to_be_visible()
    assert runbook_box["y"] < panel.bounding_box()["y"] < page.locator("#alerts-h").bounding_box()["y"]

    check_link = panel.get_by_role("link", name="Check Checkout TCP is down")
    expect(check_link).to_have_attribute("href", f"/aiops/checks/{check.pk}/")
    anomaly_link = panel.get_by_role("link", name="Anomaly on http_latency_ms", exact=False)
    expect(anomaly_link).to_have_attribute(
        "href", f"/aiops/metrics/anomalies/{found.monitor_id}/?series={found.series_id}"
    )
    promotion = panel.get_by_role("link", name="Model churn v2: Moved to Production from None.")
    expect(promotion).to_be_visible()

    # A model promoted while the page is open shows once the panel is refreshed.
    promote(admin, name="fraud")
    panel.get_by_role("button", name="Refresh").click()
    expect(panel.get_by_role("link", name="Model fraud v2: Moved to Production from None.")).to_be_visible()

    promotion.click()
    expect(page).to_have_url("/mlops/models/churn/versions/2/")
    page.go_back()
    page.locator("#incident-context").get_by_role("link", name="Check Checkout TCP is down").click()
    expect(page).to_have_url(f"/aiops/checks/{check.pk}/")
    expect(page.get_by_role("heading", name="Checkout TCP")).to_be_visible()
    assert not page.console_errors, page.console_errors
    assert not page.outside_requests, page.outside_requests
