"""Plotly figures for MLOps pages."""

from __future__ import annotations

import plotly.graph_objects as go
from django.db.models import Count

from opsportal.portal.charts import base_layout

from .models import ModelVersion, Stage

STAGE_COLOURS = {"None": "#6c757d", "Staging": "#e0a800", "Production": "#198754", "Archived": "#adb5bd"}


def versions_by_stage() -> go.Figure:
    counts = dict(ModelVersion.objects.values_list("stage").annotate(n=Count("id")).order_by())
    stages = [s.value for s in Stage]
    fig = go.Figure(
        go.Bar(
            x=stages,
            y=[counts.get(s, 0) for s in stages],
            marker_color=[STAGE_COLOURS[s] for s in stages],
            hovertemplate="%{x}: %{y} versions<extra></extra>",
        )
    )
    fig.update_layout(base_layout(height=240), yaxis={"title": "versions", "rangemode": "tozero"}, hovermode="closest")
    return fig


def compare_metrics(versions: list[ModelVersion]) -> go.Figure:
    """Grouped bars: one group per metric, one bar per version (metrics on very different scales get their own
    normalised view in the table; the chart shows raw values)."""
    keys = sorted({key for v in versions for key in v.metrics})
    fig = go.Figure()
    for version in versions:
        fig.add_bar(
            name=f"v{version.version}",
            x=keys,
            y=[version.metrics.get(key) for key in keys],
            hovertemplate=f"v{version.version} %{{x}}: %{{y}}<extra></extra>",
        )
    fig.update_layout(base_layout(height=320), barmode="group", hovermode="closest", legend={"orientation": "h"})
    return fig
