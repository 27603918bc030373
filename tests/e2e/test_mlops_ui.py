"""A data scientist and an admin in the browser: find a model, compare versions, promote with approval, roll back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from mlops import services
from mlops.models import ApprovalRequest, ModelVersion
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def registry(admin) -> None:
    """fraud-detector: version 1 in Production, version 2 better on AUC; then an approval policy. And churn."""
    fraud = services.create_model(name="fraud-detector", actor=admin, owner_team="risk", description="Card fraud.")
    for auc, depth in [(0.81, "4"), (0.86, "6")]:
        services.create_version(
            model=fraud,
            actor=admin,
            source=f"s3://models/fraud/{depth}",
            params={"max_depth": depth, "learning_rate": "0.1"},
            metrics={"auc": auc, "log_loss": 0.5 - auc / 4},
        )
    services.transition_stage(version=stage_of(fraud, 1), stage="Production", actor=admin)
    services.update_model(model=fraud, actor=admin, approval_required=True)
    churn = services.create_model(name="churn", actor=admin, owner_team="growth")
    services.create_version(model=churn, actor=admin, source="s3://models/churn/1", metrics={"auc": 0.7})


def stage_of(model, number: int) -> ModelVersion:
    return ModelVersion.objects.get(model=model, version=number)


def stages() -> dict[int, str]:
    return dict(ModelVersion.objects.filter(model__name="fraud-detector").values_list("version", "stage"))


def version_row(page, number: int):
    return page.locator(f"#versions tr#version-{number}")


def test_find_compare_promote_approve_and_roll_back(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    registry(admin)

    # The operator finds the model with the search box.
    log_in(page, "otto")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="MLOps", exact=True).click()
    models = page.locator("#models")
    expect(models.get_by_role("link", name="churn", exact=True)).to_be_visible()
    page.get_by_label("Search").fill("fraud")
    page.get_by_label("Search").press("Enter")
    expect(models.get_by_role("link", name="churn", exact=True)).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/mlops/\?.*q=fraud"))
    row = models.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Production v1")
    expect(row).to_contain_text("approval required")
    row.get_by_role("link", name="fraud-detector").click()
    expect(page.get_by_role("heading", name="fraud-detector", level=1)).to_be_visible()
    expect(page.locator("#model-description")).to_have_text("Card fraud.")

    # Two versions side by side, with the chart.
    page.get_by_label("Select version 1 to compare").check()
    page.get_by_label("Select version 2 to compare").check()
    page.get_by_role("button", name="Compare selected versions").click()
    expect(page.get_by_role("heading", name="Compare versions of fraud-detector")).to_be_visible()
    chart = page.locator("[data-chart='compare-chart']")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator("g.trace.bars")).to_have_count(2)
    auc = page.locator("#compare-metrics tr", has=page.locator("code", has_text=re.compile("^auc$")))
    expect(auc).to_have_class("differs")
    expect(auc).to_contain_text("differs")
    expect(auc.locator("td").nth(1)).to_contain_text("★ best")
    expect(auc.locator("td").nth(0)).not_to_contain_text("best")
    rate = page.locator("#compare-params tr", has=page.locator("code", has_text="learning_rate"))
    expect(rate).not_to_have_class("differs")

    # The operator asks for Production; the policy makes it an approval request.
    page.get_by_role("link", name="2", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(r"fraud-detector\s+version 2"))).to_be_visible()
    expect(page.get_by_text("moving to Production opens an approval request")).to_be_visible()
    page.get_by_label("Why promote it?").fill("AUC 0.86 against 0.81")
    page.get_by_role("button", name="Request promotion to Production").click()
    request = ApprovalRequest.objects.get()
    expect(page.get_by_role("alert").filter(has_text=f"Approval request #{request.pk} is pending")).to_be_visible()
    expect(page.locator(f"#request-{request.pk}-notice")).to_contain_text("requested by otto")
    expect(page.locator("#version-stage")).to_have_text("None")
    assert stages() == {1: "Production", 2: "None"}

    # The admin approves it in the queue.
    page.locator("#user-menu").click()
    page.get_by_role("button", name="Log out").click()
    log_in(page, "ada")
    page.goto("/mlops/")
    tabs = page.get_by_role("list", name="MLOps sections")
    expect(tabs.get_by_role("link", name=re.compile("^Approvals"))).to_contain_text("1")
    tabs.get_by_role("link", name=re.compile("^Approvals")).click()
    queued = page.locator(f"#request-{request.pk}")
    expect(queued).to_contain_text("fraud-detector")
    expect(queued).to_contain_text("version 2")
    expect(queued).to_contain_text("AUC 0.86 against 0.81")
    expect(queued).to_contain_text("otto")
    queued.get_by_label(f"Comment on request #{request.pk}").fill("Checked the evaluation.")
    queued.get_by_role("button", name=f"Approve request {request.pk}").click()
    expect(page.get_by_role("alert").filter(has_text="fraud-detector version 2 is now in Production")).to_be_visible()
    expect(page.locator("#pending-requests")).to_contain_text("Nothing waits for approval.")
    expect(page.locator("#decided-requests")).to_contain_text("Checked the evaluation.")
    assert stages() == {1: "Archived", 2: "Production"}

    # Version 2 misbehaves: the admin rolls back to version 1.
    page.get_by_role("list", name="MLOps sections").get_by_role("link", name="Models").click()
    page.locator("#models").get_by_role("link", name="fraud-detector").click()
    expect(version_row(page, 2)).to_contain_text("Production")
    expect(version_row(page, 1)).to_contain_text("Archived")
    rollback = page.get_by_role("form", name="Roll back")
    expect(rollback).to_contain_text("Version 1 (Archived)")
    rollback.get_by_label("Version").select_option("1")
    rollback.get_by_label("Reason").fill("Latency regression")
    rollback.get_by_role("button", name="Roll back").click()
    expect(page.get_by_role("alert").filter(has_text="Rolled back: version 1 is in Production again.")).to_contain_text(
        "Archived version 2."
    )
    expect(version_row(page, 1)).to_contain_text("Production")
    expect(version_row(page, 2)).to_contain_text("Archived")
    expect(page.get_by_role("list", name="Model history").locator("li").first).to_contain_text(
        "Rolled back to Production from Archived."
    )
    assert stages() == {1: "Production", 2: "Archived"}

    assert page.console_errors == []
    assert page.outside_requests == []


def test_choose_the_versions_tables_columns_sort_by_a_metric_and_chart_it(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    model = services.create_model(name="ranker", actor=admin)
    names = ["auc", "f1", "log_loss", "precision", "recall", "latency_ms"]
    for index, auc in enumerate([0.71, 0.93, 0.85]):
        metrics = {name: round(0.1 * (index + 1) + position, 3) for position, name in enumerate(names)}
        services.create_version(model=model, actor=admin, source=f"s3://r/{index}", metrics={**metrics, "auc": auc})
    log_in(page, "ada")
    page.goto("/mlops/models/ranker/")
    headers = page.locator("#versions thead th[data-metric]")
    expect(headers).to_have_count(4)
    # The user picks two columns; the choice is in the address, so a reload keeps it.
    page.locator("#version-columns summary").click()
    for name in names:
        box = page.locator("#version-columns").get_by_label(name, exact=True)
        box.set_checked(name in ("auc", "latency_ms"))
    page.get_by_role("button", name="Show these columns").click()
    expect(headers).to_have_count(2)
    expect(headers.nth(0)).to_contain_text("auc")
    expect(headers.nth(1)).to_contain_text("latency_ms")
    page.reload()
    expect(headers).to_have_count(2)
    # Sorting by a header: highest first, then the other way.
    page.get_by_role("link", name="auc: sort by auc, descending").click()
    rows = page.locator("#versions tbody tr")
    expect(rows.nth(0)).to_have_attribute("id", "version-2")
    expect(page.locator('#versions th[data-metric="auc"]')).to_have_attribute("aria-sort", "descending")
    assert [rows.nth(i).get_attribute("id") for i in range(3)] == ["version-2", "version-3", "version-1"]
    page.get_by_role("link", name="auc: sort by auc, ascending").click()
    expect(rows.nth(0)).to_have_attribute("id", "version-1")
    expect(headers).to_have_count(2)
    # The metric across versions, drawn.
    chart = page.locator("[data-chart='metric-chart']")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator("g.trace.scatter")).to_have_count(1)
    page.get_by_label("Metric", exact=True).select_option("latency_ms")
    page.get_by_role("button", name="Show chart", exact=True).click()
    expect(page.get_by_role("heading", name="latency_ms across versions")).to_be_visible()
    expect(rows.nth(0)).to_have_attribute("id", "version-1")
    assert page.console_errors == []
    assert page.outside_requests == []
