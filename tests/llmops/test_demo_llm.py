"""The demo model (llmops/demo_llm.py): the OpenAI wire format to the official client, answers from the
datasets with a fixed share of mistakes, a real evaluation run against it, and the seeded demo provider."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from llmops import demo, engine
from llmops.demo_llm import DEMO_MODELS, DemoModel
from llmops.models import Provider, RunResult

from . import factories

COUNTRIES = [
    ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"),
    ("Peru", "Lima"), ("Canada", "Ottawa"), ("Egypt", "Cairo"), ("Norway", "Oslo"), ("Chile", "Santiago"),
    ("Ghana", "Accra"), ("Nepal", "Kathmandu"), ("Poland", "Warsaw"), ("Cuba", "Havana"), ("Iran", "Tehran"),
    ("Iraq", "Baghdad"), ("Mali", "Bamako"), ("Laos", "Vientiane"), ("Fiji", "Suva"), ("Oman", "Muscat"),
]  # fmt: skip


@pytest.fixture
def demo_model():
    server = DemoModel(lambda: [([country], city) for country, city in COUNTRIES], latency=0).start()
    yield server
    server.close()


@pytest.fixture
def client(demo_model):
    with openai.OpenAI(base_url=demo_model.base_url, api_key="not-needed", max_retries=0) as sdk:
        yield sdk


def ask(client, country: str, model: str = "demo-large", system: str = "Answer with the city only."):
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": f"Capital of {country}?"}],
    )


def test_the_official_client_gets_chat_completions_with_usage(client):
    answers = {country: ask(client, country) for country, _city in COUNTRIES}
    france = answers["France"]
    assert france.object == "chat.completion" and france.model == "demo-large" and france.id.startswith("chatcmpl-")
    choice = france.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert france.usage.prompt_tokens > 0 and france.usage.completion_tokens > 0
    assert france.usage.total_tokens == france.usage.prompt_tokens + france.usage.completion_tokens
    # Mostly the dataset's expected answer, sometimes not: a weak model, not an oracle.
    right = [country for country, city in COUNTRIES if answers[country].choices[0].message.content == city]
    assert 0.6 * len(COUNTRIES) <= len(right) < len(COUNTRIES)


def test_answers_are_deterministic_and_the_small_model_errs_more(client):
    def correct(model: str) -> int:
        return sum(ask(client, country, model).choices[0].message.content == city for country, city in COUNTRIES)

    assert [ask(client, "Peru").choices[0].message.content for _ in range(3)] == [
        ask(client, "Peru").choices[0].message.content
    ] * 3
    assert correct("demo-small") < correct("demo-large")


def test_models_are_listed_and_limits_and_bad_requests_answer_like_openai(client, demo_model):
    assert [m.id for m in client.models.list()] == list(DEMO_MODELS)
    long = client.chat.completions.create(
        model="demo-large", max_tokens=1, messages=[{"role": "user", "content": "Unknown question"}]
    )
    assert long.choices[0].finish_reason == "length" and len(long.choices[0].message.content.split()) == 1
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="demo-large", messages=[])
    assert "messages" in refused.value.message
    request = urllib.request.Request(f"{demo_model.base_url}/chat/completions", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(request, timeout=5)
    assert bad.value.code == 400 and "JSON" in json.loads(bad.value.read())["error"]["message"]


@pytest.mark.django_db
def test_an_evaluation_run_on_the_demo_model_completes_with_scored_results(demo_model, admin_user, operator):
    provider = factories.provider(base_url=demo_model.base_url, actor=admin_user, name="demo")
    model = factories.model(provider=provider, actor=admin_user, name="demo-small")
    prompt = factories.prompt(actor=operator, model="demo-small")
    dataset = factories.dataset(actor=operator, rows=COUNTRIES)
    run = factories.run(version=prompt.versions.get(), model=model, dataset=dataset, actor=operator)

    assert engine.execute(run.pk) == "completed"

    run.refresh_from_db()
    assert (run.done, run.total, run.errors) == (20, 20, 0)
    assert 0 < run.passed < run.total  # realistic: some answers wrong
    rows = list(RunResult.objects.filter(run=run).select_related("item"))
    assert all(r.input_tokens > 0 and r.output_tokens > 0 and r.latency_ms > 0 and r.scores for r in rows)
    assert sum(r.passed for r in rows) == run.passed and any(r.output != r.item.expected_output for r in rows)
    assert all(r.passed for r in rows if r.output == r.item.expected_output)


@pytest.mark.django_db
def test_seeding_turns_the_old_keyless_openai_provider_into_the_demo_model(admin_user, settings):
    from llmops import services

    settings.OPSPORTAL_DEMO_LLM_BIND = "127.0.0.1:8123"
    old = services.create_provider(name=demo.OLD_DEMO_PROVIDER, base_url=demo.OLD_DEMO_BASE_URL, actor=admin_user)
    real = services.create_provider(
        name="OpenAI", base_url="https://api.openai.com/v1", api_key="sk-real", actor=admin_user
    )

    provider = demo.demo_provider(admin=admin_user)

    assert provider.pk == old.pk and provider.name == "Demo model (local, not an LLM)"
    assert provider.base_url == "http://127.0.0.1:8123/v1"
    assert set(provider.models.values_list("name", flat=True)) >= set(DEMO_MODELS)
    real.refresh_from_db()
    assert real.base_url == "https://api.openai.com/v1" and not real.models.exists()
    # The port changed: the demo provider follows it.
    settings.OPSPORTAL_DEMO_LLM_BIND = "127.0.0.1:8124"
    assert demo.demo_provider(admin=admin_user).base_url == "http://127.0.0.1:8124/v1"
    assert Provider.objects.filter(name="Demo model (local, not an LLM)").count() == 1
