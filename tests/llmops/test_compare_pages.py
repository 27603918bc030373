"""The compare page: regressions and improvements item by item, matching across snapshots, two columns of one run."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from llmops import services
from tests.helpers import client_for

from . import factories
from .pages import json_script, text_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def regression(version, llm, capitals_dataset, operator, fake_llm):
    """Two runs of the same version: Japan answered right before, wrong now."""
    before = factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)
    fake_llm.answers["capital of Japan"] = "The capital is Kyoto."
    fake_llm.answers["capital of Spain"] = "Madrid is the capital."
    after = factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)
    return before, after


def test_compare_highlights_a_regression(viewer, regression):
    before, after = regression
    client = client_for(viewer)
    run_page = client.get(after.get_absolute_url()).content.decode()
    link = f"{reverse('llmops:compare')}?a={before.pk}&amp;b={after.pk}"
    assert link in run_page and "Compare with previous run" in run_page
    response = client.get(html.unescape(link))
    body = response.content.decode()
    assert response.status_code == 200
    rows = re.findall(r'<tr class="change-(\w+)">', body)
    assert rows == ["same", "same", "same", "regression"]
    regressed = body[body.index('<tr class="change-regression">') :]
    regressed = regressed[: regressed.index("</tr>")]
    assert '<span class="badge change-regression">regression</span>' in regressed
    assert "The capital is <del>Tokyo</del>." in regressed and "The capital is <ins>Kyoto</ins>." in regressed
    assert re.search(r'data-count="regressions">1<', body) and re.search(r'data-count="improvements">0<', body)
    assert "100.0% → 75.0%" in text_of(response)
    assert "same dataset snapshot" in text_of(response)
    assert "output changed" in text_of(response)  # Spain's answer changed but still passes
    assert json_script(response, "compare-chart-scores")["data"]
    assert len(json_script(response, "compare-chart-latency")["data"]) == 2
    assert json_script(response, "compare-chart-cost")["data"][0]["x"] == ["A: test-model", "B: test-model"]
    only = client.get(reverse("llmops:compare"), {"a": before.pk, "b": after.pk, "show": "changed"})
    assert re.findall(r'<tr class="change-(\w+)">', only.content.decode()) == ["regression"]
    swapped = client.get(reverse("llmops:compare"), {"a": after.pk, "b": before.pk})
    assert re.findall(r'<tr class="change-(\w+)">', swapped.content.decode()).count("improvement") == 1


def test_compare_matches_items_by_dataset_item_when_the_snapshots_differ(viewer, regression, operator, fake_llm):
    before, after = regression
    fake_llm.answers["capital of Japan"] = "The capital is Tokyo."
    dataset = before.dataset
    services.delete_item(item=dataset.items.get(input={"country": "France"}), actor=operator)
    services.add_item(dataset=dataset, actor=operator, input={"country": "Peru"}, expected_output="Lima")
    version = before.columns.get().prompt_version
    third = factories.finished_run(version=version, model=before.columns.get().model, dataset=dataset, actor=operator)
    response = client_for(viewer).get(reverse("llmops:compare"), {"a": after.pk, "b": third.pk})
    text = text_of(response)
    assert "dataset item (the runs used different snapshots)" in text
    assert "only in A" in text and "only in B" in text
    body = response.content.decode()
    assert re.search(r'data-count="improvements">1<', body), "Japan passes again"


def test_compare_two_columns_of_one_run(viewer, version, llm, capitals_dataset, operator, provider, admin_user):
    other = services.add_model(provider=provider, name="other-model", actor=admin_user)
    run = factories.run_now(services.create_run(dataset=capitals_dataset, prompt_versions=[version],
                                                models=[llm, other], scorers=factories.names_the_city(),
                                                actor=operator))  # fmt: skip
    client = client_for(viewer)
    assert "Compare columns" in client.get(run.get_absolute_url()).content.decode()
    response = client.get(reverse("llmops:compare"), {"a": run.pk, "b": run.pk, "ca": 0, "cb": 1})
    text = text_of(response)
    assert "capitals v1 x test-model" in text and "capitals v1 x other-model" in text
    assert "Items matched by the same run" in text


def test_compare_without_a_previous_run_asks_for_one(viewer, finished_run):
    response = client_for(viewer).get(reverse("llmops:compare"), {"b": finished_run.pk})
    assert "has no earlier run on its dataset" in text_of(response)
    assert client_for(viewer).get(reverse("llmops:compare"), {"a": 999, "b": 998}).status_code == 404
