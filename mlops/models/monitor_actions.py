"""What monitors do about what they see: checks evaluated on each batch and on a schedule, breaches that
become AIOps incidents through `aiops.services.raise_alert`, and retraining webhooks sent through the
core outbox."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from opsportal.outbox.models import OutboxMessage, pending_index

from .monitoring import Monitor, MonitoringBatch
from .registry import ModelVersion, RegisteredModel


class RetrainingHook(models.Model):
    """A retraining webhook of a model: a signed JSON POST (generic), a GitHub Actions `workflow_dispatch`
    or an Airflow DAG run, called when a check that names it breaches."""

    class Kind(models.TextChoices):
        GENERIC = "generic", "Generic webhook"
        GITHUB = "github", "GitHub Actions workflow_dispatch"
        AIRFLOW = "airflow", "Airflow DAG run"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="retraining_hooks")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.GENERIC)
    url = models.URLField(max_length=2000)
    # Write-only, encrypted at rest: the HMAC signing secret and the token sent as Authorization.
    secret_encrypted = models.TextField(blank=True, editable=False)
    token_encrypted = models.TextField(blank=True, editable=False)
    # Kind-specific settings: GitHub {"ref": "main", "inputs": {...}}; Airflow {"conf": {...}}.
    options = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="retraining_hook_name_unique")]

    def __str__(self) -> str:
        return self.name


class MonitorCheck(models.Model):
    """A condition on a monitor's data: dataset drift, a column's drift, a data-quality rule, or a
    performance metric beyond a bound; evaluated on each batch or over a scheduled window."""

    class Kind(models.TextChoices):
        DATASET_DRIFT = "dataset_drift", "Dataset drift"
        COLUMN_DRIFT = "column_drift", "Column drift"
        QUALITY = "quality", "Data quality rule"
        METRIC = "metric", "Performance metric"

    class Scope(models.TextChoices):
        BATCH = "batch", "Each batch"
        WINDOW = "window", "Scheduled window"

    class State(models.TextChoices):
        UNKNOWN = "unknown", "Not evaluated"
        OK = "ok", "OK"
        BREACHED = "breached", "Breached"

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=15, choices=Kind.choices)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.BATCH)
    column = models.CharField(max_length=200, blank=True)
    # Quality: missing_share, new_categories, out_of_range, type_mismatches; metric: accuracy, f1, rmse ...
    rule = models.CharField(max_length=50, blank=True)
    # Quality: the largest share allowed; metric: the bound (a floor, or a ceiling for error metrics);
    # drift: overrides the drift share (dataset) or the column's threshold.
    bound = models.FloatField(null=True, blank=True)
    severity = models.CharField(max_length=10, default="warning")
    retraining = models.ForeignKey(
        RetrainingHook, null=True, blank=True, on_delete=models.SET_NULL, related_name="checks"
    )
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.UNKNOWN)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["monitor_id", "name"]
        indexes = [models.Index(fields=["monitor", "state"], name="monitorcheck_state_idx")]

    def __str__(self) -> str:
        return self.name


class Breach(models.Model):
    """One period during which a check failed: raised as an alert (source `mlops`), resolved on recovery."""

    monitor_check = models.ForeignKey(MonitorCheck, on_delete=models.CASCADE, related_name="breaches")
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="breaches")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="breaches")
    batch = models.ForeignKey(
        MonitoringBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="breaches"
    )
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict, blank=True)
    dedup_key = models.CharField(max_length=255)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # A version registered by the retraining this breach triggered.
    retrained_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="retrained_from"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            models.Index(fields=["monitor", "-opened_at"], name="breach_monitor_idx"),
            models.Index(fields=["monitor_check", "-opened_at"], name="breach_check_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["monitor_check"], condition=Q(resolved_at__isnull=True), name="breach_one_open_per_check"
            )
        ]

    def __str__(self) -> str:
        return self.message

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class RetrainingCall(OutboxMessage):
    """The outbox of retraining webhook calls: written with the breach, sent by Celery with retries; the
    answer is kept (status and the start of the body) for the model's history and the incident's timeline."""

    hook = models.ForeignKey(RetrainingHook, on_delete=models.CASCADE, related_name="calls")
    breach = models.ForeignKey(
        Breach, null=True, blank=True, on_delete=models.SET_NULL, related_name="retraining_calls"
    )
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["hook", "-created_at"], name="retrainingcall_hook_idx"),
            pending_index("retrainingcall_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.hook}"
