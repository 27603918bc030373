"""Plotly figures of scores: a score's mean over time, one line per prompt version or model."""

from __future__ import annotations

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .services.scores import ScoreBucket


def score_over_time(buckets: list[ScoreBucket], *, name: str, hourly: bool) -> go.Figure:
    """The mean of `name` per bucket, a line per group (prompt version or model), hover showing the count."""
    fig = go.Figure()
    groups: dict[str, list[ScoreBucket]] = {}
    for bucket in buckets:
        groups.setdefault(bucket.group, []).append(bucket)
    for group, rows in sorted(groups.items()):
        fig.add_scatter(
            x=[row.start.isoformat() for row in rows], y=[round(row.mean, 4) for row in rows], name=group,
            mode="lines+markers", customdata=[row.count for row in rows],
            hovertemplate=f"{group}: %{{y}} (%{{customdata}} scores)<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        base_layout(height=300),
        xaxis={"type": "date", "tickformat": "%b %d %H:%M" if hourly else "%b %d"},
        yaxis={"title": f"mean {name}"},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        margin={"l": 48, "r": 24, "t": 40, "b": 40},
    )
    return fig
