"""Run pages: starting a run (and its scorers editor), scoring imported outputs, live progress, results, charts,
cancel, downloads."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from llmops import services
from llmops.models import EvalRun
from tests.helpers import client_for

from . import factories
from .pages import json_script, run_form_data, text_of, text_of_fragment

pytestmark = pytest.mark.django_db


def test_new_run_form_lists_versions_with_labels_and_starts_a_run(operator, version, llm, capitals_dataset):
    services.move_label(prompt=version.prompt, label="staging", version=version, actor=operator)
    client = client_for(operator)
    page = client.get(reverse("llmops:run-new"), {"version": version.pk}).content.decode()
    assert "capitals v1  [staging]" in page
    assert re.search(rf'name="prompt_versions" value="{version.pk}" id="[^"]+" checked>', page), "from ?version="
    assert re.search(rf'name="models" value="{llm.pk}" id="[^"]+" checked>', page), "the version's default model"
    data = run_form_data(capitals_dataset, [version], [llm], factories.names_the_city(), concurrency="2")
    response = client.post(reverse("llmops:run-new"), data)
    run = EvalRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.total == 4 and run.concurrency == 2 and run.created_by == operator
    assert run.scorers == [{"type": "rouge-l", "config": {}, "weight": 1.0, "threshold": 0.3}]


def test_scorer_editor_adds_rows_and_reports_errors_on_the_row(operator, version, llm, capitals_dataset):
    client = client_for(operator)
    data = run_form_data(capitals_dataset, [version], [llm], factories.names_the_city())
    added = client.post(reverse("llmops:run-new"), {**data, "editor": "add-scorer"}, HTTP_HX_REQUEST="true")
    body = added.content.decode()
    assert added.status_code == 200 and 'name="scorers-TOTAL_FORMS" value="2"' in body
    assert 'name="scorers-1-option-value"' in body, "a new row starts with its scorer's option fields"
    changed = {**data, "scorers-0-type": "regex", "scorers-0-config": '{"value": ""}', "editor": "refresh"}
    refreshed = html.unescape(client.post(reverse("llmops:run-new"), changed).content.decode())
    assert '{"pattern": ""}' in refreshed, "the new type's options replace the old type's"
    assert "The pattern matches somewhere in the output" in refreshed
    bad = run_form_data(capitals_dataset, [version], [llm],
                        [factories.names_the_city()[0], {"type": "regex", "config": {"pattern": "("}}])  # fmt: skip
    response = client.post(reverse("llmops:run-new"), bad)
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    row = body[body.index('id="scorer-1"') :]
    assert "scorers[1].config.pattern" in row[: row.index("Remove scorer 2")]
    assert not EvalRun.objects.exists()
    judge = run_form_data(capitals_dataset, [version], [llm], [{"type": "llm-rubric", "config": {"rubric": "Polite"}}])
    response = client.post(reverse("llmops:run-new"), judge)
    assert response.status_code == 400 and "llm-rubric scorers need a judge model" in text_of(response)


def test_run_page_shows_progress_summary_results_and_charts(viewer, finished_run, llm, fake_llm):
    client = client_for(viewer)
    response = client.get(finished_run.get_absolute_url())
    body = response.content.decode()
    text = text_of(response)
    assert response.status_code == 200
    assert "Completed" in text and "4 of 4 results" in text and 'aria-valuenow="100"' in body
    assert "every 1s" not in body, "a finished run is not polled"
    assert text.count("PASS") == 4
    assert "The capital is Paris." in text
    summary = body[body.index('id="run-summary"') :]
    assert "100.0%" in text_of_fragment(summary[: summary.index("</table>")])
    assert json_script(response, "run-chart-scores")["data"]
    assert json_script(response, "run-chart-latency")["data"]
    cost = json_script(response, "run-chart-cost")
    assert cost["data"][0]["x"] == ["test-model"]


def test_run_progress_is_polled_until_the_run_finishes(viewer, version, llm, capitals_dataset, operator):
    run = services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm],
                              scorers=factories.names_the_city(), actor=operator)  # fmt: skip
    client = client_for(viewer)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'hx-trigger="every 1s"' in page and "run-finished from:body" in page
    # The results table refreshes itself too, with its filter, while the run works.
    assert re.search(r'<div id="run-results" hx-get="[^"]*" hx-trigger="every 3s"', page)
    table = client.get(run.get_absolute_url(), {"show": "failed"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-results")
    assert f'hx-get="{run.get_absolute_url()}?show=failed" hx-trigger="every 3s"' in table.content.decode()
    progress = reverse("llmops:run-progress", args=[run.pk])
    polled = client.get(progress, {"polling": "1"}, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in polled.content.decode() and "HX-Trigger" not in polled
    assert "0 of 4 results" in text_of(polled) and "waiting for a worker" in text_of(polled)
    factories.run_now(run)
    done = client.get(progress, {"polling": "1"}, HTTP_HX_REQUEST="true")
    assert "every 1s" not in done.content.decode()
    assert done["HX-Trigger"] == "run-finished"
    assert 'aria-valuenow="100"' in done.content.decode()
    report = client.get(run.get_absolute_url(), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-report")
    assert "<html" not in report.content.decode() and 'id="run-summary"' in report.content.decode()
    assert 'id="run-chart-scores"' in report.content.decode()
    assert "every 3s" not in report.content.decode(), "a finished run's table stops refreshing"


def test_results_filter_failed_and_errors(viewer, version, llm, capitals_dataset, operator, fake_llm):
    fake_llm.answers["capital of Japan"] = "I am not sure."
    fake_llm.fail(1, status=400, message="context too long")
    run = factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)
    client = client_for(viewer)
    url = run.get_absolute_url()
    failed = client.get(url, {"show": "failed"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-results")
    rows = re.findall(r'<tr id="item-(\d+)"', failed.content.decode())
    assert "<html" not in failed.content.decode()
    assert rows == ["3"], "only Japan failed"
    assert "I am not sure." in text_of(failed)
    errors = client.get(run.get_absolute_url(), {"show": "errors"})
    assert "HTTP 400: context too long" in text_of(errors)
    assert len(re.findall(r'<tr id="item-(\d+)"', errors.content.decode())) == 1


def test_operator_cancels_a_queued_run(operator, version, llm, capitals_dataset):
    run = services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm],
                              scorers=factories.names_the_city(), actor=operator)  # fmt: skip
    client = client_for(operator)
    assert "Cancel run" in client.get(run.get_absolute_url()).content.decode()
    client.post(reverse("llmops:run-cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "Cancel run" not in client.get(run.get_absolute_url()).content.decode()


def test_run_list_shows_progress_and_uses_constant_queries(viewer, version, llm, capitals_dataset, operator):
    client = client_for(viewer)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("llmops:runs")).status_code == 200
        return len(queries)

    factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)
    few = measure()
    for _ in range(4):
        factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)
    services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm],
                        scorers=factories.names_the_city(), actor=operator)  # fmt: skip
    assert measure() == few
    page = client.get(reverse("llmops:runs")).content.decode()
    assert 'hx-trigger="every 2s"' in page, "the list refreshes while a run is queued"
    assert page.count('role="progressbar"') == 6
    filtered = client.get(reverse("llmops:runs"), {"status": "queued"}, HTTP_HX_REQUEST="true").content.decode()
    assert len(re.findall(r'<tr id="run-\d+"', filtered)) == 1


def test_score_imported_outputs(operator, capitals_dataset):
    client = client_for(operator)
    url = reverse("llmops:run-score")
    assert "Score outputs" in client.get(url).content.decode()
    data = b"country,expected_output,output\nFrance,Paris,It is Paris.\nItaly,Rome,Milan\n"
    form = {"name": "prod logs", "dataset": capitals_dataset.pk, "scorers-TOTAL_FORMS": "1",
            "scorers-INITIAL_FORMS": "0", "scorers-0-type": "rouge-l", "scorers-0-config": "{}",
            "scorers-0-weight": "1", "scorers-0-threshold": "0.3"}  # fmt: skip
    response = client.post(url, {**form, "file": SimpleUploadedFile("out.csv", data)})
    run = EvalRun.objects.get()
    assert response.status_code == 302 and run.kind == "score" and run.total == 2
    factories.run_now(run)
    page = text_of(client.get(run.get_absolute_url()))
    assert "PASS" in page and "FAIL" in page and "Milan" in page
    bad = client.post(url, {**form, "file": SimpleUploadedFile("out.csv", b"country,output\nFrance,Paris\nSpain\n")})
    assert bad.status_code == 400 and EvalRun.objects.count() == 1
    assert "Nothing was scored" in text_of(bad)


def test_run_results_download_as_csv_and_jsonl(viewer, finished_run):
    client = client_for(viewer)
    url = reverse("llmops:run-export", args=[finished_run.pk])
    response = client.get(url, {"format": "csv"})
    assert response["Content-Disposition"] == f'attachment; filename="run-{finished_run.pk}-results.csv"'
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("item,column,input,expected_output,output,passed,score")
    assert len(lines) == 5 and "The capital is Paris." in lines[1]
    records = [
        json.loads(line) for line in b"".join(client.get(url, {"format": "jsonl"}).streaming_content).splitlines()
    ]
    assert [r["item"] for r in records] == [1, 2, 3, 4]
    assert records[0]["column"] == "capitals v1 x test-model" and records[0]["passed"] is True
