"""Logs in Chromium: search with a filter, live tail shows a record sent after the page opened, the patterns
page with its sparklines and "new" badges, and a record's page with its neighbours."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from aiops import services
from aiops.logs import decode, mining, store
from aiops.models import LogRecord
from aiops.services import logs as log_services
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """Whatever the pages enqueue goes to a broker folder no developer's worker reads."""


@pytest.fixture(autouse=True)
def _empty_logs():
    """The record table is unmanaged (not flushed between transactional tests): emptied here."""
    mining.forget()
    store.forget_known()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM aiops_logrecord")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM aiops_logrecord")
    mining.forget()


def send(integration, *lines: tuple[str, str, str], at: datetime.datetime | None = None) -> None:
    """Store (service, severity, body) records through the ingest service, as a push would."""
    at = at or timezone.now()
    records = [
        decode.ParsedRecord(at + datetime.timedelta(milliseconds=n), service, severity, body, {"env": "prod"}, "", "")
        for n, (service, severity, body) in enumerate(lines)
    ]
    log_services.ingest_logs(integration=integration, batch=decode.Batch(records))


def test_search_live_tail_patterns_and_a_record_with_its_neighbours(page):
    UserFactory(username="vera", role=Role.VIEWER)
    integration, _ = services.create_integration(name="app logs", kind="logs", actor=None)
    start = timezone.now() - datetime.timedelta(minutes=5)
    send(integration, *[("checkout", "info", f"order {n} placed") for n in range(12)], at=start)
    send(integration, ("checkout", "error", "payment 77 failed: gateway timeout"), ("search", "info", "query ok"))

    log_in(page, "vera")
    page.goto("/aiops/")
    page.get_by_role("list", name="AIOps sections").get_by_role("link", name="Logs").click()
    expect(page.get_by_role("heading", name="Log search")).to_be_visible()
    page.get_by_label("Service").select_option("checkout")
    page.get_by_label("Text in the body").fill("timeout")
    page.get_by_label("Live tail").check()
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#log-table tr.log-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("payment 77 failed: gateway timeout")
    expect(page.locator("#log-tailing")).to_be_visible()

    # Live tail: a matching record sent now appears at the top without a reload; others do not.
    send(integration, ("checkout", "error", "payment 78 failed: gateway timeout"), ("checkout", "info", "tick"))
    expect(rows).to_have_count(2, timeout=10_000)
    expect(rows.first).to_contain_text("payment 78 failed")

    page.get_by_role("link", name="Patterns →").click()
    table = page.locator("#pattern-table")
    order = table.locator("tr.pattern-row", has_text="order <*> placed")
    expect(order).to_contain_text("12")
    expect(order.locator(".badge", has_text="new")).to_be_visible()
    expect(order.locator("[data-chart]")).to_have_attribute("data-rendered", "true")
    failed = table.locator("tr.pattern-row", has_text="payment <*> failed: gateway timeout")
    expect(failed.locator(".badge", has_text="error")).to_be_visible()
    failed.get_by_text("Sample records").click()
    failed.locator("details li a").first.click()

    expect(page.locator("#record-body")).to_contain_text("payment 7")
    expect(page.locator("#record-neighbours")).to_contain_text("order 11 placed")
    assert not page.console_errors, page.console_errors
    assert not page.outside_requests, page.outside_requests
    assert LogRecord.objects.count() == 16
