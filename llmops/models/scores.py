"""Online evaluation, feedback and human review of production traces (issue 15).

- `ScoreConfig` says what a named score may hold: a number within bounds, one of some categories, or a
  boolean. Every score of that name is checked against it (`ScoreConfig.clean_value`).
- `Score` is one verdict on a trace or one of its spans, from an `Evaluator` (automated scorers, run
  on new generations in Celery), from the application's users (the feedback API) or from a human
  reviewer (an `AnnotationQueue`). Traces and spans are referred to by their hex ids, not by foreign
  keys: the span table is partitioned and unmanaged, and feedback may arrive before its trace.
- `Evaluator`: scorers from `llmops.scorers`, a filter over generations and a sampling rate; its
  `cursor` is the id of the last span it looked at, so a sweep picks up every span stored since, and
  `late_windows` the id ranges it passed whose writers may still commit spans below the cursor
  (`llmops.online.runner` looks at them again until those transactions have ended).
- `AnnotationQueue` and `AnnotationItem`: traces waiting for a reviewer; an item is claimed by one
  reviewer at a time until `claimed_until`. A queue with a filter keeps filling: `fill_cursor` is the id
  of the newest trace its filling looked at.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .evaluation import LLMModel, PromptVersion

THUMBS = {"up": True, "down": False, "true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


class DataType(models.TextChoices):
    NUMERIC = "numeric", "Numeric"
    CATEGORICAL = "categorical", "Categorical"
    BOOLEAN = "boolean", "Boolean"


class ScoreValueError(ValueError):
    """A score's value does not fit its config (the message says why)."""


