"""Plotly figures for LLMOps pages."""

from __future__ import annotations

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout


def latest_pass_rates(rows) -> go.Figure:
    names = [name for name, _rate, _run in rows]
    rates = [round((rate or 0) * 100, 1) for _name, rate, _run in rows]
    fig = go.Figure(
        go.Bar(
            x=rates,
            y=names,
            orientation="h",
            marker_color=["#198754" if r >= 90 else "#e0a800" if r >= 70 else "#b02a37" for r in rates],
            hovertemplate="%{y}: %{x}% passed<extra></extra>",
        )
    )
    fig.update_layout(base_layout(height=max(200, 40 * len(names) + 60)), hovermode="closest",
                      xaxis={"title": "pass rate (%)", "range": [0, 100]}, yaxis={"automargin": True})  # fmt: skip
    return fig


def cost_per_day(rows) -> go.Figure:
    fig = go.Figure(
        go.Bar(x=[day.isoformat() for day, _ in rows], y=[round(total, 4) for _, total in rows],
               marker_color="#0a58ca", hovertemplate="%{x}: $%{y}<extra></extra>")
    )  # fmt: skip
    fig.update_layout(base_layout(height=240), yaxis={"title": "USD", "rangemode": "tozero"}, hovermode="closest",
                      xaxis={"type": "date", "tickformat": "%b %d", "dtick": 86400000})  # fmt: skip
    return fig


def score_distribution(scores_by_column: dict[str, dict[str, list[float]]]) -> go.Figure:
    """Box plots of scores per scorer, one trace per column (run)."""
    fig = go.Figure()
    for label, by_scorer in scores_by_column.items():
        xs, ys = [], []
        for scorer, values in by_scorer.items():
            xs += [scorer] * len(values)
            ys += values
        fig.add_box(x=xs, y=ys, name=label, boxpoints=False)
    fig.update_layout(base_layout(height=320), boxmode="group", yaxis={"title": "score", "range": [0, 1.05]},
                      hovermode="closest", legend={"orientation": "h"})  # fmt: skip
    return fig


def latency_histogram(latencies_by_column: dict[str, list[float]]) -> go.Figure:
    fig = go.Figure()
    for label, values in latencies_by_column.items():
        fig.add_histogram(x=values, name=label, opacity=0.6, nbinsx=30)
    fig.update_layout(base_layout(height=280), barmode="overlay", xaxis={"title": "latency (ms)"},
                      yaxis={"title": "results"}, hovermode="closest", legend={"orientation": "h"})  # fmt: skip
    return fig


def cost_per_model(costs: dict[str, float]) -> go.Figure:
    fig = go.Figure(
        go.Bar(x=list(costs), y=[round(v, 6) for v in costs.values()], marker_color="#6f42c1",
               hovertemplate="%{x}: $%{y}<extra></extra>")
    )  # fmt: skip
    fig.update_layout(base_layout(height=260), yaxis={"title": "USD", "rangemode": "tozero"}, hovermode="closest")
    return fig
