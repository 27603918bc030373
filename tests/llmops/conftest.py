"""LLMOps fixtures: the local OpenAI-compatible server, a provider pointing at it, prompts and datasets."""

from __future__ import annotations

import pytest

from llmops import services

from .fake_openai import FakeOpenAI

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo")]


@pytest.fixture
def fake_llm():
    server = FakeOpenAI()
    for country, city in CAPITALS:
        server.answers[f"capital of {country}"] = f"The capital is {city}."
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _price_table(db):
    """The built-in price table comes from a data migration; transactional tests elsewhere empty it."""
    from importlib import import_module

    from django.apps import apps

    import_module("llmops.migrations.0002_price_table").add_prices(apps, None)


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.LLMOPS_RETRY_BASE_SECONDS = 0.05


@pytest.fixture
def provider(fake_llm, admin_user):
    return services.create_provider(
        name="local", base_url=fake_llm.base_url, api_key="sk-test-123", actor=admin_user, max_concurrency=4
    )


@pytest.fixture
def llm(provider, admin_user):
    """A model priced at 1 USD per 1M input tokens and 2 USD per 1M output tokens."""
    return services.add_model(
        provider=provider, name="test-model", actor=admin_user, input_per_million="1", output_per_million="2"
    )


@pytest.fixture
def capitals_prompt(operator):
    return services.create_prompt(
        name="capitals",
        actor=operator,
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "What is the capital of {{ country }}?"},
        ],
        model="test-model",
        parameters={"temperature": 0},
    )


@pytest.fixture
def capitals_dataset(operator):
    dataset = services.create_dataset(name="capitals", actor=operator)
    for country, city in CAPITALS:
        services.add_item(dataset=dataset, actor=operator, input={"country": country}, expected_output=city)
    return dataset
