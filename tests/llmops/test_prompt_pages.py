"""Prompt pages: creating and finding prompts, labels, and the release gate that guards production."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from llmops import services
from llmops.models import LabelMove, Prompt, PromptLabel
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for

from . import factories
from .pages import text_of

pytestmark = pytest.mark.django_db


def test_operator_creates_a_prompt_from_the_list(operator):
    client = client_for(operator)
    response = client.post(
        reverse("llmops:prompts"),
        {"new-name": "support/triage.v2", "new-system": "You triage.", "new-user": "Ticket: {{ ticket }}",
         "new-model": "gpt-4o-mini"},
    )  # fmt: skip
    prompt = Prompt.objects.get(name="support/triage.v2")
    assert response.status_code == 302 and response["Location"] == prompt.get_absolute_url()
    version = prompt.versions.get()
    assert version.messages[0] == {"role": "system", "content": "You triage."}
    assert version.variables == ["ticket"]
    # The name with '/' and '.' routes to its page, its version and its diff.
    assert client.get(prompt.get_absolute_url()).status_code == 200
    assert client.get(version.get_absolute_url()).status_code == 200
    duplicate = client.post(reverse("llmops:prompts"), {"new-name": "support/triage.v2", "new-user": "x"})
    assert duplicate.status_code == 400
    assert re.search(r'id="id_new-name".*?a prompt named .*support/triage\.v2.* exists already',
                     html.unescape(duplicate.content.decode()), re.S)  # fmt: skip
    broken = client.post(reverse("llmops:prompts"), {"new-name": "broken", "new-user": "Hi {{ name"})
    assert broken.status_code == 400 and "messages[0].content" in text_of(broken)


def test_prompt_list_search_and_constant_queries(viewer, operator, capitals_dataset, llm):
    client = client_for(viewer)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("llmops:prompts")).status_code == 200
        return len(queries)

    def add(n: int) -> None:
        for _ in range(n):
            prompt = services.create_prompt(
                name=f"prompt-{Prompt.objects.count()}",
                actor=operator,
                messages=[{"role": "user", "content": "Capital of {{ country }}?"}],
            )
            version = prompt.versions.get()
            services.move_label(prompt=prompt, label="staging", version=version, actor=operator)
            factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)

    add(2)
    few = measure()
    add(4)
    assert few == measure()
    found = client.get(reverse("llmops:prompts"), {"q": "prompt-1"}, HTTP_HX_REQUEST="true")
    body = found.content.decode()
    assert "<html" not in body
    links = re.findall(r'<a class="cell-text" href="/llmops/prompts/([^"]+)/" title="[^"]*">prompt', body)
    assert links == ["prompt-1"]


def test_a_prompt_named_like_a_sub_page_is_still_reachable(viewer, operator):
    prompt = services.create_prompt(name="x/diff", actor=operator, messages=[{"role": "user", "content": "Hi"}])
    response = client_for(viewer).get(prompt.get_absolute_url())
    assert response.status_code == 200 and "x/diff" in text_of(response)
    assert client_for(viewer).get(reverse("llmops:prompt-version", args=["x/diff", 1])).status_code == 200


@pytest.fixture
def gated(version, capitals_dataset, admin_user):
    services.update_prompt(prompt=version.prompt, actor=admin_user, gate_dataset=capitals_dataset,
                           gate_min_pass_rate=0.9)  # fmt: skip
    return version


def test_operator_moves_a_label(operator, version):
    client = client_for(operator)
    url = reverse("llmops:prompt-action", args=[version.prompt.name, "label"])
    response = client.post(url, {"label-label": "staging", "label-version": "1"})
    assert response.status_code == 302
    assert PromptLabel.objects.get(prompt=version.prompt, name="staging").version == version
    page = text_of(client.get(version.prompt.get_absolute_url()))
    assert "moved staging to v1" in page
    client.post(reverse("llmops:prompt-action", args=[version.prompt.name, "delete-label"]), {"label": "staging"})
    assert not PromptLabel.objects.filter(prompt=version.prompt).exists()
    bad = client.post(url, {"label-label": "Not Valid", "label-version": "1"})
    assert bad.status_code == 400 and "lower-case letters" in text_of(bad)


def test_the_gate_refuses_production_and_says_why(operator, gated):
    response = client_for(operator).post(
        reverse("llmops:prompt-action", args=[gated.prompt.name, "label"]),
        {"label-label": "production", "label-version": "1"},
    )
    assert response.status_code == 409
    text = text_of(response)
    assert "Refused by the release gate." in text
    assert "No finished run of capitals v1 on the gate dataset 'capitals'" in text and "at least 90%" in text
    assert 'id="gate-refusal"' in response.content.decode()
    assert "Override the release gate" not in text, "only admins may override"
    assert not PromptLabel.objects.filter(name="production").exists()


def test_the_gate_lets_production_move_after_a_good_run(operator, gated, llm, capitals_dataset):
    run = factories.finished_run(version=gated, model=llm, dataset=capitals_dataset, actor=operator)
    assert run.pass_rate == 1.0
    page = text_of(client_for(operator).get(gated.prompt.get_absolute_url()))
    assert "passes (100.0%)" in page
    response = client_for(operator).post(
        reverse("llmops:prompt-action", args=[gated.prompt.name, "label"]),
        {"label-label": "production", "label-version": "1"},
    )
    assert response.status_code == 302
    assert PromptLabel.objects.get(name="production").version == gated


def test_an_admin_overrides_the_gate_with_a_reason(admin_user, gated):
    client = client_for(admin_user)
    url = reverse("llmops:prompt-action", args=[gated.prompt.name, "label"])
    refused = client.post(url, {"label-label": "production", "label-version": "1"})
    assert refused.status_code == 409
    assert "Override the release gate" in text_of(refused) and "you may override the gate" in text_of(refused)
    no_reason = client.post(url, {"label-label": "production", "label-version": "1", "label-override": "on"})
    assert no_reason.status_code == 400 and "say why the gate is overridden" in text_of(no_reason)
    done = client.post(url, {"label-label": "production", "label-version": "1", "label-override": "on",
                             "label-reason": "hotfix for outage"})  # fmt: skip
    assert done.status_code == 302
    move = LabelMove.objects.get(label="production")
    assert move.gate_overridden and move.reason == "hotfix for outage" and move.actor == admin_user
    page = text_of(client.get(gated.prompt.get_absolute_url()))
    assert "gate overridden “hotfix for outage”" in page
    assert AuditEntry.objects.filter(action="override_gate").exists()


def test_admin_sets_and_removes_the_gate(admin_user, version, capitals_dataset):
    client = client_for(admin_user)
    url = reverse("llmops:prompt-action", args=[version.prompt.name, "gate"])
    incomplete = client.post(url, {"gate-gate_dataset": capitals_dataset.pk, "gate-gate_min_pass_rate": ""})
    assert incomplete.status_code == 400 and "Give the pass rate the gate requires." in text_of(incomplete)
    client.post(url, {"gate-gate_dataset": capitals_dataset.pk, "gate-gate_min_pass_rate": "85"})
    version.prompt.refresh_from_db()
    assert version.prompt.gate_dataset == capitals_dataset and version.prompt.gate_min_pass_rate == 0.85
    assert "passing at least 85%" in text_of(client.get(version.prompt.get_absolute_url()))
    client.post(url, {"gate-gate_dataset": "", "gate-gate_min_pass_rate": ""})
    version.prompt.refresh_from_db()
    assert not version.prompt.has_gate


def test_operator_edits_the_description_and_is_told_about_a_label_that_is_gone(operator, version):
    client = client_for(operator)
    prompt = version.prompt
    saved = client.post(reverse("llmops:prompt-action", args=[prompt.name, "details"]),
                        {"details-description": "Capital cities"}, follow=True)  # fmt: skip
    assert "Description saved." in text_of(saved)
    prompt.refresh_from_db()
    assert prompt.description == "Capital cities"
    gone = client.post(reverse("llmops:prompt-action", args=[prompt.name, "delete-label"]), {"label": "canary"},
                       follow=True)  # fmt: skip
    assert "capitals has no label 'canary'." in text_of(gone)
    assert client.post(reverse("llmops:prompt-action", args=[prompt.name, "rename"])).status_code == 404
