"""Scores of production traces: score configs, recording a score (checked against its config), the feedback
applications send, and evaluators (automated scorers run on new generations, `llmops.online.runner`).

A score names its trace by hex id; the trace may not be stored yet (feedback can arrive first): the score
is kept and joined by id when it comes. The model and prompt version are copied from the span or trace
when it is known, so the charts over time read the score table alone.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from opsportal.audit import services as audit

from .. import scorers as scoring
from ..models import DataType, Evaluator, LLMModel, Score, ScoreConfig, Span, Trace
from ..models.scores import ScoreValueError, numeric
from .base import Actor, InvalidInput, NotFound, user_of

HEX_TRACE = re.compile(r"^[0-9a-f]{32}$")
HEX_SPAN = re.compile(r"^[0-9a-f]{16}$")
FEEDBACK_NAME = "user-feedback"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
FILTER_KEYS = {"service", "model", "prompt", "prompt_version", "name", "attributes"}


def clean_trace_id(value: object, field: str = "trace_id") -> str:
    text = str(value or "").strip().lower()
    if not HEX_TRACE.match(text):
        raise InvalidInput(f"{value!r} is not a trace id (32 hex digits)", field=field)
    return text


def clean_span_id(value: object, field: str = "span_id") -> str:
    text = str(value or "").strip().lower()
    if not HEX_SPAN.match(text):
        raise InvalidInput(f"{value!r} is not a span id (16 hex digits)", field=field)
    return text


def _score_name(value: object) -> str:
    name = str(value or "").strip()
    if not NAME.match(name):
        raise InvalidInput(f"{value!r}: letters, digits, '_', '-', '.', up to 100, starting with a letter or digit",
                           field="name")  # fmt: skip
    return name


# --- Score configs ---------------------------------------------------------------------------------------------


def _config_fields(data_type: object, min_value: object, max_value: object, categories: object) -> dict:
    if data_type not in DataType.values:
        raise InvalidInput(f"{data_type!r} is not one of {', '.join(DataType.values)}", field="data_type")
    fields: dict = {"data_type": data_type, "min_value": None, "max_value": None, "categories": []}
    if data_type == DataType.NUMERIC:
        for key, raw in (("min_value", min_value), ("max_value", max_value)):
            if raw not in (None, ""):
                if (number := numeric(raw)) is None:
                    raise InvalidInput(f"{raw!r} is not a number", field=key)
                fields[key] = number
        low, high = fields["min_value"], fields["max_value"]
        if low is not None and high is not None and low > high:
            raise InvalidInput("must not be above max_value", field="min_value")
    elif data_type == DataType.CATEGORICAL:
        if isinstance(categories, str):
            categories = [c.strip() for c in categories.split(",")]
        if not isinstance(categories, list) or not [c for c in categories if str(c).strip()]:
            raise InvalidInput("a categorical score needs at least one category", field="categories")
        labels = [str(c).strip() for c in categories if str(c).strip()]
        if len(set(labels)) != len(labels):
            raise InvalidInput("each category once", field="categories")
        fields["categories"] = labels
    return fields


@transaction.atomic
def create_score_config(*, name: object, actor: Actor, data_type: object = DataType.NUMERIC,
                        min_value: object = None, max_value: object = None, categories: object = None,
                        description: str = "") -> ScoreConfig:  # fmt: skip
    """A score config: scores of this name are then checked against it."""
    name = _score_name(name)
    if ScoreConfig.objects.filter(name=name).exists():
        raise InvalidInput(f"a score config named {name!r} exists already", field="name")
    config = ScoreConfig.objects.create(name=name, description=description or "", created_by=user_of(actor),
                                        **_config_fields(data_type, min_value, max_value, categories))  # fmt: skip
    audit.record(action="create", actor=actor, obj=config, message=f"Score config {name}: {config.describe()}")
    return config


@transaction.atomic
def update_score_config(*, config: ScoreConfig, actor: Actor, **fields: object) -> ScoreConfig:
    """Change a config's description, bounds or categories (scores from then on are checked against them).

    Its name and data type change only while no score was recorded under it: the stored scores keep the
    name and the meaning of their numbers."""
    unknown = set(fields) - {"name", "description", "data_type", "min_value", "max_value", "categories"}
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    config = ScoreConfig.objects.select_for_update().get(pk=config.pk)
    used = Score.objects.filter(name=config.name).exists()
    if "name" in fields and str(fields["name"] or "").strip() != config.name:
        name = _score_name(fields["name"])
        if used:
            raise InvalidInput(f"scores were recorded as {config.name!r}: make a new config instead", field="name")
        if ScoreConfig.objects.filter(name=name).exclude(pk=config.pk).exists():
            raise InvalidInput(f"a score config named {name!r} exists already", field="name")
        config.name = name
    data_type = fields.get("data_type", config.data_type)
    if data_type != config.data_type and used:
        raise InvalidInput(f"scores were recorded as {config.data_type}: make a new config instead", field="data_type")
    kept = data_type == config.data_type
    shape = _config_fields(
        data_type,
        fields.get("min_value", config.min_value if kept else None),
        fields.get("max_value", config.max_value if kept else None),
        fields.get("categories", config.categories if kept else None),
    )  # fmt: skip
    for key, value in shape.items():
        setattr(config, key, value)
    if "description" in fields:
        config.description = str(fields["description"] or "")
    config.save()
    audit.record(action="update", actor=actor, obj=config, message=f"Score config {config.name}: {config.describe()}")
    return config


@transaction.atomic
def delete_score_config(*, config: ScoreConfig, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=config)
    config.delete()


def config_named(name: str) -> ScoreConfig | None:
    return ScoreConfig.objects.filter(name=name).first()


def score_value(*, name: str, value: object, config: ScoreConfig | None) -> tuple[str, float | None, str]:
    """(data type, number, string) of `value` for a score named `name`: checked against its config when there is one,
    else taken as a number, a boolean (true/false, up/down) or a category (any other string)."""
    if config is not None:
        try:
            number, text = config.clean_value(value)
        except ScoreValueError as exc:
            raise InvalidInput(str(exc), field="value") from None
        return config.data_type, number, text
    if isinstance(value, bool):
        return DataType.BOOLEAN, (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, str) and value.strip().lower() in ("up", "down", "true", "false"):
        flag = value.strip().lower() in ("up", "true")
        return DataType.BOOLEAN, (1.0 if flag else 0.0), ("true" if flag else "false")
    if (number := numeric(value)) is not None:
        return DataType.NUMERIC, number, ""
    if isinstance(value, str) and value.strip():
        return DataType.CATEGORICAL, None, value.strip()[:200]
    raise InvalidInput(f"{value!r} is not a number, a boolean or a category", field="value")


# --- Recording scores ------------------------------------------------------------------------------------------


def _span_lookup_days() -> int:
    return int(getattr(settings, "LLMOPS_FEEDBACK_SPAN_LOOKUP_DAYS", 7))


def _find_span(trace_id: str, span_id: str) -> Span | None:
    """The span; without a trace id, looked for among the last days' spans only (the span id has no index)."""
    spans = Span.objects.filter(span_id=span_id)
    if trace_id:
        spans = spans.filter(trace_id=trace_id)
    else:
        spans = spans.filter(start_time__gte=timezone.now() - datetime.timedelta(days=_span_lookup_days()))
    return spans.only("trace_id", "span_id", "model", "prompt_version_id").first()


