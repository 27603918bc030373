"""The LLMOps pages as people use them: what they see, and what their clicks and forms change."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from llmops import engine, services
from llmops.models import (
    Dataset,
    DatasetItem,
    EvalRun,
    LabelMove,
    LLMModel,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
)
from opsportal.audit.models import AuditEntry
from opsportal.encryption import decrypt

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, whitespace collapsed."""
    body = response.content.decode()
    body = re.sub(r"<script\b.*?</script>", " ", body, flags=re.S)
    body = re.sub(r"<style\b.*?</style>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def json_script(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))


def run_now(run: EvalRun) -> EvalRun:
    assert engine.execute(run.pk) == "completed"
    run.refresh_from_db()
    return run


def capitals_run(version, llm, dataset, user, scorers=None) -> EvalRun:
    """A finished run whose scorer passes when the answer names the expected city."""
    run = services.create_run(
        dataset=dataset,
        prompt_versions=[version],
        models=[llm],
        scorers=scorers or names_the_city(),
        actor=user,
    )
    return run_now(run)


def names_the_city() -> list[dict]:
    """Passes when the answer names the expected city ("The capital is Paris." against "Paris")."""
    return [{"type": "rouge-l", "threshold": 0.3}]


@pytest.fixture
def version(capitals_prompt):
    return capitals_prompt.versions.get()


@pytest.fixture
def finished_run(version, llm, capitals_dataset, operator):
    return capitals_run(version, llm, capitals_dataset, operator)


# --- Every page renders; roles -------------------------------------------------------------------------------------


@pytest.fixture
def every_page(finished_run, version, capitals_dataset, provider):
    prompt = version.prompt
    services.create_version(
        prompt=prompt, actor=None, messages=[{"role": "user", "content": "Capital of {{ country }}?"}]
    )
    item = capitals_dataset.items.first()
    return [
        reverse("llmops:index"),
        reverse("llmops:providers"),
        reverse("llmops:provider", args=[provider.pk]),
        reverse("llmops:prices"),
        reverse("llmops:prompts"),
        reverse("llmops:prompt", args=[prompt.name]),
        reverse("llmops:prompt-version", args=[prompt.name, 1]),
        reverse("llmops:prompt-diff", args=[prompt.name]),
        reverse("llmops:datasets"),
        reverse("llmops:dataset", args=[capitals_dataset.pk]),
        reverse("llmops:dataset-item", args=[capitals_dataset.pk, item.pk]),
        reverse("llmops:runs"),
        reverse("llmops:run", args=[finished_run.pk]),
        reverse("llmops:compare"),
        f"{reverse('llmops:compare')}?a={finished_run.pk}&b={finished_run.pk}",
    ]


def test_every_page_renders_for_a_viewer(viewer, every_page):
    client = client_for(viewer)
    for url in every_page:
        response = client.get(url)
        assert response.status_code == 200, url
        # The sub-navigation is on every page, with the current section marked.
        assert 'aria-label="LLMOps sections"' in response.content.decode(), url
        assert 'aria-current="page"' in response.content.decode(), url


def test_anonymous_visitors_are_sent_to_log_in(every_page):
    for url in every_page:
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_viewers_cannot_open_forms_that_change_things(viewer, version, capitals_dataset):
    client = client_for(viewer)
    for url in [
        reverse("llmops:run-new"),
        reverse("llmops:run-score"),
        reverse("llmops:prompt-new-version", args=[version.prompt.name]),
        reverse("llmops:dataset-import", args=[capitals_dataset.pk]),
    ]:
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize(
    ("who", "url_name", "data"),
    [
        ("viewer", "llmops:prompts", {"new-name": "x", "new-user": "Hi"}),
        ("viewer", "llmops:datasets", {"new-name": "x"}),
        ("operator", "llmops:providers", {"new-name": "p", "new-base_url": "http://x/v1"}),
        ("operator", "llmops:prices", {"model_name": "m", "input_per_million": "1", "output_per_million": "1"}),
    ],
)
def test_writes_need_the_role(request, who, url_name, data):
    user = request.getfixturevalue(who)
    response = client_for(user).post(reverse(url_name), data)
    assert response.status_code == 403
    assert not Prompt.objects.filter(name="x").exists() and not Dataset.objects.filter(name="x").exists()
    assert not Provider.objects.filter(name="p").exists()


def test_operators_cannot_change_providers_the_gate_or_test_connections(operator, provider, version):
    client = client_for(operator)
    assert client.post(reverse("llmops:provider-action", args=[provider.pk, "delete"])).status_code == 403
    assert client.post(reverse("llmops:provider-test", args=[provider.pk]), {"model_name": "m"}).status_code == 403
    gate = reverse("llmops:prompt-action", args=[version.prompt.name, "gate"])
    assert client.post(gate, {"gate-gate_min_pass_rate": "50"}).status_code == 403
    page = client.get(reverse("llmops:provider", args=[provider.pk])).content.decode()
    assert "Edit provider" not in page and "Test connection" not in page


# --- Overview ------------------------------------------------------------------------------------------------------


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
                        scorers=names_the_city(), actor=operator)  # fmt: skip
    client = client_for(viewer)
    assert 'hx-trigger="every 2s"' in client.get(reverse("llmops:index")).content.decode()
    partial = client.get(reverse("llmops:index"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'id="recent-runs"' in partial and "Queued" in partial


# --- Providers and prices ------------------------------------------------------------------------------------------


def test_admin_adds_a_provider_and_its_key_is_never_shown(admin_user, fake_llm):
    client = client_for(admin_user)
    response = client.post(
        reverse("llmops:providers"),
        {"new-name": "vllm", "new-base_url": "http://vllm:8000/v1", "new-api_key": "sk-secret-4242",
         "new-timeout_seconds": "30", "new-max_concurrency": "4", "new-max_retries": "2"},
    )  # fmt: skip
    provider = Provider.objects.get(name="vllm")
    assert response.status_code == 302 and response["Location"] == reverse("llmops:provider", args=[provider.pk])
    assert decrypt(provider.api_key) == "sk-secret-4242"
    page = client.get(response["Location"]).content.decode()
    assert "sk-secret-4242" not in page
    assert "set (stored encrypted, never shown)" in text_of(client.get(response["Location"]))
    assert 'name="edit-api_key"' in page and 'value="sk-' not in page


def test_editing_a_provider_keeps_replaces_or_removes_the_key(admin_user, provider):
    client = client_for(admin_user)
    url = reverse("llmops:provider-action", args=[provider.pk, "edit"])
    form = {"edit-name": "local", "edit-base_url": provider.base_url, "edit-timeout_seconds": "10",
            "edit-max_concurrency": "4", "edit-max_retries": "1", "edit-enabled": "on",
            "edit-default_headers": ""}  # fmt: skip
    assert client.post(url, {**form, "edit-api_key": ""}).status_code == 302
    provider.refresh_from_db()
    assert decrypt(provider.api_key) == "sk-test-123" and provider.timeout_seconds == 10
    client.post(url, {**form, "edit-api_key": "sk-new"})
    provider.refresh_from_db()
    assert decrypt(provider.api_key) == "sk-new"
    client.post(url, {**form, "edit-remove_api_key": "on"})
    provider.refresh_from_db()
    assert provider.api_key == ""
    services.create_provider(name="other", base_url="http://other/v1", actor=admin_user)
    taken = client.post(url, {**form, "edit-name": "other"})
    assert taken.status_code == 400
    taken_page = html.unescape(taken.content.decode())
    assert re.search(r'id="id_edit-name".*?a provider named .*other.* exists already', taken_page, re.S)
    bad = client.post(url, {**form, "edit-default_headers": "[1]", "edit-base_url": "ftp://x"})
    assert bad.status_code == 400
    page = text_of(bad)
    assert "must be a JSON object" in page and "Enter an http:// or https:// URL" in page


def test_a_new_model_takes_its_prices_from_the_price_table(admin_user, provider):
    services.set_price(model_name="acme-chat", input_per_million="0.15", output_per_million="0.6", actor=admin_user)
    services.set_price(model_name="acme-*", input_per_million="3", output_per_million="15", actor=admin_user)
    client = client_for(admin_user)
    lookup = client.get(reverse("llmops:price-lookup"), {"model-name": "acme-large"}, HTTP_HX_REQUEST="true")
    assert 'value="3.0000"' in lookup.content.decode() and "acme-*" in text_of(lookup)
    unknown = text_of(client.get(reverse("llmops:price-lookup"), {"model-name": "my-llama"}))
    assert "my-llama is not in the price table" in unknown
    url = reverse("llmops:provider-action", args=[provider.pk, "add-model"])
    response = client.post(url, {"model-name": "acme-chat", "model-input_per_million": "",
                                 "model-output_per_million": ""})  # fmt: skip
    assert response.status_code == 302
    model = LLMModel.objects.get(provider=provider, name="acme-chat")
    assert float(model.input_per_million) == 0.15 and float(model.output_per_million) == 0.6
    again = client.post(url, {"model-name": "acme-chat"})
    assert again.status_code == 400 and "already has a model 'acme-chat'" in text_of(again)
    # Prices are edited per model.
    price_url = reverse("llmops:provider-action", args=[provider.pk, "price"])
    client.post(price_url, {"model": model.pk, f"price-{model.pk}-input_per_million": "0.2",
                            f"price-{model.pk}-output_per_million": "0.8"})  # fmt: skip
    model.refresh_from_db()
    assert float(model.input_per_million) == 0.2


def test_test_connection_shows_the_answer_or_the_exact_error(admin_user, provider, fake_llm):
    client = client_for(admin_user)
    url = reverse("llmops:provider-test", args=[provider.pk])
    fake_llm.default_answer = "OK"
    ok = client.post(url, {"model_name": "test-model"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200
    assert 'data-ok="true"' in ok.content.decode() and "answered 'OK'" in text_of(ok)
    fake_llm.fail(1, status=401, message="Incorrect API key provided")
    bad = client.post(url, {"model_name": "test-model"}, HTTP_HX_REQUEST="true")
    assert 'data-ok="false"' in bad.content.decode()
    assert "HTTP 401: Incorrect API key provided" in text_of(bad)
    assert fake_llm.api_keys[-1] == "Bearer sk-test-123"


def test_admins_edit_the_price_table_viewers_read_it(admin_user, viewer):
    client = client_for(admin_user)
    response = client.post(reverse("llmops:prices"), {"model_name": "gpt-x", "input_per_million": "1.5",
                                                      "output_per_million": "6"})  # fmt: skip
    assert response.status_code == 302
    assert "gpt-x" in text_of(client_for(viewer).get(reverse("llmops:prices")))
    edit = client.get(reverse("llmops:prices"), {"edit": "gpt-x"}).content.decode()
    assert 'value="1.5000"' in edit
    page = client_for(viewer).get(reverse("llmops:prices")).content.decode()
    assert "Save price" not in page


# --- Prompts -------------------------------------------------------------------------------------------------------


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
            capitals_run(version, llm, capitals_dataset, operator)

    add(2)
    few = measure()
    add(4)
    assert few == measure()
    found = client.get(reverse("llmops:prompts"), {"q": "prompt-1"}, HTTP_HX_REQUEST="true")
    body = found.content.decode()
    assert "<html" not in body
    assert re.findall(r"<a href=\"/llmops/prompts/([^\"]+)/\">prompt", body) == ["prompt-1"]


def test_new_version_form_is_prefilled_and_saves_the_next_version(operator, version):
    prompt = version.prompt
    client = client_for(operator)
    url = reverse("llmops:prompt-new-version", args=[prompt.name])
    page = client.get(url).content.decode()
    assert "What is the capital of {{ country }}?" in html.unescape(page)
    assert 'name="messages-TOTAL_FORMS" value="2"' in page
    assert re.search(r'name="temperature"[^>]*value="0(\.0)?"', page)
    data = {
        "messages-TOTAL_FORMS": "2", "messages-INITIAL_FORMS": "0", "messages-MIN_NUM_FORMS": "1",
        "messages-MAX_NUM_FORMS": "50",
        "messages-0-role": "system", "messages-0-content": "Answer with the city only.",
        "messages-1-role": "user", "messages-1-content": "Capital of {{ country }}?",
        "model": "test-model", "temperature": "0.2", "max_tokens": "20", "response_format": "json_object",
        "other_parameters": '{"seed": 7}', "commit_message": "Shorter answers",
    }  # fmt: skip
    response = client.post(url, data)
    new = PromptVersion.objects.get(prompt=prompt, version=2)
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.parameters == {"temperature": 0.2, "max_tokens": 20, "response_format": {"type": "json_object"},
                              "seed": 7}  # fmt: skip
    assert new.commit_message == "Shorter answers" and new.author == operator
    assert not PromptLabel.objects.filter(prompt=prompt).exists(), "saving a version moves no label"


def test_messages_editor_adds_and_removes_rows_without_saving(operator, version):
    client = client_for(operator)
    url = reverse("llmops:prompt-new-version", args=[version.prompt.name])
    base = {"messages-TOTAL_FORMS": "1", "messages-INITIAL_FORMS": "0", "messages-0-role": "user",
            "messages-0-content": "Hello {{ name }}", "model": "m", "commit_message": "draft"}  # fmt: skip
    added = client.post(url, {**base, "editor": "add-message"}, HTTP_HX_REQUEST="true")
    assert added.status_code == 200
    body = added.content.decode()
    assert 'name="messages-TOTAL_FORMS" value="2"' in body and "Hello {{ name }}" in html.unescape(body)
    assert 'value="draft"' in body, "the rest of the form is kept"
    two = {**base, "messages-TOTAL_FORMS": "2", "messages-1-role": "assistant", "messages-1-content": "Hi"}
    removed = client.post(url, {**two, "editor": "remove-message-0"}).content.decode()
    assert 'name="messages-TOTAL_FORMS" value="1"' in removed and "Hello {{ name }}" not in html.unescape(removed)
    assert PromptVersion.objects.filter(prompt=version.prompt).count() == 1


def test_a_bad_template_is_reported_next_to_its_message(operator, version):
    client = client_for(operator)
    data = {"messages-TOTAL_FORMS": "2", "messages-INITIAL_FORMS": "0",
            "messages-0-role": "system", "messages-0-content": "Fine.",
            "messages-1-role": "user", "messages-1-content": "Broken {{ country",
            "temperature": "5"}  # fmt: skip
    response = client.post(reverse("llmops:prompt-new-version", args=[version.prompt.name]), data)
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert "Ensure this value is less than or equal to 2" in body
    data["temperature"] = "1"
    response = client.post(reverse("llmops:prompt-new-version", args=[version.prompt.name]), data)
    body = html.unescape(response.content.decode())
    # The error sits in the second message's row.
    row = body[body.index('id="message-1"') :]
    assert "messages[1].content: line 1" in row[: row.index("</textarea>") + 400]


def test_version_page_marks_variables_previews_and_lists_runs(viewer, finished_run, version):
    client = client_for(viewer)
    response = client.get(version.get_absolute_url())
    body = response.content.decode()
    assert '<mark class="tpl-var">{{ country }}</mark>' in body
    assert f"#{finished_run.pk}" in text_of(response)
    preview = client.get(version.get_absolute_url(), {"variables": '{"country": "Peru"}'})
    assert "What is the capital of Peru?" in text_of(preview)
    missing = client.get(version.get_absolute_url(), {"variables": '{"city": "x"}'})
    assert "'country' is undefined" in text_of(missing)


def test_diff_page_shows_changed_lines_side_by_side(viewer, version, operator):
    prompt = version.prompt
    services.create_version(
        prompt=prompt, actor=operator, commit_message="Stricter",
        messages=[{"role": "system", "content": "Answer in one word."},
                  {"role": "user", "content": "What is the capital of {{ country }}?"}],
        parameters={"temperature": 0.5},
    )  # fmt: skip
    response = client_for(viewer).get(reverse("llmops:prompt-diff", args=[prompt.name]))
    body = response.content.decode()
    assert response.status_code == 200
    text = text_of(response)
    assert "capitals: v1 → v2" in text and "2 parts changed" in text
    assert '<td class="removed">Answer in one <del>sentence</del>.</td>' in body
    assert '<td class="added">Answer in one <ins>word</ins>.</td>' in body
    assert "unchanged" in text  # the user message
    history = client_for(viewer).get(prompt.get_absolute_url()).content.decode()
    assert f"{reverse('llmops:prompt-diff', args=[prompt.name])}?a=1&amp;b=2" in history
    assert "diff with previous" in history


def test_a_prompt_named_like_a_sub_page_is_still_reachable(viewer, operator):
    prompt = services.create_prompt(name="x/diff", actor=operator, messages=[{"role": "user", "content": "Hi"}])
    response = client_for(viewer).get(prompt.get_absolute_url())
    assert response.status_code == 200 and "x/diff" in text_of(response)
    assert client_for(viewer).get(reverse("llmops:prompt-version", args=["x/diff", 1])).status_code == 200


# --- Labels and the release gate -----------------------------------------------------------------------------------


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
    run = capitals_run(gated, llm, capitals_dataset, operator)
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


# --- Datasets ------------------------------------------------------------------------------------------------------


def test_operator_creates_a_dataset_and_adds_edits_and_deletes_items(operator):
    client = client_for(operator)
    response = client.post(reverse("llmops:datasets"), {"new-name": "qa/smoke", "new-description": "Smoke tests"})
    dataset = Dataset.objects.get(name="qa/smoke")
    assert response["Location"] == dataset.get_absolute_url()
    url = dataset.get_absolute_url()
    bad = client.post(url, {"item-input": '{"q": ', "item-expected_output": "x"})
    assert bad.status_code == 400 and "Input is not valid JSON" in text_of(bad)
    client.post(url, {"item-input": '{"q": "2+2"}', "item-expected_output": "4", "item-tags": "math, easy",
                      "item-metadata": '{"source": "manual"}'})  # fmt: skip
    item = dataset.items.get()
    assert item.input == {"q": "2+2"} and item.tags == ["math", "easy"] and item.metadata == {"source": "manual"}
    edit_url = reverse("llmops:dataset-item", args=[dataset.pk, item.pk])
    inline = client.get(edit_url, HTTP_HX_REQUEST="true").content.decode()
    assert inline.strip().startswith(f'<tr id="item-{item.pk}"') and 'name="edit-' in inline
    client.post(edit_url, {f"edit-{item.pk}-input": '{"q": "3+3"}', f"edit-{item.pk}-expected_output": "6"})
    item.refresh_from_db()
    assert item.input == {"q": "3+3"} and item.expected_output == "6"
    client.post(reverse("llmops:dataset-item-delete", args=[dataset.pk, item.pk]))
    assert not dataset.items.exists()


def test_dataset_items_are_paginated_with_constant_queries(viewer, operator):
    dataset = services.create_dataset(name="big", actor=operator)
    client = client_for(viewer)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(dataset.get_absolute_url()).status_code == 200
        return len(queries)

    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, input={"n": i}, tags=["t"]) for i in range(3)])
    few = measure()
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, input={"n": i}, tags=["t"]) for i in range(120)])
    assert measure() == few
    page = text_of(client.get(dataset.get_absolute_url()))
    assert "123 items" in page and "Page 1 of 3" in page


