"""The small facade each app offers the overview page: its headline figures."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Max, Q
from django.utils import timezone

from opsportal.audit.models import AuditEntry


@dataclass
class AppSummary:
    """An app's card on the overview: title, link and (label, value) figures."""

    label: str
    title: str
    description: str
    url: str
    stats: list[tuple[str, object]] = field(default_factory=list)
    # Charts for the overview: (element id, title, Plotly figure data).
    charts: list[tuple[str, str, dict]] = field(default_factory=list)
    # Recent items for the card: (text, url, when) tuples.
    recent: list[tuple[str, str, object]] = field(default_factory=list)
    recent_title: str = ""
    # A health panel on the card: (text, url, state) tuples; state "bad" or "warn" colours the line.
    health: list[tuple[str, str, str]] = field(default_factory=list)
    health_title: str = ""


def activity_stats(app_label: str, days: int = 7) -> list[tuple[str, object]]:
    """Recorded changes in an app over `days` days and the time of the latest one (one query)."""
    since = timezone.now() - datetime.timedelta(days=days)
    row = AuditEntry.objects.filter(app_label=app_label).aggregate(
        recent=Count("id", filter=Q(at__gte=since)), latest=Max("at")
    )
    return [(f"Changes in {days} days", row["recent"]), ("Last change", row["latest"])]
