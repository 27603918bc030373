"""An engineer looks into a slow support-bot answer in the browser: filters the traces list (the filters stay
in the URL, so the filtered list can be reloaded and shared), opens a trace, sees its waterfall and reads the
generation as a chat, then picks another span and searches its attributes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.llmops.test_trace_pages import stored_trace
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_filter_open_a_trace_and_read_its_chat(page, live_server):
    UserFactory(username="tina", role=Role.VIEWER)
    question, answer = "Can I change my delivery address?", "Yes, until the parcel ships."
    slow = stored_trace(service="support-bot", user="ana", session="conv-9", latency_ms=4200, extra_spans=2,
                        question=question, answer=answer)  # fmt: skip
    stored_trace(service="support-bot", user="ben", latency_ms=300)
    stored_trace(service="search", user="ana", latency_ms=5000)
    log_in(page, "tina")
    page.goto("/llmops/")
    page.get_by_role("link", name="Traces", exact=True).first.click()
    expect(page.locator("tr[data-trace-id]")).to_have_count(3)

    page.get_by_label("Service").fill("support-bot")
    page.get_by_label("Latency ≥ (ms)").fill("1000")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"service=support-bot.*min_latency=1000"))
    expect(page.locator("tr[data-trace-id]")).to_have_count(1)
    page.reload()
    expect(page.locator(f'tr[data-trace-id="{slow.trace_id}"]')).to_be_visible()
    expect(page.get_by_label("Service")).to_have_value("support-bot")

    page.locator(f'tr[data-trace-id="{slow.trace_id}"] a').first.click()
    expect(page).to_have_url(re.compile(rf"/llmops/traces/{slow.trace_id}/"))
    waterfall = page.locator("#waterfall")
    expect(waterfall.locator(".wf-row")).to_have_count(4)
    root_bar = waterfall.locator(".wf-row").first.locator(".wf-bar")
    track = waterfall.locator(".wf-row").first.locator(".wf-track")
    assert root_bar.bounding_box()["width"] == pytest.approx(track.bounding_box()["width"], rel=0.02)
    expect(page.locator("#chat-input [data-role=user]")).to_contain_text(question)
    expect(page.locator("#chat-output [data-role=assistant]")).to_contain_text(answer)

    waterfall.get_by_text("tool lookup 1").click()
    expect(page.locator("#span-h")).to_contain_text("tool lookup 1")
    expect(page).to_have_url(re.compile(r"span=[0-9a-f]{16}"))
    page.locator(".wf-row").nth(1).click()
    expect(page.locator("#span-h")).to_contain_text("chat gpt-4o-mini")
    page.get_by_label("Search attributes").fill("region")
    expect(page.locator("#span-attributes tbody tr")).to_have_count(1)
    expect(page.locator("#span-attributes")).to_contain_text("eu-west-1")

    page.get_by_role("link", name="conv-9").click()
    expect(page.locator("#session-thread")).to_contain_text(question)
    assert page.console_errors == [] and page.outside_requests == []