def test_dataset_list_uses_constant_queries(viewer, operator):
    client = client_for(viewer)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("llmops:datasets")).status_code == 200
        return len(queries)

    for i in range(2):
        services.add_item(dataset=services.create_dataset(name=f"d{i}", actor=operator), actor=operator, input={"a": 1})
    few = measure()
    for i in range(2, 8):
        services.add_item(dataset=services.create_dataset(name=f"d{i}", actor=operator), actor=operator, input={"a": 1})
    assert measure() == few


def test_export_downloads_csv_and_jsonl(viewer, capitals_dataset):
    client = client_for(viewer)
    url = reverse("llmops:dataset-export", args=[capitals_dataset.pk])
    csv_response = client.get(url, {"format": "csv"})
    assert csv_response["Content-Type"].startswith("text/csv")
    assert csv_response["Content-Disposition"] == 'attachment; filename="capitals.csv"'
    assert '"{""country"": ""France""}",Paris' in csv_response.content.decode()
    lines = client.get(url, {"format": "jsonl"}).content.decode().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["input"] == {"country": "France"}


def test_import_previews_then_imports_every_row(operator, capitals_dataset):
    client = client_for(operator)
    url = reverse("llmops:dataset-import", args=[capitals_dataset.pk])
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = b'country,expected_output,tags\nPeru,Lima,americas\nChile,Santiago,"americas,south"\n'
    preview = client.post(url, {"file": SimpleUploadedFile("more.csv", data, "text/csv")})
    assert preview.status_code == 200
    text = text_of(preview)
    assert "2 valid rows" in text and "Peru" in text and "Santiago" in text and "Import 2 items" in text
    assert capitals_dataset.items.count() == 4, "a preview stores nothing"
    token = re.search(r'name="confirm" value="([^"]+)"', preview.content.decode()).group(1)
    done = client.post(url, {"confirm": token})
    assert done.status_code == 302
    assert capitals_dataset.items.count() == 6
    assert capitals_dataset.items.get(input={"country": "Chile"}).tags == ["americas", "south"]
    # The preview is used once.
    assert client.post(url, {"confirm": token}).status_code == 302
    assert capitals_dataset.items.count() == 6


