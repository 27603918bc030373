"""Prompt-cache prices: a generation's cached input tokens cost what the price table says for them.

The input count of both conventions includes the cached tokens (read and written), so only the rest
is priced at the input price; an empty cache price means the input price. Prices are edited on the
price table page, on a provider's page and through the API.
"""

from __future__ import annotations

from decimal import Decimal
from importlib import import_module

import pytest
from django.apps import apps
from django.urls import reverse

from llmops import services
from llmops.models import LLMModel, PriceEntry
from llmops.traces import cost
from tests.conftest import api_client_for
from tests.helpers import client_for

from .pages import text_of
from .test_trace_ingest import TRACE, _now_ns, json_span, otlp_json, post

pytestmark = pytest.mark.django_db

SPAN = "eee19b7ec3c1b173"


@pytest.fixture(autouse=True)
def _cache_prices(_price_table):
    """The seeded cache prices of migration 0008 (transactional tests elsewhere empty the table)."""
    import_module("llmops.migrations.0008_cache_prices_trace_indexes").add_cache_prices(apps, None)
    cost.forget_prices()
    cost.PROMPT_VERSIONS.forget()


@pytest.fixture
def sender(operator):
    return api_client_for(operator)


def _ingest(sender, attributes: dict) -> dict:
    """One generation sent over OTLP/JSON; the stored span as the trace API shows it."""
    response = post(sender, otlp_json([json_span(SPAN, "chat", _now_ns(), attributes=attributes)]))
    assert response.status_code == 200, response.content
    detail = sender.get(f"/api/v1/llmops/traces/{TRACE}/").json()
    (span,) = detail["spans"]
    assert float(detail["cost"]) == pytest.approx(float(span["cost"]))
    return span


def test_the_seeded_price_table_has_the_published_cache_prices(viewer):
    prices = {e.model_name: (e.cache_read_per_million, e.cache_write_per_million) for e in PriceEntry.objects.all()}
    assert prices["gpt-4o-mini"] == (Decimal("0.075"), None)
    assert prices["gpt-4.1"] == (Decimal("0.5"), None)
    assert prices["claude-3-5-sonnet*"] == (Decimal("0.3"), Decimal("3.75"))
    assert prices["gemini-1.5-flash*"] == (Decimal("0.01875"), None)
    assert prices["gpt-3.5-turbo"] == (None, None)
    page = text_of(client_for(viewer).get(reverse("llmops:prices")))
    assert "claude-3-5-sonnet* $3 $15 $0.3 $3.75" in page
    assert "gpt-3.5-turbo $0.5 $1.5 as input as input" in page


def test_openai_cached_input_is_priced_at_the_cache_read_price_and_not_twice(sender):
    # OpenTelemetry GenAI: 1200 input tokens of which 1000 were read from the cache.
    span = _ingest(sender, {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.output_tokens": 300,
    })  # fmt: skip
    assert (span["input_tokens"], span["cache_read_tokens"], span["output_tokens"]) == (1200, 1000, 300)
    # gpt-4o-mini: 0.15 input, 0.075 cached input, 0.60 output per 1M tokens.
    assert float(span["cost"]) == pytest.approx((200 * 0.15 + 1000 * 0.075 + 300 * 0.60) / 1e6)


def test_anthropic_cache_reads_and_writes_have_their_own_prices(sender):
    # OpenInference: the prompt count (5000) includes 3000 tokens read from and 1000 written to the cache.
    span = _ingest(sender, {
        "openinference.span.kind": "LLM", "llm.model_name": "claude-3-5-sonnet-20241022",
        "llm.token_count.prompt": 5000, "llm.token_count.prompt_details.cache_read": 3000,
        "llm.token_count.prompt_details.cache_write": 1000, "llm.token_count.completion": 200,
    })  # fmt: skip
    assert (span["cache_read_tokens"], span["cache_write_tokens"]) == (3000, 1000)
    # claude-3-5-sonnet*: 3 input, 0.30 cache read, 3.75 cache write, 15 output per 1M tokens.
    assert float(span["cost"]) == pytest.approx((1000 * 3 + 3000 * 0.30 + 1000 * 3.75 + 200 * 15) / 1e6)