def record_score(*, trace_id: str, name: object, value: object, source: str, actor: Actor, span_id: str = "",
                 comment: str = "", end_user: str = "", queue=None) -> Score:  # fmt: skip
    """Store one score of a trace or span, checked against the config of its name (when there is one)."""
    trace_id = clean_trace_id(trace_id) if trace_id else ""
    span_id = clean_span_id(span_id) if span_id else ""
    if not trace_id and not span_id:
        raise InvalidInput("a trace_id or a span_id is needed", field="trace_id")
    name = _score_name(name)
    config = config_named(name)
    data_type, number, text = score_value(name=name, value=value, config=config)
    model, prompt_version_id = "", None
    if span_id:
        span = _find_span(trace_id, span_id)
        if span is None and not trace_id:
            raise InvalidInput(f"no span {span_id} in the last {_span_lookup_days()} days: send its trace_id too",
                               field="span_id")  # fmt: skip
        if span is not None:
            trace_id, model, prompt_version_id = span.trace_id, span.model, span.prompt_version_id
    if not model:
        trace = Trace.objects.filter(trace_id=trace_id).only("model", "prompt_version_id").first()
        if trace is not None:
            model, prompt_version_id = trace.model, prompt_version_id or trace.prompt_version_id
    return Score.objects.create(
        trace_id=trace_id, span_id=span_id, name=name, data_type=data_type, value=number, string_value=text,
        source=source, comment=str(comment or "")[:10000], config=config, queue=queue, author=user_of(actor),
        end_user=str(end_user or "")[:200], model=model, prompt_version_id=prompt_version_id,
    )  # fmt: skip


