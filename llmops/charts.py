"""Plotly figures for LLMOps pages, and the charts of a run and of a comparison assembled from results."""

from __future__ import annotations

from collections import defaultdict

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout, figure_data

from .models import RunColumn, RunResult

# Charts are drawn from at most this many results per column (the tables count every result).
CHART_SAMPLE = 20_000


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


def legend_on_top(figure: go.Figure) -> go.Figure:
    """The legend above the plot: below it, it covers the x axis's title."""
    return figure.update_layout(legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, margin={"t": 40})


def run_charts(columns: list[RunColumn]) -> dict:
    """A run's charts (scores per scorer, latency, cost per model) as figure data, each only with data to show.

    `columns` carry `cost_total` (the run page's column summaries).
    """
    labels = {column.pk: f"#{column.position + 1} {column.label}" for column in columns}
    scores: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in labels.values()}
    latencies: dict[str, list[float]] = {label: [] for label in labels.values()}
    for column in columns:
        label = labels[column.pk]
        rows = RunResult.objects.filter(column=column, error="").values_list("scores", "latency_ms")[:CHART_SAMPLE]
        for entries, latency in rows:
            for entry in entries or []:
                scores[label][entry.get("name", "?")].append(entry.get("score", 0))
            if latency is not None:
                latencies[label].append(round(latency, 1))
    costs: dict[str, float] = defaultdict(float)
    for column in columns:
        if column.cost_total:
            costs[column.model.name if column.model else column.label] += column.cost_total
    result = {}
    if any(values for by_scorer in scores.values() for values in by_scorer.values()):
        result["scores"] = figure_data(legend_on_top(score_distribution({k: dict(v) for k, v in scores.items()})))
    if any(latencies.values()):
        result["latency"] = figure_data(legend_on_top(latency_histogram({k: v for k, v in latencies.items() if v})))
    if costs:
        result["cost"] = figure_data(cost_per_model(dict(costs)))
    return result


def compare_charts(sides: list[tuple[str, RunColumn]]) -> dict:
    """The compare page's charts of its two sides (label, column), as figure data."""
    scores, latencies, costs = {}, {}, {}
    for label, column in sides:
        by_scorer: dict[str, list[float]] = defaultdict(list)
        values: list[float] = []
        total = 0.0
        rows = RunResult.objects.filter(column=column).values_list("scores", "latency_ms", "cost", "error")
        for entries, latency, cost, error in rows[:CHART_SAMPLE]:
            total += cost or 0.0
            if error:
                continue
            for entry in entries or []:
                by_scorer[entry.get("name", "?")].append(entry.get("score", 0))
            if latency is not None:
                values.append(round(latency, 1))
        scores[label] = dict(by_scorer)
        if values:
            latencies[label] = values
        model = column.model.name if column.model else "imported"
        costs[f"{label[0]}: {model}"] = total
    result = {}
    if any(v for s in scores.values() for v in s.values()):
        result["scores"] = figure_data(legend_on_top(score_distribution(scores)))
    if latencies:
        result["latency"] = figure_data(legend_on_top(latency_histogram(latencies)))
    if any(costs.values()):
        result["cost"] = figure_data(cost_per_model(costs))
    return result
