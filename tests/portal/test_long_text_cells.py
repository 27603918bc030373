"""MLOps and LLMOps tables cut long user text (names, descriptions, tags ...) and keep the whole of it in a title.

A cell's text is cut by the `.cell-text` clamp (three lines) or the one-line `.label-chip`
(static/css/portal.css), and hovering it shows the title: the text as stored, to the last character.
tests/e2e/test_long_text.py checks the same rule for AIOps in a browser.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from llmops import services as llmops_services
from mlops import services as mlops_services
from tests.helpers import client_for
from tests.llmops import factories as llmops_factories

pytestmark = pytest.mark.django_db

CUT = {"cell-text", "label-chip", "text-truncate"}


class _Titles(HTMLParser):
    """The elements of one table that carry a title: (their classes, the title)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth, self.found = table_id, 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and (self.depth or attributes.get("id") == self.table_id):
            self.depth += 1
        if self.depth and attributes.get("title") is not None:
            self.found.append((set((attributes.get("class") or "").split()), attributes["title"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1


def titles(response, table_id: str, cut: bool = True) -> set[str]:
    """The titles in `<table id=table_id>` of the page: of its cut cells and chips only, unless `cut` is False."""
    assert response.status_code == 200
    assert re.search(rf'<table[^>]* id="{table_id}"', response.content.decode()), f"no table #{table_id}"
    parser = _Titles(table_id)
    parser.feed(response.content.decode())
    return {title for classes, title in parser.found if not cut or classes & CUT}


def long(word: str, length: int, sep: str = " ") -> str:
    """`word` repeated to exactly `length` characters, ending in "z" (so a cut one is told apart)."""
    return (f"{word}{sep}" * length)[: length - 1] + "z"


def test_mlops_tables_cut_long_names_tags_and_reasons_and_keep_them_whole(operator, admin_user):
    name, team, alias = long("churn", 256), long("risk", 100), long("champion", 255, "-")
    value, reason, param = long("payments", 300), long("because", 300), long("grid", 300)
    model = mlops_services.create_model(name=name, owner_team=team, tags={"domain": value}, actor=operator)
    first = mlops_services.create_version(
        model=model, source="s3://m/1", run_id="r" * 32, params={"space": param}, actor=operator
    )
    mlops_services.create_version(model=model, source="s3://m/2", params={"space": "small"}, actor=operator)
    mlops_services.set_alias(model=model, alias=alias, version=first, actor=operator)
    mlops_services.request_promotion(version=first, reason=reason, actor=operator)
    client = client_for(admin_user)

    listed = titles(client.get("/mlops/"), "models")
    assert {name, team, f"@{alias} → v1", f"domain={value}"} <= listed
    page = client.get(model.get_absolute_url())
    assert f"@{alias}" in titles(page, "versions") and "r" * 32 in titles(page, "versions", cut=False)
    assert name in titles(client.get("/mlops/approvals/"), "pending-requests")
    assert reason in titles(client.get("/mlops/approvals/"), "pending-requests")
    assert param in titles(client.get(f"{model.get_absolute_url()}versions/1/"), "params")
    assert param in titles(client.get(f"{model.get_absolute_url()}compare/?v=1&v=2"), "compare-params")


def test_llmops_tables_cut_long_names_and_descriptions_and_keep_them_whole(operator, admin_user):
    prompt_name, dataset_name, run_name = long("capitals", 200, "-"), long("golden", 200, "-"), long("nightly", 200)
    description, commit = long("Asks", 300), long("Shorter", 500)
    provider_name, model_name, tag = long("local", 100, "-"), long("gpt", 90, "-"), long("geo", 200)
    # The model's name is the longest that a run's column label ("<prompt> v1 x <model>", 300 at most) still takes.
    provider = llmops_factories.provider(base_url="http://127.0.0.1:9/v1", name=provider_name, actor=admin_user)
    llm = llmops_factories.model(provider=provider, name=model_name, actor=admin_user)
    prompt = llmops_services.create_prompt(
        name=prompt_name, description=description, messages=llmops_factories.CAPITALS_MESSAGES,
        commit_message=commit, actor=operator,
    )  # fmt: skip
    dataset = llmops_services.create_dataset(name=dataset_name, description=description, actor=operator)
    llmops_services.add_item(dataset=dataset, input={"country": "France"}, expected_output="Paris", tags=[tag],
                             actor=operator)  # fmt: skip
    llmops_factories.run(version=prompt.versions.get(), model=llm, dataset=dataset, name=run_name, actor=operator)
    llmops_services.set_price(model_name=model_name, input_per_million=1, output_per_million=2, actor=admin_user)
    client = client_for(admin_user)

    assert {prompt_name, description} <= titles(client.get("/llmops/prompts/"), "prompts")
    assert prompt_name in titles(client.get("/llmops/"), "overview-prompts")
    assert run_name in titles(client.get("/llmops/"), "recent-runs-table")
    assert {dataset_name, description} <= titles(client.get("/llmops/datasets/"), "datasets")
    assert tag in titles(client.get(dataset.get_absolute_url()), "items")
    assert run_name in titles(client.get("/llmops/runs/"), "runs")
    assert commit in titles(client.get(prompt.get_absolute_url()), "versions")
    version_runs = titles(client.get(prompt.versions.get().get_absolute_url()), "version-runs")
    assert {dataset_name, f"{provider_name}/{model_name}"} <= set(version_runs)
    assert {provider_name, model_name} <= titles(client.get("/llmops/providers/"), "providers")
    assert model_name in titles(client.get(f"/llmops/providers/{provider.pk}/"), "models")
    assert model_name in titles(client.get("/llmops/prices/"), "prices")
