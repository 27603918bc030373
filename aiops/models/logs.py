"""Log records, their mined templates, per-minute template counts and the miners' persisted state (issue 13).

`LogRecord` is unmanaged: migration 0015 creates its table (partitioned by day on PostgreSQL,
like metric samples) and `aiops.logs.store` writes it with COPY.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse
from django.utils import timezone

__all__ = ["LOG_SEVERITIES", "LOG_SEVERITY_RANK", "LogMinerState", "LogRecord", "LogTemplate", "LogTemplateBucket"]

LOG_SEVERITIES = ("debug", "info", "warning", "error", "critical")
LOG_SEVERITY_RANK = {name: rank for rank, name in enumerate(LOG_SEVERITIES)}


class LogRecord(models.Model):
    """One log record: time, service, severity, body, attributes, trace/span ids and its mined template."""

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    service = models.CharField(max_length=200)
    severity = models.CharField(max_length=10)
    body = models.TextField()
    attributes = models.JSONField(default=dict)
    trace_id = models.CharField(max_length=32, blank=True, default="")
    span_id = models.CharField(max_length=16, blank=True, default="")
    template_id = models.BigIntegerField(null=True)

    class Meta:
        managed = False
        db_table = "aiops_logrecord"
        ordering = ["-time", "-id"]

    def __str__(self) -> str:
        return f"{self.service} {self.severity}: {self.body[:80]}"

    def get_absolute_url(self) -> str:
        return reverse("aiops:log_record", args=[self.pk])


class LogTemplate(models.Model):
    """A pattern drain3 found in one service's log bodies (`<*>` marks the variable parts)."""

    service = models.CharField(max_length=200)
    cluster_id = models.PositiveIntegerField(help_text="drain3's cluster id in this service's miner.")
    template = models.TextField()
    severity = models.CharField(max_length=10, default="info", help_text="The highest severity seen.")
    count = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    # Set once the "new template at error level" alert fired for it (never twice).
    error_alerted_at = models.DateTimeField(null=True, blank=True)
    # Burst detection (aiops.logs.bursts): an EWMA of records per minute, folded up to baseline_until.
    baseline_rate = models.FloatField(default=0.0)
    baseline_until = models.DateTimeField(null=True, blank=True)
    bursting_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [models.UniqueConstraint(fields=["service", "cluster_id"], name="logtemplate_service_cluster")]
        indexes = [
            models.Index(fields=["service", "-last_seen"], name="logtemplate_service_idx"),
            models.Index(fields=["-last_seen"], name="logtemplate_last_seen_idx"),
            models.Index(fields=["-first_seen"], name="logtemplate_first_seen_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.service}: {self.template[:80]}"

    def get_absolute_url(self) -> str:
        return reverse("aiops:log_patterns") + f"?service={self.service}#template-{self.pk}"

    def records_url(self) -> str:
        return reverse("aiops:logs") + f"?template={self.pk}"


class LogTemplateBucket(models.Model):
    """How many records of a template arrived with a time in one minute (sparklines, bursts, metric series)."""

    template = models.ForeignKey(LogTemplate, on_delete=models.CASCADE, related_name="buckets")
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["template", "minute"]
        constraints = [models.UniqueConstraint(fields=["template", "minute"], name="logtemplatebucket_minute")]
        indexes = [models.Index(fields=["minute"], name="logtemplatebucket_minute_idx")]

    def __str__(self) -> str:
        return f"{self.template_id}@{self.minute:%Y-%m-%d %H:%M}={self.count}"


class LogMinerState(models.Model):
    """One service's drain3 miner, as drain3 persists it (jsonpickle, zlib-compressed); `version` counts saves."""

    service = models.CharField(max_length=200, unique=True)
    state = models.BinaryField()
    version = models.PositiveBigIntegerField(default=0)
    clusters = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service"]

    def __str__(self) -> str:
        return f"miner of {self.service} (v{self.version}, {self.clusters} templates)"
