"""Guardrails: policies (which checks a text must pass, and what happens when it fails) and the record of
every guard call.

A call's record keeps the text only as the policy says (`record_text`): by default the redacted text, so
the personal data and secrets a guard exists to catch are not written to the database by the guard.
Which checks a call violated is kept as a bit mask (`violated`), so violation rates per check are counted
by the database on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone


class GuardPolicy(models.Model):
    """A named set of checks applied to texts going into (input) or coming out of (output) a model.

    `checks` is a list of `{"check": <type>, "name": ..., "threshold": ..., "config": {...}}` (see
    `llmops.guardrails.checks.CHECKS`); `action` says what a violation does: `block` refuses the text,
    `redact` lets it through with personal data and secrets masked when those are all it found.
    """

    class Direction(models.TextChoices):
        INPUT = "input", "Input (to the model)"
        OUTPUT = "output", "Output (from the model)"
        BOTH = "both", "Input and output"

    class Action(models.TextChoices):
        BLOCK = "block", "Block the text"
        REDACT = "redact", "Redact what can be masked, block the rest"

    class RecordText(models.TextChoices):
        NONE = "none", "No text"
        REDACTED = "redacted", "The redacted text"
        RAW = "raw", "The raw text (personal data included)"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.BOTH)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.BLOCK)
    checks = models.JSONField(default=list, blank=True)
    record_text = models.CharField(max_length=10, choices=RecordText.choices, default=RecordText.REDACTED)
    is_default = models.BooleanField(default=False, help_text="Applied when a guard call names no policy.")
    judge_model = models.ForeignKey(
        "llmops.LLMModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="guard_policies",
        help_text="Grades the policy's llm-rubric checks.",
    )  # fmt: skip
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "guard policies"
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="guardpolicy_one_default")
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("llmops:guardrail", args=[self.pk])

    def applies_to(self, direction: str) -> bool:
        return self.direction in (self.Direction.BOTH, direction)


class GuardCallQuerySet(models.QuerySet):
    def since(self, start: datetime.datetime) -> GuardCallQuerySet:
        return self.filter(at__gte=start)

    def violation_rate(self) -> tuple[int, int]:
        """(calls, calls with at least one violation)."""
        figures = self.aggregate(calls=Count("id"), violating=Count("id", filter=Q(violated__gt=0)))
        return figures["calls"], figures["violating"]


class GuardCall(models.Model):
    """One guard call: the policy applied, the verdict, the violations (check, reason, score) and the time taken.

    `text` holds what the policy's `record_text` allows (nothing, the redacted text or the raw text);
    `violated` is a bit mask of the violated check types (`llmops.guardrails.checks.CHECK_BITS`).
    """

    policy = models.ForeignKey(GuardPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    policy_name = models.CharField(max_length=100)
    at = models.DateTimeField(default=timezone.now)
    direction = models.CharField(max_length=10)
    allowed = models.BooleanField()
    redacted = models.BooleanField(default=False, help_text="The answer's redacted_text differs from the text.")
    violations = models.JSONField(default=list, blank=True)
    violated = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField()
    text_length = models.PositiveIntegerField(default=0)
    text = models.TextField(blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")  # fmt: skip

    objects = GuardCallQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at"], name="guardcall_at_idx"),
            models.Index(fields=["policy", "-at"], name="guardcall_policy_at_idx"),
        ]

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "blocked"
        return f"{self.policy_name} {self.direction} {verdict} at {self.at:%Y-%m-%d %H:%M:%S}"
