"""LLMOps test data, made through the services as people make it (so every row is audited and valid)."""

from __future__ import annotations

from llmops import engine, services
from llmops.models import Dataset, EvalRun, LLMModel, Prompt, PromptVersion, Provider

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo")]
CAPITALS_MESSAGES = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "What is the capital of {{ country }}?"},
]


def provider(*, base_url: str, actor, name: str = "local", **options) -> Provider:
    """A provider at `base_url` (the fake OpenAI server's, say); `options` as `create_provider` takes them."""
    return services.create_provider(name=name, base_url=base_url, actor=actor, **options)


def model(*, provider: Provider, actor, name: str = "test-model", input_per_million: object = "1",
          output_per_million: object = "2") -> LLMModel:  # fmt: skip
    """A model, priced at 1 USD per 1M input tokens and 2 USD per 1M output tokens unless told otherwise."""
    return services.add_model(provider=provider, name=name, actor=actor, input_per_million=input_per_million,
                              output_per_million=output_per_million)  # fmt: skip


def prompt(*, actor, name: str = "capitals", messages: list[dict] | None = None, model: str = "test-model",
           parameters: dict | None = None) -> Prompt:  # fmt: skip
    """A prompt with its first version: by default the capitals question, at temperature 0."""
    return services.create_prompt(name=name, actor=actor, messages=messages or CAPITALS_MESSAGES, model=model,
                                  parameters={"temperature": 0} if parameters is None else parameters)  # fmt: skip


def version(*, prompt: Prompt, actor, messages: list[dict], **fields) -> PromptVersion:
    """The prompt's next version."""
    return services.create_version(prompt=prompt, actor=actor, messages=messages, **fields)


def dataset(*, actor, name: str = "capitals", rows: list[tuple[str, str]] = CAPITALS) -> Dataset:
    """A dataset with one item per (country, city): input {"country": ...}, the city expected."""
    created = services.create_dataset(name=name, actor=actor)
    for country, city in rows:
        services.add_item(dataset=created, actor=actor, input={"country": country}, expected_output=city)
    return created


def names_the_city() -> list[dict]:
    """Passes when the answer names the expected city ("The capital is Paris." against "Paris")."""
    return [{"type": "rouge-l", "threshold": 0.3}]


def run(*, version: PromptVersion, model: LLMModel, dataset: Dataset, actor, scorers: list[dict] | None = None,
        **options) -> EvalRun:  # fmt: skip
    """A queued run of one version and one model (scored by `names_the_city` unless told otherwise)."""
    return services.create_run(dataset=dataset, prompt_versions=[version], models=[model],
                               scorers=scorers or names_the_city(), actor=actor, **options)  # fmt: skip


def run_now(run: EvalRun) -> EvalRun:
    """Execute a run in this process, to the end."""
    assert engine.execute(run.pk) == "completed"
    run.refresh_from_db()
    return run


def finished_run(**fields) -> EvalRun:
    """A run (as `run` takes it) executed to the end."""
    return run_now(run(**fields))
