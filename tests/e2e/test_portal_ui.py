"""A person logs in, uses the navigation, sees the chart, manages a token and logs out."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from opsportal.accounts import services
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_log_in_navigate_see_chart_and_log_out(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    services.create_user(username="sam", role=Role.VIEWER, actor=admin)
    log_in(page, "ada")

    chart = page.locator("[data-chart='activity-chart']")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator("g.trace.bars")).to_have_count(1)

    nav = page.get_by_role("navigation", name="Main navigation")
    for link, heading in [
        ("AIOps", "AIOps"),
        ("MLOps", "MLOps"),
        ("LLMOps", "LLMOps"),
        ("Audit", "Audit log"),
        ("System", "System"),
        ("Overview", "Overview"),
    ]:
        nav.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name=link, exact=True)).to_have_attribute("aria-current", "page")

    nav.get_by_role("link", name="API docs").click()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("OpsPortal API")
    expect(nav.get_by_role("link", name="API docs")).to_have_attribute("aria-current", "page")
    page.go_back()

    page.get_by_role("button", name="ada").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url("/accounts/login/")
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")

    assert page.console_errors == []
    assert page.outside_requests == []


def test_token_is_shown_once_then_revoked_from_the_profile(page):
    UserFactory(username="vera", role=Role.VIEWER)
    log_in(page, "vera")
    page.get_by_role("button", name="vera").click()
    page.get_by_role("link", name="Profile & API tokens").click()
    page.get_by_label("Name").fill("grafana")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token").input_value()
    assert token.startswith("opp_")
    page.reload()
    expect(page.get_by_label("New API token")).to_have_count(0)
    page.goto("/accounts/profile/")
    page.get_by_role("button", name="Revoke token grafana").click()
    expect(page.get_by_text("Token “grafana” revoked.")).to_be_visible()
    assert page.console_errors == []


def test_audit_filters_update_the_table_in_place(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    for name in ("x1", "x2"):
        services.create_user(username=name, role=Role.VIEWER, actor=admin)
    log_in(page, "ada")
    page.goto("/audit/")
    table = page.locator("#audit-entries")
    expect(table.get_by_role("link", name="x1")).to_be_visible()
    page.get_by_label("Action").select_option("login")
    expect(table.get_by_role("link", name="x1")).to_have_count(0)
    expect(page).to_have_url("/audit/?user=&actor_name=&app=&model=&object_id=&action=login&date_from=&date_to=")
    assert page.console_errors == []


def test_the_layout_works_on_a_phone(browser, live_server):
    UserFactory(username="mo", role=Role.VIEWER)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("mo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav.get_by_role("link", name="Audit", exact=True)).to_be_hidden()
    page.get_by_role("button", name="Toggle navigation").click()
    nav.get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    context.close()


def test_api_docs_keep_the_portal_top_bar(page):
    UserFactory(username="ada", role=Role.ADMIN)
    log_in(page, "ada")
    page.goto("/api/docs/")
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("button", name="ada")).to_be_visible()
    # Swagger UI works inside the layout: the schema loads and lists its operations.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("OpsPortal API")
    operations = page.locator(".swagger-ui .opblock")
    expect(operations.first).to_be_visible()
    # Swagger UI renders a long operation list virtually (only what is near the window is in the page):
    # count what it loaded, then scroll to the end, where the last app's operations render too.
    assert page.evaluate("() => ui.specSelectors.operations().size") > 150
    # The page grows as it renders what comes into view: keep going to the end until the last tag is there.
    system = page.locator(".swagger-ui .opblock-tag[data-tag='system']")
    for _ in range(20):
        page.keyboard.press("End")
        if system.count():
            break
        page.wait_for_timeout(250)
    expect(system).to_be_visible()
    page.keyboard.press("Home")
    page.locator(".swagger-ui .opblock-summary").first.click()
    expect(page.locator(".swagger-ui .opblock.is-open").first).to_be_visible()
    # And the top bar leads back to the portal.
    nav.get_by_role("link", name="LLMOps", exact=True).click()
    expect(page.get_by_role("heading", name="LLMOps", exact=True)).to_be_visible()
    assert page.console_errors == []
    assert page.outside_requests == []
