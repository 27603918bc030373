"""Plotly figure of the LLM monitor page: the monitor's value at each evaluation against its bound."""

from __future__ import annotations

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .models import LLMMonitor, LLMMonitorReading


def value_vs_bound(monitor: LLMMonitor, readings: list[LLMMonitorReading]) -> go.Figure:
    """The readings as a line (rates in %), breaches marked red, the bound as a dashed line."""
    scale = 100.0 if monitor.is_rate else 1.0
    xs = [reading.at.isoformat() for reading in readings]
    ys = [None if reading.value is None else round(reading.value * scale, 6) for reading in readings]
    unit = {True: "%"}.get(monitor.is_rate, "ms" if monitor.metric == LLMMonitor.Metric.P95_LATENCY else "USD")
    fig = go.Figure()
    fig.add_scatter(x=xs, y=ys, name=monitor.get_metric_display(), mode="lines+markers", connectgaps=False,
                    line={"color": "#0a58ca", "width": 2},
                    marker={"color": ["#b02a37" if r.breached else "#0a58ca" for r in readings], "size": 6},
                    hovertemplate=f"%{{y}} {unit}<extra></extra>")  # fmt: skip
    if xs:
        fig.add_scatter(x=[xs[0], xs[-1]], y=[monitor.threshold * scale] * 2, name="bound", mode="lines",
                        line={"color": "#b02a37", "dash": "dash", "width": 1.5},
                        hovertemplate=f"bound %{{y}} {unit}<extra></extra>")  # fmt: skip
    fig.update_layout(
        base_layout(height=260),
        xaxis={"type": "date", "tickformat": "%b %d %H:%M"},
        yaxis={"title": unit, "rangemode": "tozero"},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        margin={"l": 48, "r": 24, "t": 32, "b": 40},
    )
    return fig
