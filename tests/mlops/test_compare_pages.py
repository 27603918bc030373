"""Comparing versions on the compare page: differences, best metrics, the chart."""

from __future__ import annotations

import re

import pytest

from tests.helpers import client_for

from . import factories
from .pages import json_script, text_of, text_of_html

pytestmark = pytest.mark.django_db


def test_compare_highlights_differences_and_marks_the_best_metric(viewer, make_model, operator):
    model = make_model("ranker", versions=0)
    for params, metrics in [
        ({"max_depth": "4", "seed": "1"}, {"auc": 0.80, "log_loss": 0.40, "rows": 1000}),
        ({"max_depth": "6", "seed": "1"}, {"auc": 0.85, "log_loss": 0.35, "rows": 1000}),
        ({"max_depth": "6", "seed": "1", "dropout": "0.2"}, {"auc": 0.83, "log_loss": 0.30, "rows": 1000}),
    ]:
        factories.model_version(model=model, actor=operator, source="s3://m", params=params, metrics=metrics)
    response = client_for(viewer).get("/mlops/models/ranker/compare/?v=1&v=2&v=3")
    assert response.status_code == 200
    body = response.content.decode()

    def row(table: str, key: str) -> str:
        section = re.search(rf'<table[^>]*id="compare-{table}".*?</table>', body, re.S).group(0)
        return re.search(
            rf"<tr class=\"[^\"]*\">\s*<th scope=\"row\"[^>]*><code[^>]*>{key}</code>.*?</tr>", section, re.S
        ).group(0)

    assert 'class="differs"' in row("params", "max_depth") and "differs" in text_of_html(row("params", "max_depth"))
    assert 'class="differs"' in row("params", "dropout")  # missing in two versions
    assert 'class=""' in row("params", "seed") and "≠" not in row("params", "seed")
    auc = row("metrics", "auc")
    assert "higher is better" in auc and re.search(r'class="text-end font-monospace best">0.85 <span[^>]*>★ best', auc)
    loss = row("metrics", "log_loss")
    assert "lower is better" in loss and re.search(r'best">0.3 <span[^>]*>★ best', loss)
    assert "+0.05" in auc and "-0.1" in loss
    assert "★ best" not in row("metrics", "rows") and 'class=""' in row("metrics", "rows")
    chart = json_script(response, "compare-chart")
    # One panel per metric, each with its own axis; one bar per version.
    titles = [a["text"] for a in chart["layout"]["annotations"]]
    assert titles == ["auc", "log_loss", "rows"]
    assert [trace["x"] for trace in chart["data"]] == [["v1", "v2", "v3"]] * 3
    assert chart["data"][0]["y"][1] == 0.85 and chart["data"][1]["y"][1] == 0.35 and chart["data"][2]["y"][1] == 1000
    assert 'data-chart="compare-chart"' in body and "vendor/plotly/plotly.min.js" in body
    assert "Parameters and metrics that differ: 4" in text_of(response)
    only = client_for(viewer).get("/mlops/models/ranker/compare/?v=1&v=2&v=3&diff=1")
    assert ">seed</code>" not in only.content.decode() and ">max_depth</code>" in only.content.decode()


def test_compare_needs_two_versions(viewer, churn):
    client = client_for(viewer)
    response = client.get("/mlops/models/churn/compare/?v=1")
    assert response.status_code == 200
    text = text_of(response)
    assert "Select two or more versions to compare (only version 1 was selected)." in text
    assert 'id="compare-chart"' not in response.content.decode()
    assert re.search(r'name="v" value="1" id="pick-1" checked', response.content.decode())
    text = text_of(client.get("/mlops/models/churn/compare/?v=1&v=9&v=x"))
    assert "churn has no version 9." in text and "“x” is not a version number." in text
    assert "Select two or more versions to compare" in text_of(client.get("/mlops/models/churn/compare/"))


def test_model_page_compare_form_sends_the_selected_versions(viewer, churn):
    body = client_for(viewer).get("/mlops/models/churn/").content.decode()
    form = re.search(
        r'<form method="get" action="(/mlops/models/churn/compare/)" id="compare-form".*?</form>', body, re.S
    )
    assert form
    assert re.findall(r'type="checkbox" name="v" value="(\d+)"', form.group(0)) == ["2", "1"]
    assert "Compare selected versions" in form.group(0)
