"""The model list: registering a model, search, filters, sorting and paging."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mlops import services
from mlops.models import RegisteredModel
from tests.helpers import client_for

from . import factories
from .factories import version
from .pages import messages_of, text_of, text_of_html

pytestmark = pytest.mark.django_db


def test_operator_registers_a_model_with_tags_and_policy(operator):
    client = client_for(operator)
    assert "Register model" in text_of(client.get("/mlops/"))
    response = client.post(
        "/mlops/",
        {
            "new-name": "fraud v2.1 - eu",
            "new-description": "Scores **card** payments.",
            "new-owner_team": "risk",
            "new-tags": "domain=payments\n\ntier = 1",
            "new-approval_required": "on",
            "new-protected_aliases": "champion, prod",
            "new-archive_on_promotion": "on",
        },
    )
    model = RegisteredModel.objects.get(name="fraud v2.1 - eu")
    assert response.status_code == 302 and response["Location"] == "/mlops/models/fraud%20v2.1%20-%20eu/"
    assert model.owner_team == "risk" and model.approval_required and model.protected_aliases == ["champion", "prod"]
    assert dict(model.tags.values_list("key", "value")) == {"domain": "payments", "tier": "1"}
    page = client.get(response["Location"])
    assert "Registered model fraud v2.1 - eu." in " ".join(messages_of(page))
    assert "<strong>card</strong>" in page.content.decode()


def test_registration_problems_are_shown_on_the_form(operator, churn):
    client = client_for(operator)
    response = client.post("/mlops/", {"new-name": "churn", "new-archive_on_promotion": "on"})
    assert response.status_code == 400
    assert "Registered Model (name=churn) already exists." in text_of(response)
    response = client.post("/mlops/", {"new-name": "x", "new-tags": "ok=1\nnot a tag"})
    assert response.status_code == 400
    assert "Line 2 (“not a tag”): expected key=value." in text_of(response)
    response = client.post("/mlops/", {"new-name": "y", "new-protected_aliases": "v1"})
    assert "'latest' and v<number> are reserved" in text_of(response)
    # What was typed stays in the form, and the form is open.
    assert re.search(r'<section class="collapse show[^"]*" id="register-model"', response.content.decode())
    assert 'value="y"' in response.content.decode()
    assert RegisteredModel.objects.count() == 1


def test_list_rows_show_latest_version_stages_aliases_tags(viewer, churn, operator):
    services.transition_stage(version=version(churn, 1), stage="Production", actor=operator)
    services.transition_stage(version=version(churn, 2), stage="Staging", actor=operator)
    services.set_alias(model=churn, alias="champion", version=version(churn, 1), actor=operator)
    services.set_model_tag(model=churn, key="domain", value="retention", actor=operator)
    factories.registered_model(name="empty", versions=0, actor=operator)
    response = client_for(viewer).get("/mlops/")
    row = re.search(rf'<tr id="model-{churn.pk}">.*?</tr>', response.content.decode(), re.S).group(0)
    row_text = text_of_html(row)
    assert "Version 2" in row_text and "2 versions" in row_text
    assert "Production v1" in row_text and "Staging v2" in row_text
    assert "@champion → v1" in row_text and "domain=retention" in row_text
    assert "ago" in row_text
    assert "no versions" in text_of(response)
    assert "2 models" in text_of(response)


def test_pending_approvals_panel_links_to_the_queue(viewer, churn, operator):
    services.request_promotion(version=version(churn, 2), actor=operator)
    response = client_for(viewer).get("/mlops/")
    assert "1 pending promotion request" in text_of(response)
    panel = re.search(
        r'<section class="card mb-3" aria-labelledby="pending-h">.*?</section>', response.content.decode(), re.S
    )
    assert 'href="/mlops/approvals/"' in panel.group(0)


@pytest.fixture
def catalogue(make_model, operator):
    """Four models with teams, tags and stages to search."""
    churn = make_model("churn", versions=3, owner_team="growth")
    fraud = make_model("fraud-detector", versions=1, owner_team="risk")
    make_model("fraud.rules", versions=0, owner_team="risk")
    ranker = make_model("search ranker", versions=2, owner_team="search")
    services.set_model_tag(model=fraud, key="domain", value="payments", actor=operator)
    services.set_model_tag(model=ranker, key="domain", value="search", actor=operator)
    services.transition_stage(version=version(churn, 1), stage="Staging", actor=operator)
    services.transition_stage(version=version(ranker, 2), stage="Production", actor=operator)
    return churn


def names_in(response) -> list[str]:
    link = r'<a class="fw-semibold cell-text" href="/mlops/models/[^"]+" title="[^"]*">([^<]+)</a>'
    return re.findall(link, response.content.decode())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["churn", "fraud-detector", "fraud.rules", "search ranker"]),
        ("q=FRAUD", ["fraud-detector", "fraud.rules"]),
        ("q=ranker", ["search ranker"]),
        ("q=domain%3Dpayments", ["fraud-detector"]),
        ("q=domain+%3D+search", ["search ranker"]),
        ("q=domain%3D", ["fraud-detector", "search ranker"]),
        ("team=risk", ["fraud-detector", "fraud.rules"]),
        ("stage=Production", ["search ranker"]),
        ("stage=Staging&team=growth", ["churn"]),
        ("stage=Archived", []),
        ("sort=-name", ["search ranker", "fraud.rules", "fraud-detector", "churn"]),
        ("sort=-versions", ["churn", "search ranker", "fraud-detector", "fraud.rules"]),
        ("sort=versions", ["fraud.rules", "fraud-detector", "search ranker", "churn"]),
    ],
)
def test_list_search_filters_and_sorting(viewer, catalogue, query, expected):
    assert names_in(client_for(viewer).get(f"/mlops/?{query}")) == expected


def test_list_filter_on_a_team_that_is_gone_is_named_and_ignored(viewer, catalogue):
    response = client_for(viewer).get("/mlops/?team=disbanded")
    assert names_in(response) == names_in(client_for(viewer).get("/mlops/")) != []
    assert "Filter team: “disbanded” — not a value it knows; the allowed values are" in text_of(response)


def test_list_filter_all_means_no_filter(viewer, catalogue):
    response = client_for(viewer).get("/mlops/?team=all&stage=all")
    assert names_in(response) == names_in(client_for(viewer).get("/mlops/")) != []
    assert "filter-problem" not in response.content.decode()


def test_list_sorts_by_last_update(viewer, catalogue, operator):
    services.set_model_tag(model=RegisteredModel.objects.get(name="fraud.rules"), key="k", value="v", actor=operator)
    assert names_in(client_for(viewer).get("/mlops/?sort=-updated"))[0] == "fraud.rules"
    assert names_in(client_for(viewer).get("/mlops/?sort=updated"))[-1] == "fraud.rules"


def test_list_pages(viewer, catalogue, monkeypatch):
    monkeypatch.setattr("mlops.views.model_list.MODEL_PAGE_SIZE", 3)
    client = client_for(viewer)
    first = client.get("/mlops/?team=&sort=name")
    assert names_in(first) == ["churn", "fraud-detector", "fraud.rules"]
    assert "Page 1 of 2 (4)" in text_of(first)
    assert 'href="?team=&amp;sort=name&amp;page=2"' in first.content.decode()
    assert names_in(client.get("/mlops/?team=&sort=name&page=2")) == ["search ranker"]


def test_search_form_keeps_the_query_and_htmx_gets_only_the_table(viewer, catalogue):
    client = client_for(viewer)
    page = client.get("/mlops/?q=fraud&team=risk").content.decode()
    assert re.search(r'name="q"[^>]*value="fraud"', page)
    assert re.search(r'<option value="risk" selected>', page)
    partial = client.get("/mlops/?q=fraud", HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert 'id="models"' in body and "<html" not in body and 'id="model-search"' not in body
    assert "HX-Request" in partial["Vary"]
    assert "No models match." in text_of(client.get("/mlops/?q=nothing-like-this"))


def test_list_uses_a_constant_number_of_queries(viewer, make_model, operator, django_assert_max_num_queries):
    client = client_for(viewer)

    def populate(start: int, count: int) -> None:
        for i in range(start, start + count):
            model = make_model(f"model-{i:02}", versions=2, owner_team=f"team-{i % 3}")
            services.set_model_tag(model=model, key="domain", value=f"d{i}", actor=operator)
            services.set_alias(model=model, alias="champion", version=version(model, 2), actor=operator)
            services.transition_stage(version=version(model, 1), stage="Production", actor=operator)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/mlops/").status_code == 200
        return len(queries)

    populate(0, 2)
    few = measure()
    populate(2, 20)
    many = measure()
    assert few == many
    assert len(names_in(client.get("/mlops/"))) == 22
    with django_assert_max_num_queries(few):
        client.get("/mlops/?q=model&team=team-1&stage=Production&sort=-versions")
