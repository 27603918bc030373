"""LLMOps fixtures: the local OpenAI-compatible server, a provider pointing at it, prompts, datasets and runs."""

from __future__ import annotations

import pytest

from . import factories
from .factories import CAPITALS
from .fake_openai import FakeOpenAI


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
    return factories.provider(base_url=fake_llm.base_url, api_key="sk-test-123", actor=admin_user, max_concurrency=4)


@pytest.fixture
def llm(provider, admin_user):
    """A model priced at 1 USD per 1M input tokens and 2 USD per 1M output tokens."""
    return factories.model(provider=provider, actor=admin_user)


@pytest.fixture
def capitals_prompt(operator):
    return factories.prompt(actor=operator)


@pytest.fixture
def capitals_dataset(operator):
    return factories.dataset(actor=operator)


@pytest.fixture
def version(capitals_prompt):
    """The capitals prompt's first (and only) version."""
    return capitals_prompt.versions.get()


@pytest.fixture
def finished_run(version, llm, capitals_dataset, operator):
    """A finished run of the capitals prompt on the capitals dataset, scored by `factories.names_the_city`."""
    return factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator)
