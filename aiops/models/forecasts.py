"""Capacity forecasts: when a gauge (disk, memory, a quota, a percentage) reaches its limit.

A `CapacityForecast` names the usage series by a selector and the limit as a constant, as a second
selector whose series are paired with the usage series by labels (`node_filesystem_size_bytes` with
the same device, mountpoint and instance), or as a percentage (100). Each usage series it matches
gets a `CapacityForecastResult`: the latest fit (aiops.forecasting) with the full time, the bounds
of its prediction interval and the backtest MASE, or the reason it could not be forecast.
"""

from __future__ import annotations

import datetime

from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from . import SEVERITY_CHOICES
from .metrics import Series

__all__ = ["CapacityForecast", "CapacityForecastResult"]


class CapacityForecast(models.Model):
    """Forecast each series `usage_selector` matches against its limit; warn when it may be full within the horizon."""

    class LimitKind(models.TextChoices):
        CONSTANT = "constant", "A constant"
        SERIES = "series", "A series matched by labels"
        PERCENTAGE = "percentage", "Percentage (limit 100)"

    class State(models.TextChoices):
        PENDING = "pending", "Not computed yet"
        OK = "ok", "OK"
        WARNING = "warning", "Full within the horizon"
        ERROR = "error", "Error"

    name = models.CharField(max_length=100, unique=True)
    usage_selector = models.TextField(help_text='The usage gauge, e.g. node_filesystem_used_bytes{mountpoint="/"}')
    limit_kind = models.CharField(max_length=12, choices=LimitKind.choices, default=LimitKind.CONSTANT)
    limit_value = models.FloatField(null=True, blank=True, help_text="The limit, for a constant limit.")
    limit_selector = models.TextField(blank=True, help_text="The limit series, e.g. node_filesystem_size_bytes.")
    match_labels = models.JSONField(
        default=list, blank=True, help_text='Labels pairing a usage series with its limit series, e.g. ["instance"].'
    )
    horizon_days = models.PositiveIntegerField(default=14, help_text="Warn when it may be full within this many days.")
    severity = models.CharField(max_length=10, choices=SEVERITY_CHOICES, default="warning")
    service = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, editable=False)
    next_run_at = models.DateTimeField(default=timezone.now, editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_duration_seconds = models.FloatField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="forecast_due_idx")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("aiops:metric_forecast", args=[self.pk])

    def limit_text(self) -> str:
        if self.limit_kind == self.LimitKind.PERCENTAGE:
            return "100 (percentage)"
        if self.limit_kind == self.LimitKind.SERIES:
            on = f" on ({', '.join(self.match_labels)})" if self.match_labels else ""
            return f"{self.limit_selector}{on}"
        return f"{self.limit_value:g}" if self.limit_value is not None else ""


class CapacityForecastResultQuerySet(models.QuerySet):
    def soonest_first(self) -> CapacityForecastResultQuerySet:
        """Those with a full time first (earliest first), then those never full, then the errors."""
        return self.order_by(
            F("full_at").asc(nulls_last=True), F("full_at_earliest").asc(nulls_last=True), "error", "series_id"
        )

    def within(self, days: float, *, now: datetime.datetime | None = None) -> CapacityForecastResultQuerySet:
        now = now or timezone.now()
        return self.filter(full_at_earliest__lte=now + datetime.timedelta(days=days))


class CapacityForecastResult(models.Model):
    """The latest forecast of one usage series: when it is full, between when and when, and how good the fit was."""

    forecast = models.ForeignKey(CapacityForecast, on_delete=models.CASCADE, related_name="results")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="capacity_forecasts")
    limit_series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    limit = models.FloatField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)
    full_at = models.DateTimeField(null=True, blank=True, help_text="When the forecast's mean reaches the limit.")
    full_at_earliest = models.DateTimeField(null=True, blank=True, help_text="The interval's upper line reaches it.")
    full_at_latest = models.DateTimeField(null=True, blank=True, help_text="The interval's lower line reaches it.")
    mase = models.FloatField(
        null=True, blank=True, help_text="Backtest mean absolute scaled error (below 1 beats naive)."
    )
    model = models.CharField(max_length=100, blank=True)
    step_seconds = models.PositiveIntegerField(null=True, blank=True)
    points = models.PositiveIntegerField(null=True, blank=True)
    lookahead_days = models.FloatField(null=True, blank=True, help_text="How far ahead it was forecast.")
    curve = models.JSONField(default=dict, blank=True, help_text="The forecast drawn: times, mean, lower, upper.")
    fitted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    alerting = models.BooleanField(default=False)

    objects = CapacityForecastResultQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["forecast", "series"], name="forecastresult_unique")]
        indexes = [models.Index(fields=["full_at_earliest"], name="forecastresult_earliest_idx")]

    def __str__(self) -> str:
        return f"{self.forecast_id} / {self.series_id}"

    @property
    def state(self) -> str:
        """ "error", "warning" (may be full within the horizon), "full" (already) or "ok"."""
        if self.error:
            return "error"
        if self.last_value is not None and self.limit is not None and self.last_value >= self.limit:
            return "full"
        return "warning" if self.alerting else "ok"

    def used_share(self) -> float | None:
        if self.last_value is None or not self.limit:
            return None
        return self.last_value / self.limit
