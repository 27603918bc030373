"""AIOps's card on the combined overview."""

from __future__ import annotations

import datetime

from django.urls import reverse
from django.utils import timezone

from opsportal.portal.charts import figure_data
from opsportal.portal.summary import AppSummary, activity_stats

from .. import charts, forecast_charts, forecasting
from ..models import Alert, CapacityForecastResult, Incident
from .forecasts import soonest_forecasts


def overview(*, with_charts: bool = False) -> AppSummary:
    """AIOps's card on the combined overview; with charts of open incidents and response times."""
    by_severity = Incident.objects.open().count_by_severity()
    stats: list[tuple[str, object]] = [
        ("Open incidents", sum(by_severity.values())),
        ("Critical open", by_severity.get("critical", 0)),
        ("Alerts firing", Alert.objects.firing().filter(suppressed_by__isnull=True).count()),
        ("Forecasts full within horizon", CapacityForecastResult.objects.filter(alerting=True).count()),
    ]
    panels = []
    if with_charts:
        since = timezone.now() - datetime.timedelta(days=30)
        rows = list(
            Incident.objects.filter(created_at__gte=since, merged_into__isnull=True).values_list(
                "created_at", "acknowledged_at", "resolved_at", "service", "severity"
            )
        )
        panels = [
            ("aiops-open-by-severity", "Open incidents by severity", figure_data(charts.open_by_severity(by_severity))),
            ("aiops-response-trend", "MTTA / MTTR, last 30 days", figure_data(charts.response_time_trend(rows, 30))),
        ]
        soonest = _soonest_panel()
        if soonest is not None:
            panels.append(soonest)
    return AppSummary(
        label="aiops",
        title="AIOps",
        description=(
            "Alerts from Alertmanager, Grafana, PagerDuty-style and generic senders, deduplicated and "
            "correlated into incidents to acknowledge, assign and resolve."
        ),
        url=reverse("aiops:index"),
        stats=stats + activity_stats("aiops")[:1],
        charts=panels,
    )


def _soonest_panel() -> tuple[str, str, dict] | None:
    """The capacity forecasts that reach their limit soonest, days to full with their interval (None: none)."""
    results = soonest_forecasts(limit=8)
    now = timezone.now()
    rows = []
    for result in results:
        if result.full_at is None:
            continue
        days = max(0.0, (result.full_at - now).total_seconds() / 86400)
        earliest = max(0.0, (result.full_at_earliest - now).total_seconds() / 86400)
        latest = None if result.full_at_latest is None else (result.full_at_latest - now).total_seconds() / 86400
        name = f"{result.forecast.name}: {_short_labels(result.series.labels)}"
        rows.append((name[:60], days, earliest, latest))
    if not rows:
        return None
    figure = forecast_charts.soonest_chart(rows, max_days=forecasting.LOOKAHEAD_DAYS, level=forecasting.LEVEL)
    return ("aiops-soonest-full", "Capacity forecasts: soonest full", figure_data(figure))


def _short_labels(labels: dict[str, str]) -> str:
    """The labels that tell disks apart, in a few characters: instance and mountpoint (or device), else all."""
    picked = [labels[key] for key in ("instance", "mountpoint", "device", "name") if labels.get(key)][:2]
    return " ".join(picked) or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