def test_a_file_with_a_bad_row_imports_nothing_and_names_the_row(operator, capitals_dataset):
    client = client_for(operator)
    url = reverse("llmops:dataset-import", args=[capitals_dataset.pk])
    from django.core.files.uploadedfile import SimpleUploadedFile

    lines = [
        json.dumps({"input": {"country": "Peru"}, "expected_output": "Lima"}),
        json.dumps({"input": {"country": "Chile"}, "metadata": "not an object"}),
        "{broken",
    ]
    response = client.post(url, {"file": SimpleUploadedFile("rows.jsonl", "\n".join(lines).encode())})
    assert response.status_code == 400
    text = text_of(response)
    assert "Nothing will be imported: 2 rows have problems" in text
    assert "Row 2: metadata is not valid JSON" in text
    assert "Row 3: not valid JSON" in text
    assert 'name="confirm"' not in response.content.decode()
    assert capitals_dataset.items.count() == 4


# --- Runs ----------------------------------------------------------------------------------------------------------


def run_form_data(dataset, versions, models, scorers: list[dict], **extra) -> dict:
    data = {
        "dataset": dataset.pk,
        "prompt_versions": [v.pk for v in versions],
        "models": [m.pk for m in models],
        "scorers-TOTAL_FORMS": str(len(scorers)),
        "scorers-INITIAL_FORMS": "0",
        **extra,
    }
    for index, spec in enumerate(scorers):
        data[f"scorers-{index}-type"] = spec["type"]
        data[f"scorers-{index}-config"] = json.dumps(spec.get("config", {}))
        data[f"scorers-{index}-weight"] = str(spec.get("weight", 1))
        if spec.get("threshold") is not None:
            data[f"scorers-{index}-threshold"] = str(spec["threshold"])
        if spec.get("negate"):
            data[f"scorers-{index}-negate"] = "on"
    return data


