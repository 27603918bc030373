"""Runs evaluators over the generations stored since their last sweep.

Each evaluator keeps a cursor: the id of the last span it looked at. A sweep (`evaluate_new_spans`, run in
Celery for every enabled evaluator by the `llmops.run-evaluators` beat entry) reads the next generations
past the cursor that match the evaluator's filter, keeps the traces in its consistent sample, scores them
with its scorers (`llm-rubric` through the judge model's provider) and stores one score per scorer and
span, moving the cursor in the same transaction. Nothing depends on a message reaching the broker: a
sweep missed while Redis is down is made by the next one, and a sweep run twice stores nothing twice
(one score per evaluator, span and name).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from .. import scorers as scoring
from ..engine import Caller, score_async
from ..models import DataType, Evaluator, Score, ScoreConfig, Span
from ..models.scores import ScoreValueError
from .cases import span_case
from .sampling import in_sample

logger = logging.getLogger(__name__)

BATCH = 500
JUDGED_BATCH = 50


@dataclass
class SweepResult:
    """What one sweep of one evaluator did."""

    seen: int = 0
    scored: int = 0
    scores: int = 0
    skipped_busy: bool = False


def attribute_match(key: str, value: object) -> Q:
    """Spans whose kept attribute `key` equals `value` (PostgreSQL: the spans' GIN index)."""
    if connection.vendor == "postgresql":
        return Q(attributes__contains={key: value})
    return Q(**{f"attributes__{key}": value})


def matching_generations(filter_: dict) -> QuerySet[Span]:
    """Generations (spans with a model) matching an evaluator's filter."""
    spans = Span.objects.exclude(model="")
    for key, column in (("service", "service"), ("model", "model"), ("prompt", "prompt_name"), ("name", "name")):
        if filter_.get(key):
            spans = spans.filter(**{column: filter_[key]})
    if filter_.get("prompt_version") not in (None, ""):
        spans = spans.filter(prompt_version_number=int(filter_["prompt_version"]))
    for key, value in (filter_.get("attributes") or {}).items():
        spans = spans.filter(attribute_match(key, value))
    return spans


def _specs(evaluator: Evaluator) -> list[scoring.ScorerSpec]:
    return scoring.parse_specs(evaluator.scorers)


async def _score_all(specs: list[scoring.ScorerSpec], spans: list[Span], judge) -> list[tuple]:
    caller = Caller()
    cases = [span_case(span) for span in spans]
    results = await asyncio.gather(*(score_async(specs, case, caller, judge) for case in cases))
    return list(zip(spans, results, strict=True))


def _score_rows(evaluator: Evaluator, specs: list[scoring.ScorerSpec], scored: list[tuple]) -> list[Score]:
    configs = {c.name: c for c in ScoreConfig.objects.filter(name__in=[s.display_name for s in specs])}
    rows = []
    now = timezone.now()
    for span, (_passed, _mean, results) in scored:
        for spec, result in zip(specs, results, strict=True):
            name = spec.display_name
            value, string_value, data_type = result["score"], "", DataType.NUMERIC
            if config := configs.get(name):
                try:
                    value, string_value = config.clean_value(result["score"])
                except ScoreValueError as exc:
                    logger.warning("evaluator %s: score %s of span %s refused: %s", evaluator.pk, name, span.span_id,
                                   exc)  # fmt: skip
                    continue
                data_type = config.data_type
            rows.append(Score(
                trace_id=span.trace_id, span_id=span.span_id, name=name, data_type=data_type, value=value,
                string_value=string_value, source=Score.Source.EVALUATOR, passed=result["passed"],
                comment=str(result["reason"])[:2000], config=config, evaluator=evaluator, model=span.model,
                prompt_version_id=span.prompt_version_id, created_at=now,
            ))  # fmt: skip
    return rows


def evaluate_new_spans(evaluator_id: int, *, limit: int | None = None) -> SweepResult:
    """One sweep of an evaluator: score the sampled generations stored past its cursor (at most `limit`)."""
    result = SweepResult()
    with transaction.atomic():
        evaluator = (
            Evaluator.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("judge_model__provider")
            .filter(pk=evaluator_id, enabled=True)
            .first()
        )
        if evaluator is None:
            result.skipped_busy = Evaluator.objects.filter(pk=evaluator_id, enabled=True).exists()
            return result
        specs = _specs(evaluator)
        judged = any(scoring.SCORERS[spec.type].is_llm for spec in specs)
        size = limit or (JUDGED_BATCH if judged else BATCH)
        # The newest id committed now: with fewer matches than `size`, the cursor moves up to it.
        newest = Span.objects.filter(id__gt=evaluator.cursor).aggregate(newest=Max("id"))["newest"]
        spans = list(matching_generations(evaluator.filter).filter(id__gt=evaluator.cursor).order_by("id")[:size])
        sampled = [s for s in spans if in_sample(s.trace_id, evaluator.filter, evaluator.sampling_rate)]
        if judged and evaluator.judge_model is None:
            logger.warning("evaluator %s has llm-rubric scorers but no judge model: nothing scored", evaluator.pk)
            sampled = []
        scored = asyncio.run(_score_all(specs, sampled, evaluator.judge_model)) if sampled else []
        rows = _score_rows(evaluator, specs, scored)
        Score.objects.bulk_create(rows, ignore_conflicts=True)
        result.seen, result.scored, result.scores = len(spans), len(scored), len(rows)
        cursor = spans[-1].id if len(spans) == size else max(evaluator.cursor, newest or 0)
        Evaluator.objects.filter(pk=evaluator.pk).update(
            cursor=cursor, spans_seen=evaluator.spans_seen + result.seen,
            spans_scored=evaluator.spans_scored + result.scored, last_run_at=timezone.now(),
        )  # fmt: skip
    return result


def enabled_evaluators() -> list[int]:
    return list(Evaluator.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True))
