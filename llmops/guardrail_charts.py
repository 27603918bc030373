"""Plotly figures of the guardrail pages: guard calls and their violation rate over time, per check type."""

from __future__ import annotations

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .services.guardrails import ViolationBucket

CHECK_COLOURS = {
    "pii": "#0a58ca", "injection": "#b02a37", "toxicity": "#6f42c1", "secrets": "#fd7e14", "unicode": "#20c997",
    "banned": "#6c757d", "llm-rubric": "#d63384",
}  # fmt: skip


def violation_rate(buckets: list[ViolationBucket], hourly: bool) -> go.Figure:
    """Calls per bucket (bars, right axis) and the share with a violation, overall and per check type (lines, %)."""
    xs = [bucket.start.isoformat() for bucket in buckets]
    fig = go.Figure()
    fig.add_bar(x=xs, y=[bucket.calls for bucket in buckets], name="guard calls", yaxis="y2",
                marker_color="rgba(108,117,125,0.25)", hovertemplate="%{y} calls<extra></extra>")  # fmt: skip
    fig.add_scatter(
        x=xs, y=[round(bucket.rate * 100, 2) for bucket in buckets], name="any violation", mode="lines+markers",
        line={"color": "#212529", "width": 2}, hovertemplate="%{y}% of calls violated a check<extra></extra>",
    )  # fmt: skip
    for check, colour in CHECK_COLOURS.items():
        counts = [bucket.by_check.get(check, 0) for bucket in buckets]
        if not any(counts):
            continue
        rates = [
            round(n / bucket.calls * 100, 2) if bucket.calls else 0 for n, bucket in zip(counts, buckets, strict=True)
        ]
        fig.add_scatter(x=xs, y=rates, name=check, mode="lines", line={"color": colour, "width": 1.5},
                        hovertemplate=f"{check}: %{{y}}%<extra></extra>")  # fmt: skip
    fig.update_layout(
        base_layout(height=300),
        xaxis={"type": "date", "tickformat": "%b %d %H:%M" if hourly else "%b %d"},
        yaxis={"title": "violation rate (%)", "rangemode": "tozero"},
        yaxis2={"title": "calls", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        margin={"l": 48, "r": 48, "t": 40, "b": 40},
    )
    return fig
