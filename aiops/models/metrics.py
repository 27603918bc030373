"""Metric collection: scrape targets, Prometheus-compatible sources, series, samples and rollups.

Samples and rollups are the two big tables. On PostgreSQL they are range-partitioned by time
(samples by day, rollups by month; migration 0010 creates them with SQL and
`aiops.metrics.partitions` keeps the partitions ahead and drops the expired ones), so retention
is a `DROP TABLE` of a partition instead of a `DELETE`. Their models are `managed = False`: Django
reads and (on SQLite) writes them but never creates or alters them. Neither has a foreign key:
a constraint check per row would halve ingest, and series are deleted only once no sample of
theirs is left.
"""

from __future__ import annotations

import math

from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import SEVERITY_CHOICES

__all__ = [
    "PromSource",
    "Rollup5m",
    "RollupCheckpoint",
    "Sample",
    "ScrapeTarget",
    "Series",
    "ThresholdRule",
    "ThresholdState",
    "WatchedQuery",
]


class RemoteAuth(models.TextChoices):
    NONE = "none", "None"
    BEARER = "bearer", "Bearer token"
    BASIC = "basic", "Basic (user name and password)"


class CollectionStatus(models.Model):
    """What a scrape target and a watched query share: schedule, auth and the outcome of the last run."""

    interval_seconds = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_due_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_ok = models.BooleanField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_duration_seconds = models.FloatField(null=True, blank=True)
    last_sample_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def status(self) -> str:
        """ "up", "down", "paused" or "pending" (not run yet)."""
        if not self.enabled:
            return "paused"
        if self.last_ok is None:
            return "pending"
        return "up" if self.last_ok else "down"


class ScrapeTarget(CollectionStatus):
    """A URL serving Prometheus text exposition or OpenMetrics, scraped every `interval_seconds`.

    Its samples get the labels `job` (the target's name) and `instance` (host:port) and its
    own `labels`, as Prometheus gives them; each scrape also writes `up`,
    `scrape_duration_seconds` and `scrape_samples_scraped` for the target.
    """

    Auth = RemoteAuth

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(max_length=2000)
    timeout_seconds = models.FloatField(default=10.0)
    auth = models.CharField(max_length=10, choices=RemoteAuth.choices, default=RemoteAuth.NONE)
    username = models.CharField(max_length=200, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False, help_text="Bearer token or password, encrypted.")
    labels = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["next_due_at"], condition=Q(enabled=True), name="scrapetarget_due_idx")]

    def __str__(self) -> str:
        return self.name


class PromSource(models.Model):
    """A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics) the portal queries."""

    Auth = RemoteAuth

    name = models.CharField(max_length=100, unique=True)
    base_url = models.CharField(max_length=2000, help_text="The API's root, e.g. http://prometheus:9090")
    timeout_seconds = models.FloatField(default=30.0)
    auth = models.CharField(max_length=10, choices=RemoteAuth.choices, default=RemoteAuth.NONE)
    username = models.CharField(max_length=200, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False, help_text="Bearer token or password, encrypted.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WatchedQuery(CollectionStatus):
    """A PromQL query pulled from a source with `query_range` every `interval_seconds`, at `step_seconds`.

    Like a Prometheus recording rule, its results are stored as series named `name`, with the
    result's labels plus the query's own `labels`.
    """

    source = models.ForeignKey(PromSource, on_delete=models.CASCADE, related_name="queries")
    name = models.CharField(max_length=200, unique=True, help_text="The metric name its series are stored under.")
    query = models.TextField()
    step_seconds = models.PositiveIntegerField(default=60)
    labels = models.JSONField(default=dict, blank=True)
    last_end_at = models.DateTimeField(null=True, blank=True, help_text="The last step already stored.")

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["next_due_at"], condition=Q(enabled=True), name="watchedquery_due_idx")]

    def __str__(self) -> str:
        return self.name