def test_cache_counts_larger_than_the_input_count_were_counted_apart(sender):
    # Anthropic's own usage: input_tokens (40) excludes the 2000 tokens read from the cache.
    span = _ingest(sender, {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-3-5-haiku-latest",
        "gen_ai.usage.input_tokens": 40, "gen_ai.usage.cache_read_input_tokens": 2000,
        "gen_ai.usage.output_tokens": 100,
    })  # fmt: skip
    # claude-3-5-haiku*: 0.80 input, 0.08 cache read, 4 output.
    assert float(span["cost"]) == pytest.approx((40 * 0.80 + 2000 * 0.08 + 100 * 4) / 1e6)


def test_without_a_cache_price_cached_tokens_cost_as_input(sender):
    span = _ingest(sender, {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.cache_read.input_tokens": 800, "gen_ai.usage.output_tokens": 100,
    })  # fmt: skip
    assert float(span["cost"]) == pytest.approx((1000 * 0.50 + 100 * 1.50) / 1e6)


def test_a_providers_model_with_cache_prices_prices_its_traces(sender, admin_user, provider):
    services.add_model(provider=provider, name="house-llm", actor=admin_user, input_per_million="2",
                       output_per_million="4", cache_read_per_million="0.5")  # fmt: skip
    span = _ingest(sender, {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "house-llm", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.cache_read.input_tokens": 600, "gen_ai.usage.cache_creation.input_tokens": 100,
        "gen_ai.usage.output_tokens": 50,
    })  # fmt: skip
    # No cache write price: the 100 tokens written are priced as input.
    assert float(span["cost"]) == pytest.approx((300 * 2 + 600 * 0.5 + 100 * 2 + 50 * 4) / 1e6)


def test_admin_sets_and_clears_cache_prices_on_the_price_table_page(admin_user, sender):
    client = client_for(admin_user)
    form = {"model_name": "acme-chat", "input_per_million": "2", "output_per_million": "8"}
    response = client.post(reverse("llmops:prices"), {**form, "cache_read_per_million": "0.2",
                                                     "cache_write_per_million": "2.5"})  # fmt: skip
    assert response.status_code == 302
    assert "acme-chat $2 $8 $0.2 $2.5" in text_of(client.get(reverse("llmops:prices")))
    edit = client.get(reverse("llmops:prices"), {"edit": "acme-chat"}).content.decode()
    assert 'name="cache_read_per_million" value="0.200000"' in edit

    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-chat",
                  "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 500,
                  "gen_ai.usage.cache_creation.input_tokens": 400, "gen_ai.usage.output_tokens": 10}  # fmt: skip
    cost.forget_prices()  # a changed price applies to spans arriving after the process reads it again
    assert float(_ingest(sender, attributes)["cost"]) == pytest.approx((100 * 2 + 500 * 0.2 + 400 * 2.5 + 80) / 1e6)

    bad = client.post(reverse("llmops:prices"), {**form, "cache_read_per_million": "-1"})
    assert bad.status_code == 400
    assert "Cache read USD / 1M" in text_of(bad) and "greater than or equal to 0" in text_of(bad)
    assert PriceEntry.objects.get(model_name="acme-chat").cache_read_per_million == Decimal("0.2")

    assert client.post(reverse("llmops:prices"), {**form, "cache_read_per_million": ""}).status_code == 302
    entry = PriceEntry.objects.get(model_name="acme-chat")
    assert (entry.cache_read_per_million, entry.cache_write_per_million) == (None, None)
    assert "acme-chat $2 $8 as input as input" in text_of(client.get(reverse("llmops:prices")))


