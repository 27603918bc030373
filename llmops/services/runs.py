"""Evaluation runs: generated (dataset x prompt versions x models) or scoring imported outputs; cancel, re-score.

A run is committed first and then handed to a worker by task name; the engine executes it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.enqueue import enqueue_on_commit

from .. import engine, importers
from .. import scorers as scoring
from ..models import Dataset, DatasetItem, EvalRun, LLMModel, PromptVersion, RunColumn, RunItem
from .base import Actor, InvalidInput, user_of

RUN_NAME_MAX = EvalRun._meta.get_field("name").max_length
LABEL_MAX = RunColumn._meta.get_field("label").max_length


def _cut(text: str, limit: int) -> str:
    """A generated name or label that fits its column: cut with an ellipsis (long prompt and model names)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


MAX_RUN_CELLS = 200_000


def _clean_scorers(scorers: object) -> list[dict]:
    if not isinstance(scorers, list) or not scorers:
        raise InvalidInput("give at least one scorer", field="scorers")
    cleaned = []
    for index, data in enumerate(scorers):
        if not isinstance(data, dict):
            raise InvalidInput("must be an object", field=f"scorers[{index}]")
        scoring.parse_spec(data, f"scorers[{index}]")  # a ScorerConfigError is an InvalidInput naming the option
        cleaned.append(data)
    return cleaned


def _uses_judge(scorers: list[dict]) -> bool:
    return any(scoring.SCORERS[scoring.parse_spec(s).type].is_llm for s in scorers)


@transaction.atomic
def create_run(
    *, dataset: Dataset, prompt_versions: Iterable[PromptVersion], models: Iterable[LLMModel], scorers: list[dict],
    actor: Actor, name: str = "", judge_model: LLMModel | None = None, concurrency: int | None = None,
) -> EvalRun:  # fmt: skip
    """A matrix run: every item of `dataset` x every (prompt version, model); executed by a worker."""
    prompt_versions, models = list(prompt_versions), list(models)
    if not prompt_versions:
        raise InvalidInput("choose at least one prompt version", field="prompt_versions")
    if not models:
        raise InvalidInput("choose at least one model", field="models")
    scorers = _clean_scorers(scorers)
    if _uses_judge(scorers) and judge_model is None:
        raise InvalidInput("llm-rubric scorers need a judge model", field="judge_model")
    if concurrency is not None and not 1 <= int(concurrency) <= 256:
        raise InvalidInput("between 1 and 256", field="concurrency")
    items = list(dataset.items.order_by("id"))
    if not items:
        raise InvalidInput(f"{dataset.name!r} has no items", field="dataset")
    cells = len(items) * len(prompt_versions) * len(models)
    if cells > MAX_RUN_CELLS:
        raise InvalidInput(f"the run would have {cells:,} results; at most {MAX_RUN_CELLS:,}", field="dataset")
    run = EvalRun.objects.create(
        name=name or _cut(f"{', '.join(sorted({str(v) for v in prompt_versions}))} on {dataset.name}", RUN_NAME_MAX),
        kind=EvalRun.Kind.GENERATE,
        dataset=dataset,
        scorers=scorers,
        judge_model=judge_model,
        concurrency=concurrency,
        total=cells,
        created_by=user_of(actor),
    )
    RunColumn.objects.bulk_create(
        [
            RunColumn(run=run, position=position, prompt_version=version, model=model,
                      label=_cut(f"{version.prompt.name} v{version.version} x {model.name}", LABEL_MAX))
            for position, (version, model) in enumerate((v, m) for v in prompt_versions for m in models)
        ]
    )  # fmt: skip
    _snapshot_items(run, items)
    audit.record(action="create", actor=actor, obj=run, message=f"{cells} results to generate")
    _enqueue(run)
    return run


def _snapshot_items(run: EvalRun, items: list[DatasetItem]) -> None:
    RunItem.objects.bulk_create(
        [
            RunItem(
                run=run,
                position=position,
                source_item=item,
                input=item.input,
                expected_output=item.expected_output,
                context=item.context,
                metadata=item.metadata,
            )
            for position, item in enumerate(items)
        ],
        batch_size=1000,
    )


@transaction.atomic
def create_score_run(
    *, data: bytes, filename: str, scorers: list[dict], actor: Actor, name: str = "",
    dataset: Dataset | None = None, judge_model: LLMModel | None = None,
    prompt_version: PromptVersion | None = None,
) -> tuple[EvalRun | None, importers.ImportResult]:  # fmt: skip
    """Score outputs that were recorded elsewhere (CSV/JSONL with `output` per row); nothing is generated.

    `prompt_version` says which version produced the outputs (e.g. recorded production answers), so
    the run counts for that version's comparisons and release gate like a generated run.
    """
    scorers = _clean_scorers(scorers)
    if _uses_judge(scorers) and judge_model is None:
        raise InvalidInput("llm-rubric scorers need a judge model", field="judge_model")
    result = importers.parse(data, filename, require_output=True)
    if not result.ok:
        return None, result
    run = EvalRun.objects.create(
        name=name or f"Imported outputs from {filename}",
        kind=EvalRun.Kind.SCORE,
        dataset=dataset,
        scorers=scorers,
        judge_model=judge_model,
        total=len(result.rows),
        created_by=user_of(actor),
    )
    RunColumn.objects.create(
        run=run,
        position=0,
        prompt_version=prompt_version,
        label=_cut(f"{prompt_version} (imported outputs)" if prompt_version else name or "imported outputs", LABEL_MAX),
    )
    RunItem.objects.bulk_create(
        [
            RunItem(
                run=run,
                position=position,
                input=row.input,
                expected_output=row.expected_output,
                context=row.context,
                metadata=row.metadata,
                imported_output=row.output,
            )
            for position, row in enumerate(result.rows)
        ],
        batch_size=1000,
    )
    audit.record(action="create", actor=actor, obj=run, message=f"{len(result.rows)} imported outputs to score")
    _enqueue(run)
    return run, result


def _enqueue(run: EvalRun) -> None:
    enqueue_on_commit("llmops.tasks.execute_run", run.pk)


@transaction.atomic
def cancel_run(*, run: EvalRun, actor: Actor) -> EvalRun:
    run = EvalRun.objects.select_for_update().get(pk=run.pk)
    if run.finished:
        raise InvalidInput(f"run #{run.pk} is already {run.status}", field="status")
    run.cancel_requested = True
    if run.status == EvalRun.Status.QUEUED:
        run.status = EvalRun.Status.CANCELLED
        run.finished_at = timezone.now()
    run.save(update_fields=["cancel_requested", "status", "finished_at"])
    audit.record(action="cancel", actor=actor, obj=run)
    return run


def rescore_run(*, run: EvalRun, actor: Actor, scorers: list[dict] | None = None) -> int:
    """Score a finished run's stored outputs again, with new scorers or its own (cheap scorers only)."""
    if not run.finished:
        raise InvalidInput(f"run #{run.pk} is {run.status}; re-score it once it has finished", field="status")
    cleaned = _clean_scorers(scorers) if scorers is not None else None
    if _uses_judge(cleaned if cleaned is not None else run.scorers):
        raise InvalidInput("llm-rubric asks a model; re-scoring runs cheap scorers only", field="scorers")
    previous = run.scorers
    changed = engine.rescore(run, cleaned)
    audit.record(
        action="rescore",
        actor=actor,
        obj=run,
        changes={"scorers": [previous, cleaned]} if cleaned is not None and cleaned != previous else None,
        message=f"{changed} results re-scored",
    )
    return changed
