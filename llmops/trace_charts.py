"""Plotly figures of production traces: requests and errors, latency percentiles, tokens and cost breakdowns.

The series come aggregated from the database (`llmops.trace_queries`); these functions only draw them.
"""

from __future__ import annotations

import datetime

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .trace_queries import Breakdown, Overview

LEGEND = {"orientation": "h", "y": 1.12}
PALETTE = ["#0a58ca", "#6f42c1", "#198754", "#fd7e14", "#d63384", "#20c997", "#6c757d", "#ffc107", "#adb5bd"]


def _x(buckets: list[datetime.datetime]) -> list[str]:
    return [when.isoformat() for when in buckets]


def _time_axis(bucket: str) -> dict:
    return {"type": "date", "tickformat": "%H:%M\n%b %d" if bucket == "hour" else "%b %d"}


def requests_and_errors(usage: Overview) -> go.Figure:
    """Requests per bucket as bars, the error rate (%) as a line on its own axis."""
    rates = [round(e / r * 100, 2) if r else None for e, r in zip(usage.errors, usage.requests, strict=True)]
    fig = go.Figure()
    fig.add_bar(x=_x(usage.buckets), y=usage.requests, name="requests", marker_color=PALETTE[0],
                hovertemplate="%{y} requests<extra></extra>")  # fmt: skip
    fig.add_scatter(x=_x(usage.buckets), y=rates, name="error rate (%)", yaxis="y2", mode="lines+markers",
                    line={"color": "#b02a37"}, hovertemplate="%{y}% errors<extra></extra>")  # fmt: skip
    fig.update_layout(
        base_layout(height=280), xaxis=_time_axis(usage.bucket), legend=LEGEND,
        yaxis={"title": "requests", "rangemode": "tozero"},
        yaxis2={"title": "errors (%)", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )  # fmt: skip
    return fig


def latency(usage: Overview) -> go.Figure:
    fig = go.Figure()
    for name, values, color in (("p50", usage.p50, PALETTE[0]), ("p95", usage.p95, "#fd7e14")):
        points = [None if v is None else round(v, 1) for v in values]
        fig.add_scatter(x=_x(usage.buckets), y=points, name=name, mode="lines+markers", line={"color": color},
                        hovertemplate=f"{name} %{{y}} ms<extra></extra>")  # fmt: skip
    fig.update_layout(base_layout(height=280), xaxis=_time_axis(usage.bucket), legend=LEGEND,
                      yaxis={"title": "latency (ms)", "rangemode": "tozero"})  # fmt: skip
    return fig


def tokens(usage: Overview) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=_x(usage.buckets), y=usage.input_tokens, name="input", marker_color=PALETTE[0])
    fig.add_bar(x=_x(usage.buckets), y=usage.output_tokens, name="output", marker_color=PALETTE[1])
    fig.update_layout(base_layout(height=280), barmode="stack", xaxis=_time_axis(usage.bucket), legend=LEGEND,
                      yaxis={"title": "tokens", "rangemode": "tozero"})  # fmt: skip
    return fig


def cost_breakdown(breakdown: Breakdown, bucket: str) -> go.Figure:
    """Cost per bucket stacked by the top values of a dimension (model, prompt version, user)."""
    fig = go.Figure()
    for index, (name, values) in enumerate(sorted(breakdown.series.items(), key=lambda item: item[0] == "other")):
        fig.add_bar(x=_x(breakdown.buckets), y=[round(v, 6) for v in values], name=name,
                    marker_color=PALETTE[index % len(PALETTE)],
                    hovertemplate=f"{name}: $%{{y}}<extra></extra>")  # fmt: skip
    fig.update_layout(base_layout(height=280), barmode="stack", xaxis=_time_axis(bucket), legend=LEGEND,
                      yaxis={"title": "USD", "rangemode": "tozero"})  # fmt: skip
    return fig


def requests_and_cost(usage: Overview) -> go.Figure:
    """One user's requests (bars) and cost (line) over time."""
    fig = go.Figure()
    fig.add_bar(x=_x(usage.buckets), y=usage.requests, name="requests", marker_color=PALETTE[0])
    fig.add_scatter(x=_x(usage.buckets), y=[round(c, 6) for c in usage.cost], name="cost (USD)", yaxis="y2",
                    mode="lines+markers", line={"color": PALETTE[1]})  # fmt: skip
    fig.update_layout(
        base_layout(height=260), xaxis=_time_axis(usage.bucket), legend=LEGEND,
        yaxis={"title": "requests", "rangemode": "tozero"},
        yaxis2={"title": "USD", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )  # fmt: skip
    return fig