def test_a_new_model_takes_cache_prices_from_the_table_and_its_page_edits_them(admin_user, viewer, provider):
    client = client_for(admin_user)
    lookup = client.get(reverse("llmops:price-lookup"), {"model-name": "gpt-4o-mini"}, HTTP_HX_REQUEST="true")
    assert 'name="model-cache_read_per_million" value="0.075000"' in lookup.content.decode()
    url = reverse("llmops:provider-action", args=[provider.pk, "add-model"])
    assert client.post(url, {"model-name": "gpt-4o-mini"}).status_code == 302
    model = LLMModel.objects.get(provider=provider, name="gpt-4o-mini")
    assert (model.input_per_million, model.cache_read_per_million, model.cache_write_per_million) == (
        Decimal("0.15"), Decimal("0.075"), None,
    )  # fmt: skip

    price_url = reverse("llmops:provider-action", args=[provider.pk, "price"])
    prefix = f"price-{model.pk}-"
    prices = {"model": model.pk, f"{prefix}input_per_million": "0.15", f"{prefix}output_per_million": "0.6",
              f"{prefix}cache_read_per_million": "0.05", f"{prefix}cache_write_per_million": "0.3"}  # fmt: skip
    assert client.post(price_url, prices).status_code == 302
    model.refresh_from_db()
    assert (model.cache_read_per_million, model.cache_write_per_million) == (Decimal("0.05"), Decimal("0.3"))
    assert "$0.15 / $0.6 cache read $0.05, cache write $0.3" in text_of(
        client_for(viewer).get(reverse("llmops:provider", args=[provider.pk]))
    )
    bad = client.post(price_url, {**prices, f"{prefix}cache_write_per_million": "many"})
    assert bad.status_code == 400 and "Enter a number." in text_of(bad)
    model.refresh_from_db()
    assert model.cache_write_per_million == Decimal("0.3")


def test_the_api_reads_and_writes_cache_prices(admin_api, viewer_api, provider):
    entry = PriceEntry.objects.get(model_name="claude-3-5-sonnet*")
    read = viewer_api.get(f"/api/v1/llmops/prices/{entry.pk}/").json()
    assert (read["cache_read_per_million"], read["cache_write_per_million"]) == (0.3, 3.75)

    # Left out: kept; null: priced as input again.
    changed = admin_api.patch(f"/api/v1/llmops/prices/{entry.pk}/", {"input_per_million": 3.5}, format="json")
    assert changed.status_code == 200 and changed.json()["cache_read_per_million"] == 0.3
    cleared = admin_api.patch(f"/api/v1/llmops/prices/{entry.pk}/", {"cache_write_per_million": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["cache_write_per_million"] is None
    bad = admin_api.patch(f"/api/v1/llmops/prices/{entry.pk}/", {"cache_read_per_million": -1}, format="json")
    assert bad.status_code == 400 and "cache_read_per_million" in bad.json()["errors"]
    too_fine = admin_api.patch(
        f"/api/v1/llmops/prices/{entry.pk}/", {"cache_read_per_million": "0.0000001"}, format="json"
    )
    assert too_fine.status_code == 400 and "cache_read_per_million" in too_fine.json()["errors"]
    entry.refresh_from_db()
    assert (entry.input_per_million, entry.cache_read_per_million, entry.cache_write_per_million) == (
        Decimal("3.5"), Decimal("0.3"), None,
    )  # fmt: skip

    created = admin_api.post("/api/v1/llmops/models/", {"provider": provider.name, "name": "claude-3-5-sonnet-x",
                                                          "cache_write_per_million": "4"}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    # The table's prices where none was given; the given cache write price.
    assert (created.json()["input_per_million"], created.json()["cache_read_per_million"]) == (3.5, 0.3)
    assert created.json()["cache_write_per_million"] == 4.0
    pk = created.json()["id"]
    patched = admin_api.patch(f"/api/v1/llmops/models/{pk}/", {"cache_read_per_million": None}, format="json")
    assert patched.status_code == 200 and patched.json()["cache_read_per_million"] is None
    assert patched.json()["cache_write_per_million"] == 4.0
    assert viewer_api.patch(f"/api/v1/llmops/models/{pk}/", {"cache_read_per_million": 1}).status_code == 403


def test_an_evaluation_models_cost_prices_cached_tokens_the_same_way(admin_user, provider):
    model = services.add_model(provider=provider, name="m", actor=admin_user, input_per_million="1",
                               output_per_million="2", cache_read_per_million="0.1")  # fmt: skip
    assert model.cost(1000, 100) == pytest.approx((1000 * 1 + 100 * 2) / 1e6)
    assert model.cost(1000, 100, cache_read_tokens=900) == pytest.approx((100 * 1 + 900 * 0.1 + 100 * 2) / 1e6)
