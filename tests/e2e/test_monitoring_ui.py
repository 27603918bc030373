"""An ML lead in the browser on a model's Monitoring tab: the drift heatmap drawn, a click on a cell showing
that batch's column, the reference replaced through the upload form, a check added."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from mlops import services
from mlops.models import MonitorCheck, Stage
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.mlops import factories
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def monitored(settings, tmp_path):
    """churn (version 1 in Production) with a monitor, its reference and three hourly batches, the last
    drifted; the lead is an admin."""
    settings.MEDIA_ROOT = tmp_path / "media"
    lead = UserFactory(username="lena", role=Role.ADMIN)
    model = factories.registered_model(actor=lead, name="churn")
    services.transition_stage(version=factories.version(model, 1), stage=Stage.PRODUCTION, actor=lead)
    monitor = factories.monitor(model=model, actor=lead)
    batches = [
        factories.monitoring_batch(monitor=monitor, actor=lead, seed=hour, shift=2.0 if hour == 2 else 0.0,
                                   start=f"2026-01-05T{hour:02d}:00:00+00:00")
        for hour in range(3)
    ]  # fmt: skip
    return model, monitor, batches


def test_heatmap_click_reference_upload_and_a_new_check(page, monitored, tmp_path):
    model, monitor, batches = monitored
    drifted = batches[-1]
    log_in(page, "lena")
    page.goto(f"/mlops/models/{model.name}/")
    page.get_by_role("navigation", name=f"Sections of {model.name}").get_by_role("link", name="Monitoring").click()
    expect(page).to_have_url(re.compile(r"/mlops/models/churn/monitoring/$"))
    expect(page.get_by_role("heading", name="Drift by column over time")).to_be_visible()

    heatmap = page.locator("[data-chart='drift-heatmap']")
    expect(heatmap).to_have_attribute("data-rendered", "true")
    expect(heatmap.locator("g.hm").first).to_be_attached()
    expect(heatmap).to_have_attribute("data-wired", "true")
    # The focus panel opens on the newest batch; a click on the first row's middle cell shows batch 2.
    expect(page.locator("#focus")).to_have_attribute("data-batch", str(drifted.pk))
    first_column = page.evaluate("() => JSON.parse(document.getElementById('drift-heatmap').textContent).data[0].y[0]")
    area = heatmap.locator("rect.nsewdrag").first.bounding_box()
    rows = page.evaluate("() => JSON.parse(document.getElementById('drift-heatmap').textContent).data[0].y.length")
    page.mouse.click(area["x"] + area["width"] / 2, area["y"] + area["height"] / (2 * rows))
    focus = page.locator("#focus")
    expect(focus).to_have_attribute("data-batch", str(batches[1].pk))
    expect(focus).to_have_attribute("data-column", first_column)
    expect(page.locator("#focus-h")).to_have_text(f"{first_column} in batch #{batches[1].pk}")
    expect(page).to_have_url(re.compile(rf"batch={batches[1].pk}&column={first_column}"))
    expect(focus.locator("[data-chart='focus-chart']")).to_have_attribute("data-rendered", "true")
    expect(focus.locator("g.trace.bars")).to_have_count(2)

    # Replace the reference through the form: the progress bar appears, then the page says what was stored.
    csv = tmp_path / "train.csv"
    csv.write_bytes(factories.csv_upload(factories.monitoring_table(rows=800, seed=42), name="train.csv").read())
    upload = page.get_by_role("form", name="Upload reference data")
    upload.get_by_label("CSV or Parquet file").set_input_files(str(csv))
    # What the progress bar showed at the upload's last progress event (kept across the redirect).
    page.evaluate(
        """() => document.addEventListener("htmx:xhr:progress", () => {
             const bar = document.querySelector("#reference-upload [data-upload-progress]");
             sessionStorage.setItem("upload", bar.hidden ? "hidden" : bar.getAttribute("aria-valuenow"));
           })"""
    )
    upload.get_by_role("button", name="Replace reference data").click()
    expect(page.get_by_role("alert").filter(has_text="Reference data train.csv (800 rows)")).to_be_visible()
    expect(page.locator("#reference-name")).to_have_text("train.csv")
    assert page.evaluate("() => sessionStorage.getItem('upload')") == "100"

    # Add a dataset drift check.
    page.get_by_role("button", name="Add check", exact=True).first.click()
    form = page.get_by_role("form", name="Add a check")
    form.get_by_label("Name").fill("Dataset drift on each batch")
    form.get_by_label("Kind").select_option("dataset_drift")
    form.get_by_label("Severity").select_option("error")
    form.get_by_role("button", name="Add check").click()
    expect(page.get_by_role("alert").filter(has_text="Check Dataset drift on each batch added.")).to_be_visible()
    check = MonitorCheck.objects.get(monitor=monitor)
    expect(page.locator(f"#check-{check.pk}")).to_contain_text("not evaluated")
    assert check.kind == "dataset_drift" and check.severity == "error"

    assert page.console_errors == []
    assert page.outside_requests == []


def test_a_refused_reference_upload_shows_the_error_in_the_form(page, monitored, tmp_path):
    model, _, _ = monitored
    log_in(page, "lena")
    page.goto(f"/mlops/models/{model.name}/monitoring/")
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    upload = page.get_by_role("form", name="Upload reference data")
    upload.get_by_label("CSV or Parquet file").set_input_files(str(bad))
    upload.get_by_role("button", name="Replace reference data").click()
    error = page.locator("#reference-upload .invalid-feedback, #reference-upload .alert-danger").first
    expect(error).to_be_visible()
    expect(page).to_have_url(re.compile(r"/mlops/models/churn/monitoring/$"))
    expect(page.locator("#reference-name")).to_have_text("reference.parquet")
