"""An operator tunes a guard policy in the browser: turns on banned words, saves, and tries texts in the
"try it" box without leaving the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from llmops.services import guardrails as guard_services
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_an_operator_edits_a_policy_and_tries_a_text(page):
    operator = UserFactory(username="olga", role=Role.OPERATOR)
    guard_services.forget_policies()
    policy = guard_services.create_policy(name="support-bot", actor=operator, checks=guard_services.DEFAULT_CHECKS,
                                          action="redact")  # fmt: skip
    log_in(page, "olga")
    page.get_by_role("link", name="LLMOps").first.click()
    page.get_by_role("link", name="Guardrails").click()
    page.get_by_role("link", name="support-bot").click()
    expect(page.get_by_role("heading", name="support-bot")).to_be_visible()

    section = page.locator('[data-check="banned"]')
    section.get_by_label("Use Banned words or topics").check()
    section.locator("summary").click()
    section.get_by_role("textbox", name="Words").fill("acme corp\nglobex")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("Policy support-bot saved.")).to_be_visible()
    policy.refresh_from_db()
    assert policy.checks[-1]["config"]["words"] == ["acme corp", "globex"]

    page.get_by_label("Text to check").fill("Is Acme Corp cheaper? Mail me at jo@example.com")
    page.get_by_role("button", name="Check text").click()
    verdict = page.locator("[data-verdict]")
    expect(verdict).to_have_attribute("data-verdict", "blocked")
    expect(page.locator("#try-violations")).to_contain_text("banned: 1 banned word")
    expect(page.locator("#try-redacted")).to_have_text("Is Acme Corp cheaper? Mail me at [EMAIL]")

    page.get_by_label("Text to check").fill("Mail me at jo@example.com")
    page.get_by_role("button", name="Check text").click()
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "allowed")
    expect(page.locator("#try-redacted")).to_have_text("Mail me at [EMAIL]")
    assert page.url.endswith(f"/llmops/guardrails/{policy.pk}/")  # htmx: the page stayed
    assert not page.console_errors and not page.outside_requests
