"""AIOps's card on the combined overview."""

from __future__ import annotations

import datetime

from django.urls import reverse
from django.utils import timezone

from opsportal.portal.charts import figure_data
from opsportal.portal.summary import AppSummary, activity_stats

from .. import charts
from ..models import Alert, Incident


def overview(*, with_charts: bool = False) -> AppSummary:
    """AIOps's card on the combined overview; with charts of open incidents and response times."""
    by_severity = Incident.objects.open().count_by_severity()
    stats: list[tuple[str, object]] = [
        ("Open incidents", sum(by_severity.values())),
        ("Critical open", by_severity.get("critical", 0)),
        ("Alerts firing", Alert.objects.firing().filter(suppressed_by__isnull=True).count()),
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
