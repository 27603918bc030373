"""Plotly figures for MLOps pages."""

from __future__ import annotations

import plotly.graph_objects as go
from django.db.models import Count

from opsportal.portal.charts import base_layout

from .models import ModelVersion, RegisteredModel, Stage

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
    """One small bar chart per metric (each with its own axis, so AUC 0.8 and latency 12 ms both read well),
    one bar per version."""
    from plotly.subplots import make_subplots

    keys = sorted({key for v in versions for key in v.metrics})
    per_row = min(len(keys), 4) or 1
    rows = max(1, -(-len(keys) // per_row))
    fig = make_subplots(rows=rows, cols=per_row, subplot_titles=keys or ["no metrics"], horizontal_spacing=0.08,
                        vertical_spacing=0.25 / rows)  # fmt: skip
    palette = ["#0a58ca", "#198754", "#e0a800", "#6f42c1", "#dc6b2f", "#20c997", "#6c757d", "#d63384"]
    for index, key in enumerate(keys):
        row, col = index // per_row + 1, index % per_row + 1
        fig.add_bar(
            x=[f"v{v.version}" for v in versions],
            y=[v.metrics.get(key) for v in versions],
            marker_color=[palette[i % len(palette)] for i in range(len(versions))],
            hovertemplate=f"{key} %{{x}}: %{{y}}<extra></extra>",
            showlegend=False,
            row=row,
            col=col,
        )
    layout = base_layout(height=230 * rows + 40)
    layout["margin"] = {"l": 40, "r": 16, "t": 40, "b": 30}
    fig.update_layout(layout, hovermode="closest")
    return fig


def metric_across_versions(model: RegisteredModel, key: str) -> go.Figure:
    """One metric of every version of a model, by version number; each point coloured by the version's stage.

    Versions that do not report the metric are left out of the line (a gap says nothing about them).
    """
    rows = [
        (version, metrics.get(key), stage)
        for version, metrics, stage in ModelVersion.objects.filter(model=model)
        .order_by("version")
        .values_list("version", "metrics", "stage")
        if isinstance((metrics or {}).get(key), int | float) and not isinstance(metrics.get(key), bool)
    ]
    fig = go.Figure(
        go.Scatter(
            x=[f"v{version}" for version, _, _ in rows],
            y=[value for _, value, _ in rows],
            mode="lines+markers",
            line={"color": "#0a58ca"},
            marker={"size": 9, "color": [STAGE_COLOURS.get(stage, "#6c757d") for _, _, stage in rows]},
            customdata=[stage for _, _, stage in rows],
            hovertemplate=f"{key} %{{x}}: %{{y}} (%{{customdata}})<extra></extra>",
            name=key,
        )
    )
    layout = base_layout(height=260)
    fig.update_layout(layout, yaxis={"title": key}, xaxis={"type": "category", "title": "version"}, hovermode="closest")
    return fig
