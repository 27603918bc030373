"""Provider pages: adding and editing providers (the key never shown), models and prices, the price table,
testing a connection, deleting."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from llmops import services
from llmops.models import LLMModel, Provider
from opsportal.encryption import decrypt
from tests.helpers import client_for

from .pages import text_of

pytestmark = pytest.mark.django_db


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


def test_admin_deletes_a_provider(admin_user, provider, llm):
    client = client_for(admin_user)
    url = reverse("llmops:provider-action", args=[provider.pk, "delete"])
    assert client.post(url, {"delete-confirm": "nope"}).status_code == 400
    assert client.post(url, {"delete-confirm": "local"})["Location"] == reverse("llmops:providers")
    assert not Provider.objects.exists() and not LLMModel.objects.exists()


def test_provider_list_shows_each_providers_key_and_last_test(admin_user, provider, fake_llm):
    client = client_for(admin_user)
    services.create_provider(name="Remote", base_url="https://api.example.com/v1", actor=admin_user)

    def states() -> dict[str, str]:
        body = client.get(reverse("llmops:providers")).content.decode()
        rows = re.findall(r'<tr>\s*<td><a class="cell-text" href="[^"]+" title="[^"]*">([^<]+)</a>.*?</tr>', body, re.S)
        cells = re.findall(r'<td class="small provider-state"[^>]*>(.*?)</td>', body, re.S)
        return {
            name: " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
            for name, cell in zip(rows, cells, strict=True)
        }

    shown = states()
    assert shown["local"].startswith("key set") and "never tested" in shown["local"]
    assert shown["Remote"].startswith("no API key") and "never tested" in shown["Remote"]
    url = reverse("llmops:provider-test", args=[provider.pk])
    fake_llm.default_answer = "OK"
    client.post(url, {"model_name": "test-model"}, HTTP_HX_REQUEST="true")
    provider.refresh_from_db()
    assert provider.last_test_ok is True and provider.last_test_model == "test-model"
    assert provider.timeout_seconds == 60.0 and provider.max_retries == 4, "the test's own limits are not saved"
    assert re.search(r"✓ test passed \d+\s+minutes? ago with test-model", states()["local"])
    fake_llm.fail(1, status=401, message="Incorrect API key provided")
    client.post(url, {"model_name": "test-model"}, HTTP_HX_REQUEST="true")
    assert "✗ test failed" in states()["local"] and "HTTP 401: Incorrect API key provided" in states()["local"]
    detail = text_of(client.get(reverse("llmops:provider", args=[provider.pk])))
    assert "Last test failed" in detail and "HTTP 401: Incorrect API key provided" in detail


def test_the_api_test_connection_is_kept_on_the_provider(admin_user, provider, fake_llm):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    fake_llm.fail(1, status=500, message="overloaded")
    response = api.post(
        f"/api/v1/llmops/providers/{provider.pk}/test-connection/", {"model": "test-model"}, format="json"
    )
    assert response.status_code == 200 and response.json()["ok"] is False
    provider.refresh_from_db()
    assert provider.last_test_ok is False and "overloaded" in provider.last_test_message
