"""Monitoring data: monitors that follow a model's alias or stage, their reference data, the production
batches they profile, and logged predictions with their delayed ground truth.

The drift and quality engine (`mlops.drift`) is pure computation; these rows keep what it needs between
calls: the reference's profiling plan (`ReferenceDataset.spec`) and profile, and one mergeable profile
per batch, so drift over any window of batches is computed from stored profiles without re-reading rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .registry import ModelVersion, RegisteredModel, Stage


class TaskType(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"
    NONE = "none", "No performance metrics"


class Monitor(models.Model):
    """Watches the production data of one registered model.

    It follows an alias (when `follow_alias` is set) or else a stage, so a promotion moves monitoring to the
    new version by itself; every batch records the version it was for, and results stay apart per version.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="monitors")
    name = models.CharField(max_length=100, default="production")
    description = models.TextField(blank=True)
    follow_alias = models.CharField(max_length=255, blank=True, help_text="An alias to follow; wins over the stage.")
    follow_stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.PRODUCTION)
    task = models.CharField(max_length=20, choices=TaskType.choices, default=TaskType.CLASSIFICATION)
    # Column roles in production rows and reference data.
    id_column = models.CharField(max_length=200, default="id")
    timestamp_column = models.CharField(max_length=200, default="timestamp")
    prediction_column = models.CharField(max_length=200, default="prediction")
    target_column = models.CharField(max_length=200, default="target")
    # Binary classification: the column holding the positive class's probability (ROC AUC, log loss).
    score_column = models.CharField(max_length=200, blank=True)
    # {column: {"type": ..., "role": ...}}: inferred from the reference, editable.
    schema = models.JSONField(default=dict, blank=True)
    # Drift settings: {"columns": {column: {"method": ..., "threshold": ...}}, "method", "threshold", "drift_share"}.
    options = models.JSONField(default=dict, blank=True)
    reference = models.ForeignKey(
        "ReferenceDataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Logged predictions are cut into batches of this many minutes.
    batch_minutes = models.PositiveIntegerField(default=60)
    # Scheduled checks look at the batches of the last `window_hours`, every `schedule_minutes`.
    window_hours = models.PositiveIntegerField(default=24)
    schedule_minutes = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    # Logged predictions up to this time are in batches already.
    batched_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model_id", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="monitor_name_unique")]
        indexes = [models.Index(fields=["enabled", "last_evaluated_at"], name="monitor_due_idx")]

    def __str__(self) -> str:
        return f"{self.model.name} / {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("mlops:monitoring", args=[self.model.name]) + f"?monitor={self.pk}"

    @property
    def follows(self) -> str:
        """What the monitor follows, as users write it: "@champion" or "stage Production"."""
        return f"@{self.follow_alias}" if self.follow_alias else f"stage {self.follow_stage}"

    def current_version(self) -> ModelVersion | None:
        """The version the followed alias points at, else the newest version in the followed stage."""
        if self.follow_alias:
            return (
                ModelVersion.objects.filter(model_id=self.model_id, aliases__alias=self.follow_alias)
                .order_by("-version")
                .first()
            )
        return ModelVersion.objects.filter(model_id=self.model_id, stage=self.follow_stage).order_by("-version").first()


def reference_upload_to(instance: ReferenceDataset, filename: str) -> str:
    return f"mlops/references/{instance.monitor_id}/{timezone.now():%Y%m%d%H%M%S}-{filename}"


class ReferenceDataset(models.Model):
    """The data a monitor compares production against: an upload (CSV or Parquet) or a version's dataset
    artifact, kept as Parquet, with its inferred schema, profiling plan, profile and reference metrics."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        ARTIFACT = "artifact", "Dataset artifact"

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="references")
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="reference_datasets"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    name = models.CharField(max_length=500, help_text="The uploaded file's name or the artifact's path.")
    file = models.FileField(upload_to=reference_upload_to, max_length=1000)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    rows = models.PositiveBigIntegerField(default=0)
    schema = models.JSONField(default=dict, blank=True)
    # `mlops.drift.ProfileSpec.to_dict()` and `BatchProfile.to_dict()` of the reference.
    spec = models.JSONField(default=dict, blank=True)
    profile = models.JSONField(default=dict, blank=True)
    # Metrics of the reference's predictions against its targets, when it has both ({"accuracy": ...}).
    performance = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["monitor", "-created_at"], name="reference_monitor_idx")]

    def __str__(self) -> str:
        return self.name


def batch_upload_to(instance: MonitoringBatch, filename: str) -> str:
    return f"mlops/batches/{instance.monitor_id}/{timezone.now():%Y%m%d%H%M%S}-{filename}"


class MonitoringBatch(models.Model):
    """One batch of production data: its rows' profile, data quality, drift against the reference and,
    once labels are in, the model's performance on it."""

    class Source(models.TextChoices):
        ROWS = "rows", "JSON rows"
        CSV = "csv", "CSV upload"
        PARQUET = "parquet", "Parquet upload"
        PREDICTIONS = "predictions", "Logged predictions"

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="batches")
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="monitoring_batches"
    )
    reference = models.ForeignKey(
        ReferenceDataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )
    source = models.CharField(max_length=12, choices=Source.choices)
    name = models.CharField(max_length=500, blank=True)
    rows = models.PositiveBigIntegerField(default=0)
    # The time the data covers (its timestamp column, else when it arrived).
    start = models.DateTimeField(default=timezone.now)
    end = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now)
    profile = models.JSONField(default=dict, blank=True)
    quality = models.JSONField(default=list, blank=True)
    drift = models.JSONField(default=dict, blank=True)
    drift_share = models.FloatField(null=True, blank=True)
    dataset_drift = models.BooleanField(default=False)
    drifted_columns = models.JSONField(default=list, blank=True)
    performance = models.JSONField(default=dict, blank=True)
    labelled_rows = models.PositiveBigIntegerField(default=0)
    # When the monitor's per-batch checks ran on it; a sweeper re-enqueues batches still waiting.
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # The rows as Parquet (up to MLOPS_BATCH_KEEP_BYTES), for the report's distributions and HTML download.
    file = models.FileField(upload_to=batch_upload_to, max_length=1000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-end", "-id"]
        indexes = [
            models.Index(fields=["monitor", "-end"], name="batch_monitor_end_idx"),
            models.Index(fields=["monitor", "version", "-end"], name="batch_monitor_version_idx"),
            models.Index(fields=["monitor", "dataset_drift", "-end"], name="batch_monitor_drift_idx"),
            models.Index(fields=["received_at"], condition=Q(evaluated_at__isnull=True), name="batch_unevaluated_idx"),
        ]

    def __str__(self) -> str:
        return f"Batch #{self.pk} of {self.monitor}"

    def get_absolute_url(self) -> str:
        return reverse("mlops:batch", args=[self.monitor.model.name, self.pk])


class PredictionRecord(models.Model):
    """One logged prediction (`POST /api/v1/mlops/models/<name>/predictions/`), joined with its ground truth
    when it arrives (`.../labels/`, by id)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="prediction_records")
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="prediction_records"
    )
    prediction_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField(default=timezone.now)
    features = models.JSONField(default=dict, blank=True)
    prediction = models.JSONField(null=True, blank=True)
    label = models.JSONField(null=True, blank=True)
    labelled_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [models.UniqueConstraint(fields=["model", "prediction_id"], name="prediction_record_id_unique")]
        indexes = [
            models.Index(fields=["model", "version", "timestamp"], name="prediction_model_time_idx"),
            models.Index(fields=["model", "timestamp"], name="prediction_window_idx"),
            models.Index(fields=["model", "received_at"], name="prediction_received_idx"),
            models.Index(
                fields=["model", "labelled_at"], condition=Q(labelled_at__isnull=False), name="prediction_labelled_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} prediction {self.prediction_id}"
