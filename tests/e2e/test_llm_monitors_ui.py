"""An operator watches the support bot's error rate in the browser: creates an LLM monitor in the form, sees it
"not evaluated yet", then, once the sweep has measured an error burst, sees it firing with its value on the
chart against the bound, the breach in its readings and in the list, and follows it to the failing traces."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from llmops.models import LLMMonitor
from llmops.services import monitors
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.llmops.test_trace_pages import stored_trace
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_create_a_monitor_and_see_it_fire_on_its_chart(page, live_server, settings):
    settings.OPSPORTAL_BASE_URL = live_server.url  # the incident's links are absolute
    UserFactory(username="olga", role=Role.OPERATOR)
    start = timezone.now() - datetime.timedelta(minutes=5)
    for index in range(10):
        stored_trace(start=start + datetime.timedelta(seconds=index), error=index < 4)
    stored_trace(start=start, service="search", error=True)
    log_in(page, "olga")
    page.goto("/llmops/monitors/")
    expect(page.locator("#monitors")).to_contain_text("No monitors yet")

    form = page.locator("form", has=page.get_by_role("button", name="Create monitor"))
    form.get_by_role("textbox", name="Name", exact=True).fill("support errors")
    form.get_by_label("Metric").select_option(label="Error rate")
    form.get_by_label("Service").fill("support-bot")
    form.get_by_label("Fires when the value is").select_option("above")
    form.get_by_label("Bound").fill("0.2")
    form.get_by_label("Window (minutes)").fill("15")
    form.get_by_label("Minimum samples").fill("5")
    form.get_by_label("Severity").select_option("error")
    form.get_by_role("button", name="Create monitor").click()

    expect(page).to_have_url(re.compile(r"/llmops/monitors/\d+/$"))
    expect(page.locator(".messages")).to_contain_text("Monitor support errors created")
    expect(page.locator("#now-h [data-state-badge]")).to_have_text("Not evaluated yet")
    expect(page.locator("#readings")).to_contain_text("Not evaluated in the last 24 hours")
    expect(page.locator("#monitor-now")).to_contain_text("above 20.0 % over 15 min")

    # What the beat's sweep does every minute.
    monitor = LLMMonitor.objects.get(name="support errors")
    monitors.evaluate_monitor(monitor_id=monitor.pk)
    page.reload()
    expect(page.locator("#now-h [data-state-badge]")).to_have_text("Firing")
    expect(page.locator("#monitor-now [data-value]")).to_contain_text("40.0 %")
    chart = page.locator('[data-chart="monitor-chart"]')
    expect(chart.locator(".main-svg").first).to_be_visible()
    # The value (one evaluation) and the dashed bound, drawn by Plotly.
    expect(chart.locator(".scatterlayer .trace")).to_have_count(2)
    expect(chart.locator(".scatterlayer .trace").first.locator(".point")).to_have_count(1)
    expect(chart.locator(".legendtext")).to_contain_text(["Error rate", "bound"])
    expect(page.locator("#readings tbody tr").first).to_contain_text("40.0 %")
    expect(page.locator("#readings tbody tr").first).to_contain_text("yes")

    page.get_by_role("link", name="Monitors").first.click()
    row = page.locator('tr[data-monitor="support errors"]')
    expect(row).to_have_attribute("data-state", "firing")
    expect(row.locator("[data-state-badge]")).to_have_text("Firing")
    expect(row.locator("[data-value]")).to_contain_text("40.0 %")

    row.get_by_role("link", name="support errors").click()
    page.locator("#monitor-traces").click()
    expect(page).to_have_url(re.compile(r"/llmops/traces/\?.*service=support-bot.*status=error"))
    expect(page.locator("tr[data-trace-id]")).to_have_count(4)
    assert page.console_errors == [] and page.outside_requests == []