def test_new_run_form_lists_versions_with_labels_and_starts_a_run(operator, version, llm, capitals_dataset):
    services.move_label(prompt=version.prompt, label="staging", version=version, actor=operator)
    client = client_for(operator)
    page = client.get(reverse("llmops:run-new"), {"version": version.pk}).content.decode()
    assert '<optgroup label="capitals">' in page and "capitals v1  [staging]" in page
    assert re.search(rf'<option value="{version.pk}" selected>', page), "prefilled from ?version="
    assert re.search(rf'<option value="{llm.pk}" selected>', page), "the version's default model is chosen"
    data = run_form_data(capitals_dataset, [version], [llm], names_the_city(), concurrency="2")
    response = client.post(reverse("llmops:run-new"), data)
    run = EvalRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.total == 4 and run.concurrency == 2 and run.created_by == operator
    assert run.scorers == [{"type": "rouge-l", "config": {}, "weight": 1.0, "threshold": 0.3}]


def test_scorer_editor_adds_rows_and_reports_errors_on_the_row(operator, version, llm, capitals_dataset):
    client = client_for(operator)
    data = run_form_data(capitals_dataset, [version], [llm], names_the_city())
    added = client.post(reverse("llmops:run-new"), {**data, "editor": "add-scorer"}, HTTP_HX_REQUEST="true")
    body = added.content.decode()
    assert added.status_code == 200 and 'name="scorers-TOTAL_FORMS" value="2"' in body
    assert "&quot;value&quot;: &quot;&quot;" in body, "a new row starts with its required options"
    changed = {**data, "scorers-0-type": "regex", "scorers-0-config": '{"value": ""}', "editor": "refresh"}
    refreshed = html.unescape(client.post(reverse("llmops:run-new"), changed).content.decode())
    assert '{"pattern": ""}' in refreshed, "the new type's options replace the old type's"
    assert "The pattern matches somewhere in the output" in refreshed
    bad = run_form_data(capitals_dataset, [version], [llm],
                        [names_the_city()[0], {"type": "regex", "config": {"pattern": "("}}])  # fmt: skip
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


