"""LLM monitors (issue 15): rules over production traces that open AIOps incidents.

An `LLMMonitor` watches one metric of a scope (a service, a model, a prompt version) over a sliding
window: the error rate of its traces, the p95 latency, the cost per hour or per day, the guard
violation rate of a policy, or the pass rate of online evaluation scores. `llmops.monitoring.rules`
computes the value in SQL every minute; a breach raises an AIOps alert (`aiops.services.raise_alert`,
source "llmops") linking to the matching traces, and recovery resolves it. Each evaluation is kept as
an `LLMMonitorReading`, so the monitor page charts the value against its bound.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .evaluation import PromptVersion
from .guardrails import GuardPolicy


class LLMMonitor(models.Model):
    """A rule on one metric of an LLM feature over a window, with its current value and state."""

    class Metric(models.TextChoices):
        ERROR_RATE = "error_rate", "Error rate"
        P95_LATENCY = "p95_latency", "p95 latency (ms)"
        COST_PER_HOUR = "cost_per_hour", "Cost per hour (USD)"
        COST_PER_DAY = "cost_per_day", "Cost per day (USD)"
        GUARD_VIOLATION_RATE = "guard_violation_rate", "Guard violation rate"
        EVAL_PASS_RATE = "eval_pass_rate", "Online evaluation pass rate"

    class Comparison(models.TextChoices):
        ABOVE = "above", "above"
        BELOW = "below", "below"

    class State(models.TextChoices):
        NEW = "new", "Not evaluated yet"
        OK = "ok", "OK"
        FIRING = "firing", "Firing"
        NO_DATA = "no_data", "Not enough data"

    class Severity(models.TextChoices):
        CRITICAL = "critical"
        ERROR = "error"
        WARNING = "warning"
        INFO = "info"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    metric = models.CharField(max_length=30, choices=Metric.choices)
    service = models.CharField(max_length=200, blank=True, help_text="Traces and spans of this service only.")
    model = models.CharField(max_length=200, blank=True, help_text="Generations of this model only.")
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="monitors",
        help_text="Generations linked to this prompt version only.",
    )  # fmt: skip
    guard_policy = models.ForeignKey(
        GuardPolicy, null=True, blank=True, on_delete=models.CASCADE, related_name="monitors",
        help_text="Guard violation rate: this policy's calls only (empty: every policy).",
    )  # fmt: skip
    score_name = models.CharField(
        max_length=100, blank=True, help_text="Evaluation pass rate: scores of this name only (empty: every score)."
    )
    window_minutes = models.PositiveIntegerField(default=60, help_text="The value is computed over this window.")
    comparison = models.CharField(max_length=5, choices=Comparison.choices, default=Comparison.ABOVE)
    threshold = models.FloatField(help_text="Rates as fractions (0.05 is 5 %), latency in ms, cost in USD.")
    min_samples = models.PositiveIntegerField(
        default=10, help_text="Rates and latency: fewer traces, calls or scores in the window is 'not enough data'."
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.NEW)
    last_value = models.FloatField(null=True, blank=True)
    last_samples = models.PositiveIntegerField(default=0)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    state_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM monitor"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("llmops:monitor", args=[self.pk])

    @property
    def dedup_key(self) -> str:
        """The AIOps alert key: one alert (and one incident) per monitor however often it fires."""
        return f"llmops-monitor-{self.pk}"

    @property
    def is_rate(self) -> bool:
        return self.metric in (self.Metric.ERROR_RATE, self.Metric.GUARD_VIOLATION_RATE, self.Metric.EVAL_PASS_RATE)

    def breached(self, value: float) -> bool:
        return value > self.threshold if self.comparison == self.Comparison.ABOVE else value < self.threshold

    def format_value(self, value: float | None) -> str:
        """The value as the page and the alert title show it: rates in %, latency in ms, cost in USD."""
        if value is None:
            return "n/a"
        if self.is_rate:
            return f"{value * 100:.1f} %"
        if self.metric == self.Metric.P95_LATENCY:
            return f"{value:.0f} ms"
        return f"${value:.4f}"

    @property
    def shown_value(self) -> str:
        return self.format_value(self.last_value)

    @property
    def shown_threshold(self) -> str:
        return self.format_value(self.threshold)

    def scope(self) -> str:
        parts = [f"service {self.service}" if self.service else "", f"model {self.model}" if self.model else ""]
        if self.prompt_version_id:
            parts.append(f"prompt {self.prompt_version}")
        if self.guard_policy_id:
            parts.append(f"policy {self.guard_policy}")
        if self.score_name:
            parts.append(f"score {self.score_name}")
        return ", ".join(p for p in parts if p) or "everything"


class LLMMonitorReading(models.Model):
    """One evaluation of a monitor: the value, the samples it rests on and whether it breached."""

    monitor = models.ForeignKey(LLMMonitor, on_delete=models.CASCADE, related_name="readings")
    at = models.DateTimeField(default=timezone.now)
    value = models.FloatField(null=True, blank=True, help_text="Empty: not enough data.")
    samples = models.PositiveIntegerField(default=0)
    breached = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["monitor", "-at"], name="llmops_monitor_reading_at")]

    def __str__(self) -> str:
        return f"{self.monitor} {self.value} at {self.at:%Y-%m-%d %H:%M}"