class Series(models.Model):
    """One time series: a metric name and a label set, identified by `hash` (of the name and the sorted labels)."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=200)
    labels = models.JSONField(default=dict)
    kind = models.CharField(max_length=20, blank=True, help_text="counter, gauge, histogram, ... when the source said.")
    hash = models.CharField(max_length=32, unique=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "series"
        # On PostgreSQL migration 0010 adds a GIN index on labels (jsonb_path_ops) for `labels @> {...}`.
        indexes = [
            models.Index(fields=["name"], name="series_name_idx"),
            models.Index(fields=["last_seen_at"], name="series_last_seen_idx"),
        ]

    def __str__(self) -> str:
        return self.selector()

    def selector(self) -> str:
        """The series as a PromQL selector: name{a="b",...}."""
        inner = ",".join(f"{key}={_quote(value)}" for key, value in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}" if inner else self.name

    def metric(self) -> dict[str, str]:
        """Its labels with `__name__`, as Prometheus's API shows a series."""
        return {"__name__": self.name, **self.labels}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Sample(models.Model):
    """One value of a series at a time (raw retention: METRICS_RAW_RETENTION_DAYS).

    The table is created by migration 0010 (partitioned by day on PostgreSQL) and written with
    COPY by `aiops.metrics.store`. SQLite stores NaN as NULL, so `value` reads back None there.
    """

    pk = models.CompositePrimaryKey("series_id", "time")
    series_id = models.BigIntegerField()
    time = models.DateTimeField()
    value = models.FloatField(null=True)

    class Meta:
        managed = False
        db_table = "aiops_sample"

    def __str__(self) -> str:
        return f"{self.series_id}@{self.time.isoformat()}={self.value}"

    @property
    def number(self) -> float:
        return math.nan if self.value is None else self.value


class Rollup5m(models.Model):
    """A series' samples in one 5-minute bucket: min, max, sum, count, first, last, and the counter increase.

    `increase` is the bucket's share of a counter's growth: the sum of the differences between
    each of its samples and the one before (that one may lie in the bucket before), a drop
    counting as a reset (the new value is the growth). Kept METRICS_ROLLUP_RETENTION_DAYS
    (monthly partitions on PostgreSQL).
    """

    pk = models.CompositePrimaryKey("series_id", "bucket")
    series_id = models.BigIntegerField()
    bucket = models.DateTimeField()
    min_value = models.FloatField(null=True)
    max_value = models.FloatField(null=True)
    sum_value = models.FloatField(null=True)
    count = models.IntegerField()
    first_value = models.FloatField(null=True)
    last_value = models.FloatField(null=True)
    increase = models.FloatField(null=True)

    class Meta:
        managed = False
        db_table = "aiops_rollup5m"

    def __str__(self) -> str:
        return f"{self.series_id}@{self.bucket.isoformat()}"

    @property
    def mean(self) -> float | None:
        return self.sum_value / self.count if self.count and self.sum_value is not None else None


class RollupCheckpoint(models.Model):
    """How far the rollups are complete: every bucket before `done_until` is rolled up (one row)."""

    done_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"rolled up until {self.done_until.isoformat()}"


class ThresholdRule(models.Model):
    """Raise an alert for each series matching `selector` whose value stays above/below `value` for `for_seconds`."""

    class Comparison(models.TextChoices):
        ABOVE = "above", "Above"
        BELOW = "below", "Below"

    class State(models.TextChoices):
        OK = "ok", "OK"
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"

    name = models.CharField(max_length=100, unique=True)
    selector = models.TextField(help_text='A series selector, e.g. up{job="node"}')
    comparison = models.CharField(max_length=10, choices=Comparison.choices)
    value = models.FloatField()
    for_seconds = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=10, choices=SEVERITY_CHOICES, default="warning")
    service = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OK, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def breaches(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value > self.value if self.comparison == self.Comparison.ABOVE else value < self.value


class ThresholdState(models.Model):
    """A series a rule watches that is breaching: since when, and whether its alert fires."""

    rule = models.ForeignKey(ThresholdRule, on_delete=models.CASCADE, related_name="states")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="threshold_states")
    breached_since = models.DateTimeField()
    firing = models.BooleanField(default=False)
    value = models.FloatField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "series"], name="thresholdstate_unique")]

    def __str__(self) -> str:
        return f"{self.rule} / {self.series_id}: {'firing' if self.firing else 'pending'}"