class ScoreConfig(models.Model):
    """The shape of a named score: numeric with optional bounds, categorical with its categories, or boolean."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    data_type = models.CharField(max_length=12, choices=DataType.choices, default=DataType.NUMERIC)
    min_value = models.FloatField(null=True, blank=True, help_text="Numeric: the lowest value allowed.")
    max_value = models.FloatField(null=True, blank=True, help_text="Numeric: the highest value allowed.")
    categories = models.JSONField(default=list, blank=True, help_text="Categorical: the values allowed, in order.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def describe(self) -> str:
        """What the config allows, as a reviewer reads it."""
        if self.data_type == DataType.BOOLEAN:
            return "true or false"
        if self.data_type == DataType.CATEGORICAL:
            return "one of " + ", ".join(str(c) for c in self.categories)
        low = "-inf" if self.min_value is None else f"{self.min_value:g}"
        high = "inf" if self.max_value is None else f"{self.max_value:g}"
        return f"a number from {low} to {high}"

    def clean_value(self, value: object) -> tuple[float | None, str]:
        """(numeric value, string value) for `value`, or ScoreValueError naming what is allowed.

        Booleans are stored as 1.0/0.0 with the string "true"/"false" (thumbs "up"/"down" accepted);
        categories as their string with their position as the number.
        """
        if self.data_type == DataType.BOOLEAN:
            if isinstance(value, bool):
                flag = value
            elif isinstance(value, int | float) and value in (0, 1):
                flag = bool(value)
            elif isinstance(value, str) and value.strip().lower() in THUMBS:
                flag = THUMBS[value.strip().lower()]
            else:
                raise ScoreValueError(f"{value!r} is not a boolean for {self.name!r} (true/false or up/down)")
            return (1.0 if flag else 0.0), ("true" if flag else "false")
        if self.data_type == DataType.CATEGORICAL:
            labels = [str(c) for c in self.categories]
            if str(value) not in labels:
                raise ScoreValueError(f"{value!r} is not a category of {self.name!r}: {', '.join(labels)}")
            return float(labels.index(str(value))), str(value)
        number = numeric(value)
        if number is None:
            raise ScoreValueError(f"{value!r} is not a number for {self.name!r}")
        if (self.min_value is not None and number < self.min_value) or (
            self.max_value is not None and number > self.max_value
        ):
            raise ScoreValueError(f"{number:g} is outside {self.name!r}: {self.describe()}")
        return number, ""


def numeric(value: object) -> float | None:
    """A finite float from a number or numeric string (booleans are not numbers here), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Evaluator(models.Model):
    """Automated scorers run on new production generations that match `filter`, a sample of `sampling_rate`.

    `scorers` are `llmops.scorers` specs (`[{"type": "contains", "config": {...}}, ...]`); `llm-rubric` ones
    are graded by `judge_model`. `filter` keys: `service`, `model`, `prompt` (a prompt's name),
    `prompt_version` (its number), `name` (the span's name), `attributes` ({key: value} of kept attributes).
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    scorers = models.JSONField(default=list)
    judge_model = models.ForeignKey(LLMModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    filter = models.JSONField(default=dict, blank=True)
    sampling_rate = models.FloatField(default=1.0, help_text="0 to 1: the share of matching traces scored.")
    enabled = models.BooleanField(default=True)
    cursor = models.BigIntegerField(default=0, help_text="The id of the last span this evaluator looked at.")
    late_windows = models.JSONField(
        default=list, blank=True,
        help_text="Id ranges passed while their writers' transactions may still have been open: "
        '[{"low", "high", "xmin", "fence", "at"}], looked at again until those transactions ended.',
    )  # fmt: skip
    spans_seen = models.BigIntegerField(default=0)
    spans_scored = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("llmops:evaluator", args=[self.pk])


class AnnotationQueue(models.Model):
    """Traces for people to review, scored with `score_configs`; filled by `filter` (trace search keys) or by hand."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    score_configs = models.ManyToManyField(ScoreConfig, blank=True, related_name="queues")
    filter = models.JSONField(default=dict, blank=True, help_text="Trace search keys (service, model, status ...).")
    fill_cursor = models.BigIntegerField(default=0, help_text="The id of the newest trace the filling looked at.")
    last_filled_at = models.DateTimeField(null=True, blank=True, help_text="When the filling last ran.")
    last_fill_added = models.PositiveIntegerField(default=0, help_text="How many traces that fill added.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("llmops:review-queue", args=[self.pk])

    @property
    def fills(self) -> bool:
        """Whether the periodic filling adds new matching traces (a queue without a filter is filled by hand)."""
        return bool(self.filter)


class AnnotationItem(models.Model):
    """One trace in a queue: pending, claimed by a reviewer until `claimed_until`, then done or skipped."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        SKIPPED = "skipped"

    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="items")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    claimed_until = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")  # fmt: skip
    reviewed_at = models.DateTimeField(null=True, blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["queue_id", "id"]
        constraints = [models.UniqueConstraint(fields=["queue", "trace_id"], name="llmops_annotation_item_once")]
        indexes = [models.Index(fields=["queue", "status", "id"], name="llmops_annotation_next")]

    def __str__(self) -> str:
        return f"{self.trace_id} in {self.queue_id}"


class ScoreQuerySet(models.QuerySet):
    def for_trace(self, trace_id: str) -> ScoreQuerySet:
        return self.filter(trace_id=trace_id.lower()).order_by("created_at", "id")

    def for_span(self, trace_id: str, span_id: str) -> ScoreQuerySet:
        return self.filter(trace_id=trace_id.lower(), span_id=span_id.lower()).order_by("created_at", "id")


class Score(models.Model):
    """One score of a trace, or of one of its spans (`span_id`), from an evaluator, feedback or a reviewer.

    `value` is the number (booleans 1/0, categories their position), `string_value` the category or
    "true"/"false"; `model` and `prompt_version` are copied from the span scored so charts over time
    per model and prompt version read this table alone.
    """

    class Source(models.TextChoices):
        EVALUATOR = "evaluator"
        FEEDBACK = "feedback"
        HUMAN = "human"

    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, blank=True, default="", help_text="Empty: the score is the trace's.")
    name = models.CharField(max_length=100)
    data_type = models.CharField(max_length=12, choices=DataType.choices, default=DataType.NUMERIC)
    value = models.FloatField(null=True, blank=True)
    string_value = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(max_length=10, choices=Source.choices)
    passed = models.BooleanField(null=True, blank=True, help_text="Evaluators: the scorer's verdict.")
    comment = models.TextField(blank=True, default="")
    config = models.ForeignKey(ScoreConfig, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores")
    evaluator = models.ForeignKey(Evaluator, null=True, blank=True, on_delete=models.CASCADE, related_name="scores")
    queue = models.ForeignKey(AnnotationQueue, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The reviewer, or the API token's user for feedback.",
    )  # fmt: skip
    end_user = models.CharField(max_length=200, blank=True, default="", help_text="Feedback: the end user's id.")
    model = models.CharField(max_length=200, blank=True, default="")
    prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="scores")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScoreQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["evaluator", "span_id", "name"], condition=Q(evaluator__isnull=False),
                                    name="llmops_score_evaluator_once"),
        ]  # fmt: skip
        indexes = [
            models.Index(fields=["trace_id", "span_id"], name="llmops_score_trace"),
            models.Index(fields=["name", "-created_at"], name="llmops_score_name_time"),
            models.Index(fields=["evaluator", "-created_at"], name="llmops_score_evaluator_time"),
            models.Index(fields=["prompt_version", "name", "created_at"], name="llmops_score_version_time"),
            models.Index(fields=["model", "name", "created_at"], name="llmops_score_model_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.display_value} on {self.trace_id}"

    @property
    def display_value(self) -> str:
        if self.string_value:
            return self.string_value
        return "" if self.value is None else f"{self.value:g}"