def text_of_fragment(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_run_progress_is_polled_until_the_run_finishes(viewer, version, llm, capitals_dataset, operator):
    run = services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm],
                              scorers=names_the_city(), actor=operator)  # fmt: skip
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
    run_now(run)
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
    run = capitals_run(version, llm, capitals_dataset, operator)
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
                              scorers=names_the_city(), actor=operator)  # fmt: skip
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

    capitals_run(version, llm, capitals_dataset, operator)
    few = measure()
    for _ in range(4):
        capitals_run(version, llm, capitals_dataset, operator)
    services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm],
                        scorers=names_the_city(), actor=operator)  # fmt: skip
    assert measure() == few
    page = client.get(reverse("llmops:runs")).content.decode()
    assert 'hx-trigger="every 2s"' in page, "the list refreshes while a run is queued"
    assert page.count('role="progressbar"') == 6
    filtered = client.get(reverse("llmops:runs"), {"status": "queued"}, HTTP_HX_REQUEST="true").content.decode()
    assert len(re.findall(r'<tr id="run-\d+"', filtered)) == 1


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


def test_score_imported_outputs(operator, capitals_dataset):
    from django.core.files.uploadedfile import SimpleUploadedFile

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
    run_now(run)
    page = text_of(client.get(run.get_absolute_url()))
    assert "PASS" in page and "FAIL" in page and "Milan" in page
    bad = client.post(url, {**form, "file": SimpleUploadedFile("out.csv", b"country,output\nFrance,Paris\nSpain\n")})
    assert bad.status_code == 400 and EvalRun.objects.count() == 1
    assert "Nothing was scored" in text_of(bad)


