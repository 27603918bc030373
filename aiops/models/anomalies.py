"""Live anomaly detection: monitors over stored series, each matched series' detector state, the anomalies found.

An `AnomalyMonitor` names series by a selector and scores every new sample of each with a streaming
detector (aiops.anomaly). Each matched series has an `AnomalySeries`: the detector's state (bytes, so a
worker restart resumes where it was), the last sample scored, its score and the expected band there, and the
feedback notches that raised that series' threshold. An `Anomaly` is one run of samples scoring above the
threshold, from its first such sample until the score has stayed below for a while; it keeps its peak, the
value and expected band at the peak, the alert it raised, and what a person said of it ("not interesting").
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from . import SEVERITY_CHOICES, Alert
from .metrics import Series

__all__ = ["Anomaly", "AnomalyMonitor", "AnomalySeries"]


class AnomalyMonitor(models.Model):
    """Score every new sample of each series `selector` matches; alert when one scores above its sensitivity."""

    class Sensitivity(models.TextChoices):
        LOW = "low", "Low (fewer alerts)"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High (miss fewer)"

    name = models.CharField(max_length=100, unique=True)
    selector = models.TextField(help_text='A series selector, e.g. http_request_duration_seconds{quantile="0.99"}')
    detector = models.CharField(max_length=50, default="ensemble")
    sensitivity = models.CharField(max_length=10, choices=Sensitivity.choices, default=Sensitivity.MEDIUM)
    severity = models.CharField(max_length=10, choices=SEVERITY_CHOICES, default="warning")
    service = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_duration_seconds = models.FloatField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("aiops:metric_anomaly_monitor", args=[self.pk])


class AnomalySeries(models.Model):
    """One series a monitor scores: the detector's stored state and what its last scored sample said."""

    monitor = models.ForeignKey(AnomalyMonitor, on_delete=models.CASCADE, related_name="series_states")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="anomaly_states")
    detector = models.CharField(max_length=50, help_text="The detector whose state this is.")
    state = models.BinaryField(help_text="aiops.anomaly.SeriesState.to_bytes()")
    samples_seen = models.PositiveBigIntegerField(default=0)
    last_time = models.DateTimeField(null=True, blank=True, help_text="The last sample scored.")
    last_value = models.FloatField(null=True, blank=True)
    last_score = models.FloatField(null=True, blank=True)
    expected_low = models.FloatField(null=True, blank=True, help_text="The band at the last sample (None: learning).")
    expected_high = models.FloatField(null=True, blank=True)
    threshold_steps = models.PositiveSmallIntegerField(
        default=0, help_text="Notches the threshold was raised by 'not interesting' feedback."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "anomaly series"
        constraints = [models.UniqueConstraint(fields=["monitor", "series"], name="anomalyseries_unique")]
        indexes = [models.Index(fields=["series"], name="anomalyseries_series_idx")]

    def __str__(self) -> str:
        return f"{self.monitor_id} / {self.series_id}"


class AnomalyQuerySet(models.QuerySet):
    def open(self) -> AnomalyQuerySet:
        return self.filter(ended_at__isnull=True)

    def overlapping(self, start, end) -> AnomalyQuerySet:
        """Those that were going on at some time in [start, end]."""
        return self.filter(started_at__lte=end).filter(Q(ended_at__isnull=True) | Q(ended_at__gte=start))


class Anomaly(models.Model):
    """A run of samples of one series scoring above the monitor's threshold, until it stayed below for a while."""

    class Feedback(models.TextChoices):
        NONE = "", "None"
        NOT_INTERESTING = "not_interesting", "Not interesting"

    monitor = models.ForeignKey(AnomalyMonitor, on_delete=models.CASCADE, related_name="anomalies")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="anomalies")
    started_at = models.DateTimeField()
    last_above_at = models.DateTimeField(help_text="The last sample that scored above the threshold.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the score had stayed below for a while.")
    peak_score = models.FloatField()
    peak_at = models.DateTimeField()
    value = models.FloatField(help_text="The value at the peak.")
    expected_low = models.FloatField(null=True, blank=True, help_text="The expected band at the peak.")
    expected_high = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(help_text="The threshold the series had when it started.")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="anomalies")
    feedback = models.CharField(max_length=20, choices=Feedback.choices, default=Feedback.NONE, blank=True)
    feedback_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AnomalyQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name_plural = "anomalies"
        indexes = [
            models.Index(fields=["monitor", "-started_at"], name="anomaly_monitor_idx"),
            models.Index(fields=["series", "-started_at"], name="anomaly_series_idx"),
            models.Index(fields=["monitor", "series"], condition=Q(ended_at__isnull=True), name="anomaly_open_idx"),
        ]

    def __str__(self) -> str:
        return f"anomaly of {self.series_id} at {self.started_at.isoformat()}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def not_interesting(self) -> bool:
        return self.feedback == self.Feedback.NOT_INTERESTING
