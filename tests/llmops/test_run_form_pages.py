"""The new-run form: checkbox lists with a filter, scorer options as fields generated from each scorer's
declared options (JSON for advanced use), and warnings about providers whose runs will likely error."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from llmops import services
from llmops.models import EvalRun
from tests.helpers import client_for

from . import factories
from .pages import run_form_data, text_of

pytestmark = pytest.mark.django_db


def _fields_row(data: dict, index: int, type_name: str, options: dict) -> dict:
    """A scorer row posted from its option fields (what the browser sends with "Fields" chosen)."""
    data = {key: value for key, value in data.items() if not key.startswith(f"scorers-{index}-config")}
    data[f"scorers-{index}-type"] = type_name
    data[f"scorers-{index}-config_mode"] = "fields"
    data[f"scorers-{index}-shown_mode"] = "fields"
    for name, value in options.items():
        data[f"scorers-{index}-option-{name}"] = value
    return data


def test_versions_and_models_are_checkbox_lists_with_a_filter(operator, version, llm, capitals_dataset):
    page = client_for(operator).get(reverse("llmops:run-new")).content.decode()
    assert "<select" not in page[page.index('id="id_prompt_versions"') : page.index('for="id_judge_model"')]
    assert re.search(
        rf'<input class="form-check-input" type="checkbox" name="prompt_versions" value="{version.pk}"', page
    )
    assert re.search(rf'<input class="form-check-input" type="checkbox" name="models" value="{llm.pk}"', page)
    assert page.count("data-checklist-filter") == 2
    assert "js/checklist.js" in page
    assert "Ctrl" not in text_of(client_for(operator).get(reverse("llmops:run-new")))


def test_a_run_from_the_option_fields_gets_the_config_they_build(operator, version, llm, capitals_dataset):
    client = client_for(operator)
    page = client.get(reverse("llmops:run-new")).content.decode()
    # The first row's scorer (contains) shows its declared option as a field, not JSON.
    assert 'name="scorers-0-option-value"' in page and 'value="fields" checked' in page
    data = run_form_data(capitals_dataset, [version], [llm], [{"type": "contains"}, {"type": "contains"}])
    data = _fields_row(data, 0, "contains-any", {"values": "Paris\nLondon\n\n", "ignore_case": "on"})
    data = _fields_row(data, 1, "bleu", {"value": "", "tokenize": "intl"})
    data["scorers-1-threshold"] = "0.2"
    response = client.post(reverse("llmops:run-new"), data)
    assert response.status_code == 302, text_of(response)
    run = EvalRun.objects.get()
    assert run.scorers[0]["config"] == {"values": ["Paris", "London"], "ignore_case": True}
    # An unticked box is false, an empty field takes the default.
    assert run.scorers[1]["config"] == {"tokenize": "intl", "lowercase": False}
    assert run.scorers[1]["threshold"] == 0.2


def test_a_bad_option_value_shows_its_error_on_that_field(operator, version, llm, capitals_dataset):
    client = client_for(operator)
    data = run_form_data(capitals_dataset, [version], [llm], [{"type": "contains"}, {"type": "contains"}])
    data = _fields_row(data, 0, "word-count", {"min": "three", "max": "50"})
    data = _fields_row(data, 1, "regex", {"pattern": "(", "flags": ""})
    response = client.post(reverse("llmops:run-new"), data)
    assert response.status_code == 400 and not EvalRun.objects.exists()
    body = html.unescape(response.content.decode())
    error = re.search(r'<div class="invalid-feedback d-block" data-option-error="min">([^<]+)</div>', body)
    assert error and "scorers[0].config.min" in error.group(1) and "whole number" in error.group(1)
    assert 'name="scorers-0-option-min" id="id_scorers-0-option-min" value="three"' in body, "the value stays"
    assert 'data-option-error="max"' not in body
    # Fixed, the next scorer's problem is reported on its own field: one error at a time, from the services.
    data["scorers-0-option-min"] = "3"
    body = html.unescape(client.post(reverse("llmops:run-new"), data).content.decode())
    error = re.search(r'data-option-error="pattern">([^<]+)</div>', body)
    assert error and "invalid regex" in error.group(1)
    assert 'value="(" ' in body or 'value="("' in body


def test_invalid_json_in_an_object_option_is_reported_on_that_field(operator, version, llm, capitals_dataset):
    data = run_form_data(capitals_dataset, [version], [llm], [{"type": "contains"}])
    data = _fields_row(data, 0, "json-schema", {"schema": "{not json"})
    response = client_for(operator).post(reverse("llmops:run-new"), data)
    assert response.status_code == 400
    assert re.search(r'data-option-error="schema">schema is not valid JSON', html.unescape(response.content.decode()))


def test_switching_to_json_carries_the_field_values_and_back(operator, version, llm, capitals_dataset):
    client = client_for(operator)
    data = run_form_data(capitals_dataset, [version], [llm], [{"type": "contains"}])
    data = _fields_row(data, 0, "regex", {"pattern": "^Paris", "flags": "i"})
    data["scorers-0-config_mode"] = "json"
    body = html.unescape(client.post(reverse("llmops:run-new"), {**data, "editor": "refresh"}).content.decode())
    textarea = re.search(r'<textarea name="scorers-0-config"[^>]*>(.*?)</textarea>', body, re.S)
    assert textarea and '"pattern": "^Paris"' in textarea.group(1) and '"flags": "i"' in textarea.group(1)
    back = {**data, "scorers-0-config_mode": "fields", "scorers-0-shown_mode": "json",
            "scorers-0-config": '{"pattern": "^Rome"}', "editor": "refresh"}  # fmt: skip
    body = html.unescape(client.post(reverse("llmops:run-new"), back).content.decode())
    assert 'name="scorers-0-option-pattern" id="id_scorers-0-option-pattern" value="^Rome"' in body


def test_run_again_fills_the_option_fields_from_the_run(operator, version, llm, capitals_dataset):
    run = services.create_run(dataset=capitals_dataset, prompt_versions=[version], models=[llm], actor=operator,
                              scorers=[{"type": "pii", "config": {"kinds": ["email", "iban"]}}])  # fmt: skip
    body = client_for(operator).get(reverse("llmops:run-new"), {"from": run.pk}).content.decode()
    assert re.search(r'name="scorers-0-option-kinds" id="[^"]+" value="email" checked', body)
    assert re.search(r'name="scorers-0-option-kinds" id="[^"]+" value="iban" checked', body)
    assert not re.search(r'name="scorers-0-option-kinds" id="[^"]+" value="phone" checked', body)


def test_the_form_warns_about_a_provider_without_a_key_but_not_a_local_one(
    operator, admin_user, version, llm, capitals_dataset
):
    remote = factories.provider(base_url="https://api.example.com/v1", actor=admin_user, name="Remote, no key")
    remote_model = factories.model(provider=remote, actor=admin_user, name="remote-model")
    # `llm`'s provider is local (127.0.0.1) with a key; a local one without a key is not flagged either.
    factories.model(provider=factories.provider(base_url="http://ollama:11434/v1", actor=admin_user, name="ollama"),
                    actor=admin_user, name="llama3")  # fmt: skip
    client = client_for(operator)
    response = client.get(reverse("llmops:run-new"))
    warning = re.search(r'<div class="alert alert-warning" role="status" id="provider-warnings">(.*?)</div>',
                        response.content.decode(), re.S)  # fmt: skip
    assert warning, "the form warns before the run is started"
    text = html.unescape(re.sub(r"<[^>]+>", " ", warning.group(1)))
    assert "Remote, no key : it has no API key" in text
    assert "ollama" not in text and "local" not in text.split("(")[0]
    # Not blocked: the run starts, with a warning.
    data = run_form_data(capitals_dataset, [version], [remote_model], factories.names_the_city())
    response = client.post(reverse("llmops:run-new"), data, follow=True)
    assert EvalRun.objects.count() == 1
    assert "Remote, no key: it has no API key; its results will likely error." in text_of(response)
    # A failing last test is a warning too, with its message.
    services.record_connection_test(provider=llm.provider, model_name="test-model", ok=False, message="HTTP 401: bad")
    text = text_of(client.get(reverse("llmops:run-new")))
    assert "local : its last connection test failed: HTTP 401: bad" in text