# --- Compare -------------------------------------------------------------------------------------------------------


@pytest.fixture
def regression(version, llm, capitals_dataset, operator, fake_llm):
    """Two runs of the same version: Japan answered right before, wrong now."""
    before = capitals_run(version, llm, capitals_dataset, operator)
    fake_llm.answers["capital of Japan"] = "The capital is Kyoto."
    fake_llm.answers["capital of Spain"] = "Madrid is the capital."
    after = capitals_run(version, llm, capitals_dataset, operator)
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
    third = capitals_run(version, before.columns.get().model, dataset, operator)
    response = client_for(viewer).get(reverse("llmops:compare"), {"a": after.pk, "b": third.pk})
    text = text_of(response)
    assert "dataset item (the runs used different snapshots)" in text
    assert "only in A" in text and "only in B" in text
    body = response.content.decode()
    assert re.search(r'data-count="improvements">1<', body), "Japan passes again"


def test_compare_two_columns_of_one_run(viewer, version, llm, capitals_dataset, operator, provider, admin_user):
    other = services.add_model(provider=provider, name="other-model", actor=admin_user)
    run = run_now(services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm, other],
                                      scorers=names_the_city(), actor=operator))  # fmt: skip
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


# --- Downloads and deletion ----------------------------------------------------------------------------------------


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