def submit_feedback(*, actor: Actor, trace_id: str = "", span_id: str = "", score: object = None,
                    value: object = None, comment: str = "", name: str = "", end_user: str = "") -> Score:  # fmt: skip
    """An application's feedback on a trace or span: a `score` (number) or a `value` (thumbs "up"/"down",
    true/false, or a category), with a comment. Kept even when the trace is not stored yet."""
    if score is None and value is None:
        raise InvalidInput("send a score (a number) or a value (up/down, true/false, a category)", field="score")
    if score is not None and numeric(score) is None and config_named(name or FEEDBACK_NAME) is None:
        raise InvalidInput(f"{score!r} is not a number", field="score")
    return record_score(trace_id=trace_id, span_id=span_id, name=name or FEEDBACK_NAME,
                        value=score if score is not None else value, source=Score.Source.FEEDBACK, actor=actor,
                        comment=comment, end_user=end_user)  # fmt: skip


def trace_known(trace_id: str) -> bool:
    return Trace.objects.filter(trace_id=trace_id).exists()


# --- Evaluators ------------------------------------------------------------------------------------------------


def _clean_filter(value: object) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("an object with service, model, prompt, prompt_version, name, attributes", field="filter")
    unknown = set(value) - FILTER_KEYS
    if unknown:
        raise InvalidInput(f"unknown keys {', '.join(sorted(unknown))}; known: {', '.join(sorted(FILTER_KEYS))}",
                           field="filter")  # fmt: skip
    cleaned = {k: str(v).strip() for k, v in value.items() if k != "attributes" and str(v or "").strip()}
    if "prompt_version" in cleaned and not cleaned["prompt_version"].isdigit():
        raise InvalidInput("prompt_version: a version number", field="filter")
    if "prompt_version" in cleaned:
        cleaned["prompt_version"] = int(cleaned["prompt_version"])
    attributes = value.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidInput("attributes: an object of attribute values", field="filter")
    if attributes:
        cleaned["attributes"] = attributes
    return cleaned


def _clean_rate(value: object) -> float:
    rate = numeric(value)
    if rate is None or not 0 <= rate <= 1:
        raise InvalidInput(f"{value!r}: a number from 0 to 1", field="sampling_rate")
    return rate


def _clean_scorers(value: object, judge_model: LLMModel | None) -> list[dict]:
    specs = scoring.parse_specs(value, "scorers")
    if not specs:
        raise InvalidInput("at least one scorer", field="scorers")
    if any(scoring.SCORERS[s.type].is_llm for s in specs) and judge_model is None:
        raise InvalidInput("llm-rubric scorers need a judge model", field="judge_model")
    return list(value)  # type: ignore[arg-type]


@transaction.atomic
def create_evaluator(*, name: object, actor: Actor, scorers: object, filter: object = None,
                     sampling_rate: object = 1.0, judge_model: LLMModel | None = None, description: str = "",
                     enabled: bool = True) -> Evaluator:  # fmt: skip
    """An evaluator scoring the generations stored from now on that match `filter`, a `sampling_rate` of them."""
    name = _score_name(name)
    if Evaluator.objects.filter(name=name).exists():
        raise InvalidInput(f"an evaluator named {name!r} exists already", field="name")
    newest = Span.objects.order_by("-id").values_list("id", flat=True).first() or 0
    evaluator = Evaluator.objects.create(
        name=name, description=description or "", scorers=_clean_scorers(scorers, judge_model),
        judge_model=judge_model, filter=_clean_filter(filter), sampling_rate=_clean_rate(sampling_rate),
        enabled=bool(enabled), cursor=newest, created_by=user_of(actor),
    )  # fmt: skip
    summary = f"Evaluator {name}: {len(evaluator.scorers)} scorers, {evaluator.sampling_rate:.0%} sampled"
    audit.record(action="create", actor=actor, obj=evaluator, message=summary)
    return evaluator


