"""The Monitoring tab and the batch report as people use them: the drift heatmap and a click on a cell,
distributions from stored profiles, performance against the reference, data quality, batches by version,
checks and breaches linked to their incidents, the forms, the HTML download, the overview's health panel."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from aiops import services as aiops_services
from mlops import services
from mlops.models import Breach, Monitor, MonitorCheck, MonitoringBatch, ReferenceDataset, RetrainingHook, Stage
from mlops.services import monitor_checks
from tests.mlops import factories
from tests.mlops.pages import json_script, messages_of, text_of, text_of_html

pytestmark = pytest.mark.django_db

DAY = "2026-01-05T{:02d}:00:00+00:00"


@pytest.fixture
def model(operator, admin_user, media, hooks_allowed):
    """churn with version 1 in Production."""
    model = factories.registered_model(actor=operator, name="churn")
    services.transition_stage(version=factories.version(model, 1), stage=Stage.PRODUCTION, actor=admin_user)
    return model


@pytest.fixture
def monitor(model, admin_user) -> Monitor:
    return factories.monitor(model=model, actor=admin_user)


@pytest.fixture
def batches(monitor, operator) -> list[MonitoringBatch]:
    """Three hourly batches: two like the reference, then one with age, income and plan drifted."""
    return [
        factories.monitoring_batch(monitor=monitor, actor=operator, seed=1, start=DAY.format(0)),
        factories.monitoring_batch(monitor=monitor, actor=operator, seed=2, start=DAY.format(1)),
        factories.monitoring_batch(monitor=monitor, actor=operator, seed=3, shift=2.0, start=DAY.format(2)),
    ]


def tab(model, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("mlops:monitoring", args=[model.name]) + (f"?{query}" if query else "")


def action(model, name: str) -> str:
    return reverse("mlops:monitoring_action", args=[model.name, name])


def heatmap_cells(figure: dict) -> dict[tuple[str, int], float | None]:
    """{(column, batch id): score} from the heatmap's data (batch ids read from each cell's link)."""
    trace = figure["data"][0]
    cells = {}
    for row, column in enumerate(trace["y"]):
        for col, link in enumerate(trace["customdata"][row]):
            cells[(column, int(re.search(r"batch=(\d+)", link).group(1)))] = trace["z"][row][col]
    return cells


def test_the_model_page_has_a_monitoring_tab(client, viewer, model):
    client.force_login(viewer)
    page = client.get(reverse("mlops:model", args=[model.name]))
    assert re.search(rf'href="{re.escape(tab(model))}"[^>]*>\s*Monitoring', page.content.decode())


def test_the_heatmap_shows_the_drifted_batch_red_and_the_others_below_the_threshold(
    client, viewer, model, monitor, batches, django_assert_max_num_queries
):
    client.force_login(viewer)
    with django_assert_max_num_queries(20):
        page = client.get(tab(model))
    assert page.status_code == 200
    figure = json_script(page, "drift-heatmap")
    trace = figure["data"][0]
    assert trace["type"] == "heatmap"
    assert {"age", "income", "plan"} <= set(trace["y"])
    assert len(trace["x"]) == 3
    cells = heatmap_cells(figure)
    calm, _, drifted = batches
    assert cells[("age", drifted.pk)] > 1 and cells[("plan", drifted.pk)] > 1
    assert cells[("age", calm.pk)] < 1 and cells[("plan", calm.pk)] < 1
    assert cells[("income", drifted.pk)] > 2 * cells[("income", calm.pk)]
    text = text_of(page)
    assert "Monitor production" in text and "Follows stage Production" in text
    assert "reference.parquet" in text


def test_a_click_on_a_cell_loads_that_batch_and_column_into_the_focus_panel(
    client, viewer, model, monitor, batches, django_assert_max_num_queries
):
    client.force_login(viewer)
    drifted = batches[2]
    trace = json_script(client.get(tab(model)), "drift-heatmap")["data"][0]
    url = next(u for u in trace["customdata"][trace["y"].index("income")] if f"batch={drifted.pk}" in u)
    with django_assert_max_num_queries(10):
        partial = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="monitoring-focus")
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body
    assert "income in batch #" in text_of(partial) and f"batch #{drifted.pk}" in text_of(partial)
    assert "Drifted" in text_of(partial)
    chart = json_script(partial, "focus-chart")
    reference, current = chart["data"]
    assert reference["name"] == "reference" and current["name"] == f"batch #{drifted.pk}"
    assert sum(reference["y"]) == pytest.approx(1, abs=0.02) and sum(current["y"]) == pytest.approx(1, abs=0.02)
    # The drifted batch's incomes sit two standard deviations higher: its mass is further right.
    centre = lambda bars: sum(x * y for x, y in zip(bars["x"], bars["y"], strict=True))  # noqa: E731
    assert centre(current) > centre(reference) + 20_000
    # Without htmx the same address is the whole tab, focused on that cell.
    whole = client.get(url)
    assert "<html" in whole.content.decode() and "income in batch #" in text_of(whole)


def test_categorical_overlays_show_each_plan_share(client, viewer, model, monitor, batches):
    client.force_login(viewer)
    drifted = batches[2]
    page = client.get(tab(model, monitor=monitor.pk, batch=drifted.pk, column="plan"))
    reference, current = json_script(page, "focus-chart")["data"]
    shares = dict(zip(current["x"], current["y"], strict=True))
    assert set(reference["x"]) == {"basic", "plus", "premium"}
    assert shares["premium"] > dict(zip(reference["x"], reference["y"], strict=True))["premium"] + 0.15


def test_performance_over_time_has_the_reference_line(client, viewer, model, monitor, batches):
    client.force_login(viewer)
    page = client.get(tab(model, metric="accuracy"))
    figure = json_script(page, "performance-chart")
    (line,) = figure["data"]
    assert line["name"] == "version 1" and len(line["y"]) == 3
    assert all(0.7 < value < 1 for value in line["y"])
    reference = ReferenceDataset.objects.get(pk=monitor.reference_id).performance["accuracy"]
    assert figure["layout"]["shapes"][0]["y0"] == pytest.approx(reference)
    assert "reference" in figure["layout"]["annotations"][0]["text"]


def test_batches_are_listed_newest_first_and_filtered_by_version(
    client, viewer, admin_user, operator, model, monitor, batches
):
    services.transition_stage(version=factories.version(model, 2), stage=Stage.PRODUCTION, actor=admin_user)
    newer = factories.monitoring_batch(monitor=monitor, actor=operator, seed=4, start=DAY.format(3))
    assert newer.version.version == 2
    client.force_login(viewer)
    page = client.get(tab(model))
    ids = [int(i) for i in re.findall(r'<tr id="batch-(\d+)"', page.content.decode())]
    assert ids == [newer.pk, *[b.pk for b in reversed(batches)]]
    only_v1 = client.get(tab(model, monitor=monitor.pk, version=1))
    assert [int(i) for i in re.findall(r'<tr id="batch-(\d+)"', only_v1.content.decode())] == [
        b.pk for b in reversed(batches)
    ]
    assert len(json_script(only_v1, "drift-heatmap")["data"][0]["x"]) == 3
    bad = client.get(tab(model, version="two"))
    assert bad.status_code == 400 and "'two' is not a version number" in text_of(bad)


def test_the_batch_list_is_paginated_without_a_query_per_batch(
    client, viewer, model, monitor, operator, django_assert_max_num_queries
):
    for hour in range(27):
        factories.monitoring_batch(monitor=monitor, actor=operator, rows=60, seed=hour, start=DAY.format(hour % 24))
    client.force_login(viewer)
    with django_assert_max_num_queries(20):
        page = client.get(tab(model))
    assert len(re.findall(r'<tr id="batch-\d+"', page.content.decode())) == 25
    assert "Page 1 of 2 (27)" in text_of(page)
    second = client.get(tab(model, monitor=monitor.pk, page=2))
    assert len(re.findall(r'<tr id="batch-\d+"', second.content.decode())) == 2


def test_quality_problems_are_flagged_per_column(client, viewer, model, monitor, operator):
    table = factories.monitoring_table(rows=300, seed=7, start=DAY.format(5))
    plans = table.column("plan").to_pylist()
    plans[:30] = ["enterprise"] * 30
    table = table.set_column(table.column_names.index("plan"), "plan", [plans])
    batch = factories.monitoring_batch(monitor=monitor, actor=operator, table=table)
    client.force_login(viewer)
    page = client.get(tab(model, monitor=monitor.pk, batch=batch.pk, column="plan"))
    row = re.search(r"<tr data-problem>\s*<th[^>]*>plan</th>.*?</tr>", page.content.decode(), re.S)
    assert row and "enterprise" in row.group(0) and "(30)" in row.group(0)


def test_checks_and_breaches_link_to_the_incident(client, viewer, admin_user, model, monitor, batches):
    monitor_checks.save_check(
        monitor=monitor, actor=admin_user, name="Dataset drift", kind="dataset_drift", severity="error"
    )
    assert len(monitor_checks.evaluate_batch(batch=batches[2])) == 1
    aiops_services.process_pending_alerts()
    client.force_login(viewer)
    page = client.get(tab(model))
    body = page.content.decode()
    section = body[body.index('id="breach-') :]
    incident = re.search(r'href="/aiops/incidents/(\d+)/"[^>]*data-incident', section)
    assert incident, "the breach links to its incident"
    assert f'href="{reverse("mlops:batch", args=[model.name, batches[2].pk])}"' in section
    text = text_of(page)
    assert "Dataset drift breached" in text and "1 open breach" in text
    report = client.get(reverse("mlops:batch", args=[model.name, batches[2].pk]))
    assert f"/aiops/incidents/{incident.group(1)}/" in report.content.decode()


def test_the_batch_report_has_the_columns_distributions_quality_and_performance(
    client, viewer, model, monitor, batches, django_assert_max_num_queries
):
    client.force_login(viewer)
    drifted = batches[2]
    with django_assert_max_num_queries(12):
        page = client.get(reverse("mlops:batch", args=[model.name, drifted.pk]))
    assert page.status_code == 200
    text = text_of(page)
    assert "Dataset drift detected" in text
    drifted_rows = re.findall(r'<tr class="table-danger" data-column="([^"]+)"', page.content.decode())
    assert {"age", "income", "plan"} <= set(drifted_rows)
    metrics = re.findall(r'<th scope="row" class="fw-normal font-monospace small">([^<]+)</th><td class="text-end',
                         page.content.decode()[page.content.decode().index('id="performance"'):])  # fmt: skip
    assert metrics[:4] == ["accuracy", "precision", "recall", "f1"] and "support[0]" not in metrics
    assert "rows" not in metrics and "Data quality" in text
    chart_ids = re.findall(r'data-chart="(dist-\d+)"', page.content.decode())
    assert len(chart_ids) >= 3
    assert json_script(page, chart_ids[0])["data"][0]["name"] == "reference"
    assert f'href="{reverse("mlops:batch", args=[model.name, batches[1].pk])}"' in page.content.decode()


def test_the_html_download_is_built_from_the_kept_rows_or_else_from_the_profiles(client, viewer, model, batches):
    client.force_login(viewer)
    drifted = batches[2]
    url = reverse("mlops:batch_download", args=[model.name, drifted.pk])
    kept = client.get(url)
    assert kept.status_code == 200 and kept["Content-Type"].startswith("text/html")
    assert kept["Content-Disposition"] == f'attachment; filename="churn-batch-{drifted.pk}-drift-report.html"'
    document = kept.content.decode()
    assert "Dataset drift detected" in document and "Plotly" in document and "http://" not in document[:200]
    assert "Built from the stored profiles" not in document
    MonitoringBatch.objects.filter(pk=drifted.pk).update(file="")
    from_profiles = client.get(url).content.decode()
    assert "Built from the stored profiles" in from_profiles and "Dataset drift detected" in from_profiles
    assert re.search(r"<a href='#chart-\d+'>age</a>", from_profiles)
    assert "Plotly.newPlot" in from_profiles
    assert '<table id="quality">' in from_profiles


def test_a_batch_of_another_model_is_not_found(client, viewer, make_model, model, batches):
    other = make_model("fraud", versions=1)
    client.force_login(viewer)
    assert client.get(reverse("mlops:batch", args=[other.name, batches[0].pk])).status_code == 404
    assert client.get(tab(model, monitor=99999)).status_code == 404


def test_without_a_monitor_viewers_read_how_to_start_and_admins_create_one(client, viewer, admin_user, model):
    client.force_login(viewer)
    assert "No monitor yet" in text_of(client.get(tab(model)))
    client.force_login(admin_user)
    page = client.get(tab(model))
    assert "Monitor this model" in text_of(page)
    fields = {"monitor-name": "production", "monitor-follow_alias": "", "monitor-follow_stage": "Production",
              "monitor-task": "classification", "monitor-id_column": "id", "monitor-timestamp_column": "timestamp",
              "monitor-prediction_column": "prediction", "monitor-target_column": "target",
              "monitor-batch_minutes": "60", "monitor-window_hours": "24",
              "monitor-schedule_minutes": "60"}  # fmt: skip
    response = client.post(action(model, "create-monitor"), fields, follow=True)
    monitor = Monitor.objects.get(model=model)
    assert response.redirect_chain[-1][0] == monitor.get_absolute_url()
    assert "Monitor production created. Upload its reference data." in messages_of(response)
    again = client.post(action(model, "create-monitor"), fields)
    assert again.status_code == 400 and Monitor.objects.filter(model=model).count() == 1


def test_an_admin_uploads_the_reference_through_the_form(client, admin_user, model):
    monitor = factories.monitor(model=model, actor=admin_user, reference_rows=0)
    client.force_login(admin_user)
    assert "none yet" in text_of(client.get(tab(model)))
    upload = factories.csv_upload(factories.monitoring_table(rows=500, seed=9), name="train.csv")
    response = client.post(
        action(model, "reference"), {"monitor": monitor.pk, "reference-file": upload}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response["HX-Redirect"] == tab(model, monitor=monitor.pk)
    monitor.refresh_from_db()
    assert monitor.reference.name == "train.csv" and monitor.reference.rows == 500
    page = client.get(response["HX-Redirect"])
    assert "Reference data train.csv (500 rows)" in " ".join(messages_of(page))
    assert re.search(r'<select name="schema-c\d+"[^>]*id="id_schema-c\d+"', page.content.decode())


def test_an_unreadable_reference_is_shown_on_the_form_and_nothing_stored(client, admin_user, model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    monitor = factories.monitor(model=model, actor=admin_user, reference_rows=0)
    client.force_login(admin_user)
    bad = SimpleUploadedFile("train.parquet", b"PAR1 not really parquet", content_type="application/octet-stream")
    response = client.post(action(model, "reference"), {"monitor": monitor.pk, "reference-file": bad})
    assert response.status_code == 400
    form = response.content.decode()[response.content.decode().index('id="reference-upload"') :]
    assert "invalid-feedback" in form[:4000] or "alert-danger" in form[:4000]
    assert ReferenceDataset.objects.filter(monitor=monitor).count() == 0


def test_an_admin_edits_column_types(client, admin_user, model, monitor):
    client.force_login(admin_user)
    page = client.get(tab(model))
    body = page.content.decode()
    names = dict(re.findall(r'<label for="id_schema-(c\d+)">([^<]+)</label>', body))
    fields = {f"schema-{key}": re.search(
        rf'<select name="schema-{key}".*?<option value="([a-z]+)" selected>', body, re.S
    ).group(1) for key in names}  # fmt: skip
    age = next(key for key, name in names.items() if name == "age")
    fields[f"schema-{age}"] = "categorical"
    response = client.post(action(model, "schema"), {"monitor": monitor.pk, **fields}, follow=True)
    assert "Column types saved" in " ".join(messages_of(response))
    monitor.refresh_from_db()
    assert monitor.schema["age"]["type"] == "categorical"


def test_an_admin_adds_edits_and_deletes_a_check(client, admin_user, model, monitor):
    client.force_login(admin_user)
    hook = RetrainingHook.objects.create(model=model, name="retrain", url="https://hooks.example.com/r")
    data = {"monitor": monitor.pk, "check-name": "Age drift", "check-kind": "column_drift", "check-scope": "batch",
            "check-column": "age", "check-rule": "", "check-bound": "", "check-severity": "error",
            "check-retraining": hook.pk, "check-enabled": "on"}  # fmt: skip
    response = client.post(action(model, "save-check"), data, follow=True)
    check = MonitorCheck.objects.get(monitor=monitor)
    assert "Check Age drift added." in messages_of(response)
    assert check.column == "age" and check.retraining == hook and check.severity == "error"
    assert f'id="check-{check.pk}"' in response.content.decode()

    edited = client.post(action(model, "save-check"), {**data, "check": check.pk, "check-severity": "warning"})
    assert edited.status_code == 302
    check.refresh_from_db()
    assert check.severity == "warning"

    refused = client.post(action(model, "save-check"), {**data, "check-kind": "quality", "check-rule": ""})
    assert refused.status_code == 400 and MonitorCheck.objects.filter(monitor=monitor).count() == 1

    client.post(action(model, "delete-check"), {"monitor": monitor.pk, "check": check.pk})
    assert not MonitorCheck.objects.filter(monitor=monitor).exists()


def test_a_new_retraining_hooks_generated_secret_is_shown_once_and_typed_ones_never(client, admin_user, model, monitor):
    client.force_login(admin_user)
    data = {"monitor": monitor.pk, "hook-name": "ci", "hook-kind": "generic", "hook-url": "https://hooks.example.com/ci",
            "hook-secret": "", "hook-token": "tok-123456", "hook-options": "", "hook-enabled": "on"}  # fmt: skip
    first = client.post(action(model, "save-hook"), data, follow=True)
    body = first.content.decode()
    secret = re.search(r'id="hook-secret-value" value="([^"]+)"|value="([^"]+)" id="hook-secret-value"', body)
    assert secret, "the generated signing secret is shown"
    assert "tok-123456" not in body
    assert "hook-secret-value" not in client.get(tab(model)).content.decode()
    hook = RetrainingHook.objects.get(model=model, name="ci")
    assert hook.token_encrypted and hook.secret_encrypted
    client.post(
        action(model, "save-hook"),
        {**data, "hook": hook.pk, "hook-token": "", "hook-url": "https://hooks.example.com/v2"},
    )
    hook.refresh_from_db()
    assert hook.url == "https://hooks.example.com/v2" and hook.token_encrypted


def test_an_operator_uploads_a_batch_and_viewers_post_nothing(client, viewer, operator, model, monitor):
    client.force_login(operator)
    upload = factories.parquet_upload(factories.monitoring_table(rows=200, seed=11, shift=2.0), name="monday.parquet")
    response = client.post(
        action(model, "upload-batch"), {"monitor": monitor.pk, "batch-file": upload, "batch-name": ""},
        HTTP_HX_REQUEST="true",
    )  # fmt: skip
    batch = MonitoringBatch.objects.get(monitor=monitor)
    assert response["HX-Redirect"] == batch.get_absolute_url()
    assert batch.name == "monday.parquet" and batch.source == "parquet" and batch.rows == 200
    assert client.post(action(model, "save-check"), {"monitor": monitor.pk}).status_code == 403
    wrong = factories.csv_upload(factories.monitoring_table(rows=50, seed=12).drop_columns(["age"]), name="x.csv")
    refused = client.post(action(model, "upload-batch"), {"monitor": monitor.pk, "batch-file": wrong})
    assert refused.status_code == 400 and "age" in text_of(refused)
    assert MonitoringBatch.objects.filter(monitor=monitor).count() == 1
    client.force_login(viewer)
    again = factories.csv_upload(factories.monitoring_table(rows=50, seed=13), name="y.csv")
    assert client.post(action(model, "upload-batch"), {"monitor": monitor.pk, "batch-file": again}).status_code == 403


def test_the_overview_shows_mlops_health(client, viewer, admin_user, model, monitor, batches):
    monitor_checks.save_check(monitor=monitor, actor=admin_user, name="Dataset drift", kind="dataset_drift")
    monitor_checks.evaluate_batch(batch=batches[2])
    assert Breach.objects.filter(monitor=monitor, resolved_at__isnull=True).count() == 1
    client.force_login(viewer)
    page = client.get("/")
    body = page.content.decode()
    assert re.search(r'data-stat="models-drifting">\s*1\s*<', body)
    assert re.search(r'data-stat="monitors-breached">\s*1\s*<', body)
    health = body[body.index('data-health="mlops"') :]
    assert f'href="{tab(model, monitor=monitor.pk)}"' in health[:2000]
    assert "churn / production: 1 open breach" in text_of_html(health[:2000])


def test_the_window_summary_merges_the_profiles_of_the_batches_in_the_window(client, viewer, model, monitor, batches):
    recent = timezone.now() - datetime.timedelta(hours=2)
    MonitoringBatch.objects.filter(pk__in=[b.pk for b in batches[1:]]).update(end=recent)
    MonitoringBatch.objects.filter(pk=batches[0].pk).update(end=recent - datetime.timedelta(days=3))
    client.force_login(viewer)
    window = re.search(r'id="window-drift">(.*?)</dd>', client.get(tab(model)).content.decode(), re.S).group(1)
    assert "2 batches, 800 rows merged" in window
    assert "age" in window
