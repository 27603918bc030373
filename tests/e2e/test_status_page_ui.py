"""Status pages in Chromium: an admin publishes chosen checks, a visitor without an account reads them."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aiops import services
from aiops.models import Check, CheckHourlyStat
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

PRIVATE_URL = "https://billing.internal.example/health"


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """Whatever the pages enqueue goes to a broker folder no developer's worker reads."""


def a_check(name: str, status: str, *, service: str, down_hours: int = 0) -> Check:
    check = services.create_check(actor=None, name=name, kind="http", service=service, config={"url": PRIVATE_URL})
    Check.objects.filter(pk=check.pk).update(status=status, last_error="connect to 10.9.8.7 refused")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    CheckHourlyStat.objects.bulk_create(
        CheckHourlyStat(
            check_obj=check, hour=hour - datetime.timedelta(hours=n), total=60, up=0 if n < down_hours else 60
        )
        for n in range(48)
    )
    return check


def test_an_admin_publishes_a_status_page_and_a_visitor_reads_it_without_logging_in(page, browser, live_server):
    UserFactory(username="ada", role=Role.ADMIN)
    a_check("Checkout API", Check.Status.UP, service="checkout")
    a_check("Search", Check.Status.DOWN, service="search", down_hours=2)
    a_check("Internal batch", Check.Status.UP, service="batch")

    log_in(page, "ada")
    page.goto("/aiops/")
    page.get_by_role("list", name="AIOps sections").get_by_role("link", name="Status pages").click()
    page.get_by_role("link", name="New status page").click()
    page.get_by_label("Name").fill("Shop status")
    page.get_by_label("Address").fill("shop")
    # The checklist filters as one types; only the two public systems are chosen.
    page.get_by_label("Filter checks").fill("checkout")
    expect(page.get_by_label("Search (HTTP(S))")).to_be_hidden()
    page.get_by_label("Checkout API (HTTP(S))").check()
    page.get_by_label("Filter checks").fill("")
    page.get_by_label("Search (HTTP(S))").check()
    # A new page is published unless the admin keeps it as a draft to preview first.
    page.get_by_label("Published").uncheck()
    page.get_by_role("button", name="Save").click()
    row = page.locator("#status-pages tr", has_text="Shop status")
    expect(row).to_contain_text("Draft")
    expect(row).to_contain_text("2")

    visitor = browser.new_context(base_url=live_server.url)
    anonymous = visitor.new_page()
    # A draft is not public yet.
    assert anonymous.goto("/status/shop/").status == 404

    row.get_by_role("link", name="Edit").click()
    page.get_by_label("Published").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#status-pages tr", has_text="Shop status")).to_contain_text("Published")

    response = anonymous.goto("/status/shop/")
    assert response.status == 200
    expect(anonymous).to_have_title("Shop status status")
    expect(anonymous.get_by_role("status").first).to_have_text("Some systems are down")
    names = anonymous.locator("[data-check-name]")
    expect(names).to_have_text(["Checkout API", "Search"])
    search = anonymous.locator("[data-check]", has_text="Search")
    expect(search.locator("[data-state]")).to_have_attribute("data-state", "down")
    expect(search.locator(".status-bars .bar")).to_have_count(90)
    expect(search.locator("[data-uptime]")).to_have_text(re.compile(r"\d+(\.\d+)?% uptime"))
    body = anonymous.content()
    # Nothing private reaches the public page: targets, errors, checks not chosen, the portal's navigation.
    for private in (PRIVATE_URL, "10.9.8.7", "Internal batch", "Log out"):
        assert private not in body
    anonymous.get_by_role("link", name="JSON").click()
    assert '"status": "down"' in anonymous.content() or '"status":"down"' in anonymous.content()
    visitor.close()
    assert page.console_errors == [] and page.outside_requests == []