@transaction.atomic
def update_evaluator(*, evaluator: Evaluator, actor: Actor, **fields: object) -> Evaluator:
    """Change an evaluator's scorers, filter, rate, judge, description or whether it runs."""
    unknown = set(fields) - {"scorers", "filter", "sampling_rate", "judge_model", "description", "enabled"}
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    judge = fields.get("judge_model", evaluator.judge_model)
    if "scorers" in fields or "judge_model" in fields:
        evaluator.scorers = _clean_scorers(fields.get("scorers", evaluator.scorers), judge)  # type: ignore[arg-type]
        evaluator.judge_model = judge  # type: ignore[assignment]
    if "filter" in fields:
        evaluator.filter = _clean_filter(fields["filter"])
    if "sampling_rate" in fields:
        evaluator.sampling_rate = _clean_rate(fields["sampling_rate"])
    if "description" in fields:
        evaluator.description = str(fields["description"] or "")
    if "enabled" in fields:
        evaluator.enabled = bool(fields["enabled"])
    evaluator.save()
    audit.record(action="update", actor=actor, obj=evaluator, message=f"Evaluator {evaluator.name} changed")
    return evaluator


@transaction.atomic
def delete_evaluator(*, evaluator: Evaluator, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=evaluator)
    evaluator.delete()


def get_evaluator(*, pk: int) -> Evaluator:
    evaluator = Evaluator.objects.select_related("judge_model").filter(pk=pk).first()
    if evaluator is None:
        raise NotFound(f"no evaluator {pk}", field="evaluator")
    return evaluator


# --- Figures ---------------------------------------------------------------------------------------------------


@dataclass
class ScoreBucket:
    """The mean of a score's values in one time bucket, for one prompt version or model."""

    start: datetime.datetime
    group: str
    mean: float
    count: int


def score_series(*, name: str, days: int = 7, by: str = "prompt_version", evaluator: Evaluator | None = None,
                 source: str = "") -> list[ScoreBucket]:  # fmt: skip
    """Mean of the score `name` per hour (up to 7 days) or day, per prompt version (`by="prompt_version"`) or model.

    Reads the score table alone (model and prompt version are copied onto each score), by its
    (model | prompt_version, name, created_at) indexes.
    """
    if by not in ("prompt_version", "model"):
        raise InvalidInput("prompt_version or model", field="by")
    since = timezone.now() - datetime.timedelta(days=days)
    scores = Score.objects.filter(name=name, created_at__gte=since, value__isnull=False)
    if evaluator is not None:
        scores = scores.filter(evaluator=evaluator)
    if source:
        scores = scores.filter(source=source)
    bucket = TruncHour("created_at") if days <= 7 else TruncDay("created_at")
    group = ("prompt_version__prompt__name", "prompt_version__version") if by == "prompt_version" else ("model",)
    rows = (
        scores.annotate(bucket=bucket).values("bucket", *group)
        .annotate(mean=Avg("value"), count=Count("id")).order_by("bucket")
    )  # fmt: skip
    out = []
    for row in rows:
        if by == "model":
            label = row["model"] or "(no model)"
        elif row["prompt_version__prompt__name"]:
            label = f"{row['prompt_version__prompt__name']} v{row['prompt_version__version']}"
        else:
            label = "(no prompt version)"
        out.append(ScoreBucket(start=row["bucket"], group=label, mean=float(row["mean"]), count=row["count"]))
    return out


def score_names() -> list[str]:
    """The names scores were recorded under, for choosing a chart."""
    return list(Score.objects.order_by("name").values_list("name", flat=True).distinct())