def test_items_filter_by_tag_and_text(viewer, operator, capitals_dataset):
    services.add_item(dataset=capitals_dataset, actor=operator, input={"country": "Peru"}, expected_output="Lima",
                      tags=["americas"])  # fmt: skip
    client = client_for(viewer)
    tagged = client.get(capitals_dataset.get_absolute_url(), {"tag": "americas"}).content.decode()
    assert len(re.findall(r'<tr id="item-\d+"', tagged)) == 1 and "Lima" in tagged
    searched = client.get(capitals_dataset.get_absolute_url(), {"q": "rom"}).content.decode()
    assert len(re.findall(r'<tr id="item-\d+"', searched)) == 1 and "Rome" in searched


def test_only_admins_delete_a_dataset_and_they_type_its_name(operator, admin_user, capitals_dataset):
    url = reverse("llmops:dataset-delete", args=[capitals_dataset.pk])
    assert client_for(operator).post(url, {"delete-confirm": "capitals"}).status_code == 403
    client = client_for(admin_user)
    wrong = client.post(url, {"delete-confirm": "capital"})
    assert wrong.status_code == 400 and "Type capitals exactly" in text_of(wrong)
    assert client.post(url, {"delete-confirm": "capitals"})["Location"] == reverse("llmops:datasets")
    assert not Dataset.objects.filter(pk=capitals_dataset.pk).exists()


def test_admin_deletes_a_provider(admin_user, provider, llm):
    client = client_for(admin_user)
    url = reverse("llmops:provider-action", args=[provider.pk, "delete"])
    assert client.post(url, {"delete-confirm": "nope"}).status_code == 400
    assert client.post(url, {"delete-confirm": "local"})["Location"] == reverse("llmops:providers")
    assert not Provider.objects.exists() and not LLMModel.objects.exists()
