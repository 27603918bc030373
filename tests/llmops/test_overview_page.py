"""The LLMOps overview: prompts with labels and scores, recent runs (live while one is active), charts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from llmops import services
from llmops.models import Provider
from tests.helpers import client_for

from . import factories
from .pages import json_script, text_of

pytestmark = pytest.mark.django_db


def test_overview_shows_prompts_with_labels_scores_runs_and_charts(viewer, finished_run, version, operator):
    services.move_label(prompt=version.prompt, label="production", version=version, actor=operator)
    response = client_for(viewer).get(reverse("llmops:index"))
    page = text_of(response)
    assert "capitals" in page and "production → v1" in page
    assert f"{finished_run.pass_rate * 100:.1f}%" in page
    assert "Completed" in page
    assert json_script(response, "llmops-pass-rates")["data"]
    assert json_script(response, "llmops-cost")["data"]
    # Links to everything.
    for name in ("llmops:prompts", "llmops:datasets", "llmops:runs", "llmops:providers", "llmops:prices"):
        assert f'href="{reverse(name)}"' in response.content.decode()


def test_overview_refreshes_its_run_list_while_a_run_is_active(viewer, version, llm, capitals_dataset, operator):
    services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm],
                        scorers=factories.names_the_city(), actor=operator)  # fmt: skip
    client = client_for(viewer)
    assert 'hx-trigger="every 2s"' in client.get(reverse("llmops:index")).content.decode()
    partial = client.get(reverse("llmops:index"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'id="recent-runs"' in partial and "Queued" in partial


def test_providers_and_index_use_constant_queries(viewer, admin_user, fake_llm):
    client = client_for(viewer)

    def measure(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    def add(n: int) -> None:
        for _ in range(n):
            provider = services.create_provider(name=f"p{Provider.objects.count()}", base_url=fake_llm.base_url,
                                                actor=admin_user)  # fmt: skip
            for m in range(3):
                services.add_model(provider=provider, name=f"m{m}", actor=admin_user)

    add(1)
    few = measure(reverse("llmops:providers")), measure(reverse("llmops:index"))
    add(5)
    assert (measure(reverse("llmops:providers")), measure(reverse("llmops:index"))) == few
