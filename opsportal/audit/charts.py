"""Plotly figures built from the audit log."""

from __future__ import annotations

import datetime

import plotly.graph_objects as go
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from opsportal.portal.charts import base_layout
from opsportal.registry import app_colours

from .models import AuditEntry

CORE_COLOURS = {"accounts": "#198754", "auth": "#20c997"}


def activity_per_day(days: int = 30) -> go.Figure:
    """Stacked bars: audit entries per day and app over the last `days` days."""
    today = timezone.localdate()
    start = today - datetime.timedelta(days=days - 1)
    since = datetime.datetime.combine(start, datetime.time.min, tzinfo=timezone.get_current_timezone())
    rows = (
        # A range on the indexed column, not at__date: the index stays usable.
        AuditEntry.objects.filter(at__gte=since)
        .annotate(day=TruncDate("at"))
        .values("day", "app_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    dates = [start + datetime.timedelta(days=i) for i in range(days)]
    by_app: dict[str, dict[datetime.date, int]] = {}
    for row in rows:
        by_app.setdefault(row["app_label"] or "other", {})[row["day"]] = row["n"]
    colours = {**CORE_COLOURS, **app_colours()}
    fig = go.Figure()
    for app in sorted(by_app):
        fig.add_bar(
            name=app,
            x=[d.isoformat() for d in dates],
            y=[by_app[app].get(d, 0) for d in dates],
            marker_color=colours.get(app),
        )
    fig.update_layout(
        base_layout(height=280),
        barmode="stack",
        xaxis={"type": "date", "tickformat": "%b %d"},
        yaxis={"title": "changes", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
