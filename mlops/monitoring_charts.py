"""Plotly figures of the Monitoring tab and the batch report, built from stored profiles and drift results.

Nothing here reads rows: the heatmap comes from each batch's drift result, the distribution overlays
from the reference's profiling plan (`ProfileSpec` edges or categories) and the two `ColumnProfile`s,
and the performance chart from each batch's metrics against the reference's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from opsportal.portal.charts import base_layout, figure_data

from .drift.profiles import ColumnProfile, ColumnSpec

# A heatmap cell is the column's drift score: 1 is the method's threshold, drawn up to SCORE_CAP.
SCORE_CAP = 3.0
OVERLAY_BINS = 30
TOP_CATEGORIES = 20
REFERENCE_COLOUR = "#6c757d"
CURRENT_COLOUR = "#d63384"
# Below the threshold: white to pale amber; above it: pink to dark red (the cut sits at 1 / SCORE_CAP).
DRIFT_COLOURSCALE = [
    [0.0, "#f8f9fa"],
    [0.33, "#ffe69c"],
    [0.3334, "#f1aeb5"],
    [1.0, "#842029"],
]
# Error metrics: lower is better (their bound is a ceiling); every other metric is a score.
ERROR_METRICS = frozenset({"log_loss", "mae", "rmse", "mape", "mse"})


def drift_score(column: dict) -> float | None:
    """How far a column is from its threshold, on one scale for tests and distances: 1 is the threshold.

    A test's p-value p at threshold t scores log(p) / log(t) (p = t gives 1, smaller p more); a distance
    d scores d / t. None when the result has no usable number.
    """
    threshold = column.get("threshold")
    if not threshold:
        return None
    p_value = column.get("p_value")
    if p_value is not None:
        if threshold >= 1:
            return 0.0
        if p_value <= 0:
            return SCORE_CAP
        return min(max(math.log(p_value) / math.log(threshold), 0.0), SCORE_CAP)
    statistic = column.get("statistic")
    if statistic is None:
        return None
    return min(max(statistic / threshold, 0.0), SCORE_CAP)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


@dataclass(frozen=True)
class HeatmapBatch:
    """One heatmap column: a batch's id, the end of the time it covers, its version and its drift result."""

    pk: int
    end: object
    version: int | None
    drift: dict


def drift_heatmap(columns: Sequence[str], batches: Sequence[HeatmapBatch], link: Callable[[int, str], str]) -> dict:
    """Columns (rows) by batches in time order (columns of the map), coloured by drift score.

    Each cell carries `link(batch_pk, column)` as customdata, the address the page opens on a click.
    Columns a batch did not compare (no values on one side) are gaps.
    """
    x = [batch.end.isoformat() for batch in batches]
    z, text, links = [], [], []
    for name in columns:
        z_row, text_row, link_row = [], [], []
        for batch in batches:
            result = next((c for c in batch.drift.get("columns", []) if c["column"] == name), None)
            version = f"v{batch.version}" if batch.version is not None else "no version"
            if result is None:
                z_row.append(None)
                text_row.append(f"batch #{batch.pk} ({version}): not compared")
            else:
                z_row.append(drift_score(result))
                p = f", p={_number(result.get('p_value'))}" if result.get("p_value") is not None else ""
                verdict = "DRIFTED" if result.get("drifted") else "no drift"
                text_row.append(
                    f"batch #{batch.pk} ({version}): {verdict}<br>{result['method']} "
                    f"{_number(result.get('statistic'))}{p}, threshold {_number(result.get('threshold'))}"
                )
            link_row.append(link(batch.pk, name))
        z.append(z_row)
        text.append(text_row)
        links.append(link_row)
    fig = go.Figure(
        go.Heatmap(
            x=x,
            y=list(columns),
            z=z,
            text=text,
            customdata=links,
            zmin=0,
            zmax=SCORE_CAP,
            colorscale=DRIFT_COLOURSCALE,
            xgap=1,
            ygap=1,
            hoverongaps=False,
            hovertemplate="<b>%{y}</b> · %{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>",
            colorbar={
                "title": {"text": "drift score"},
                "tickvals": [0, 1, 2, 3],
                "ticktext": ["0", "1 = threshold", "2", "≥3"],
                "thickness": 12,
            },
        )
    )
    layout = base_layout(height=max(220, 26 * len(columns) + 90))
    layout["margin"] = {"l": 140, "r": 16, "t": 16, "b": 48}
    fig.update_layout(
        layout,
        hovermode="closest",
        xaxis={"title": "end of batch", "type": "date"},
        yaxis={"autorange": "reversed", "type": "category", "automargin": True},
    )
    return figure_data(fig)


# --- distributions from profiles -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """Reference and current shares on common bins (numerical) or categories, for one overlay chart."""

    kind: str  # "bins", "values" or "categories"
    x: list
    reference: list[float]
    current: list[float]


def _cdf(spec: ColumnSpec, profile: ColumnProfile, grid_low: float, grid_high: float) -> tuple[np.ndarray, ...]:
    """The profile's CDF at its sketch edges, with the open end bins closed at [grid_low, grid_high]."""
    grid = np.concatenate([[grid_low], spec.edges, [grid_high]])
    cdf = np.concatenate([[0], np.cumsum(profile.counts)]) / max(profile.count, 1)
    return grid, cdf


def distribution(spec: ColumnSpec, reference: ColumnProfile, current: ColumnProfile) -> Distribution:
    """The two distributions of one column, read off the profiles.

    Numerical: shares on OVERLAY_BINS equal bins over both samples' range, re-cut from the quantile sketch
    (linear inside a sketch bin, as the drift methods read it); a column with at most 5 distinct values
    on both sides shows each value. Categorical and boolean: the TOP_CATEGORIES most frequent categories,
    new ones (not in the reference) included.
    """
    if spec.type == "numerical":
        if reference.few is not None and current.few is not None:
            values = sorted(set(reference.few) | set(current.few))
            ref_total, cur_total = max(reference.count, 1), max(current.count, 1)
            return Distribution(
                "values",
                [float(f"{v:.6g}") for v in values],
                [round(reference.few.get(v, 0) / ref_total, 6) for v in values],
                [round(current.few.get(v, 0) / cur_total, 6) for v in values],
            )
        bounds = [v for v in (reference.minimum, reference.maximum, current.minimum, current.maximum) if v is not None]
        if not bounds or spec.edges is None or not len(spec.edges):
            return Distribution("bins", [], [], [])
        low, high = min(bounds), max(bounds)
        grid_low, grid_high = min(low, float(spec.edges[0])), max(high, float(spec.edges[-1]))
        if high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, OVERLAY_BINS + 1)
        shares = []
        for profile in (reference, current):
            grid, cdf = _cdf(spec, profile, grid_low, grid_high)
            shares.append(np.clip(np.diff(np.interp(edges, grid, cdf)), 0, None).round(6).tolist())
        centres = (edges[:-1] + edges[1:]) / 2
        return Distribution("bins", [float(f"{c:.6g}") for c in centres], shares[0], shares[1])
    names = list(spec.categories) + sorted(set(reference.new) | set(current.new))
    ref = np.array([*reference.counts.tolist(), *(reference.new.get(n, 0) for n in names[len(spec.categories) :])])
    cur = np.array([*current.counts.tolist(), *(current.new.get(n, 0) for n in names[len(spec.categories) :])])
    ref_shares = ref / max(ref.sum(), 1)
    cur_shares = cur / max(cur.sum(), 1)
    top = np.argsort(-(ref_shares + cur_shares), kind="stable")[:TOP_CATEGORIES]
    return Distribution(
        "categories",
        [str(names[i]) for i in top],
        ref_shares[top].round(6).tolist(),
        cur_shares[top].round(6).tolist(),
    )


def distribution_overlay(name: str, data: Distribution, current_label: str = "current") -> dict:
    """Reference (grey) and current (pink) shares of one column, overlaid bins or grouped categories."""
    hover = "%{x}: %{y:.1%}<extra>%{fullData.name}</extra>"
    fig = go.Figure(
        [
            go.Bar(name="reference", x=data.x, y=data.reference, marker_color=REFERENCE_COLOUR, hovertemplate=hover),
            go.Bar(
                name=current_label,
                x=data.x,
                y=data.current,
                marker_color=CURRENT_COLOUR,
                opacity=0.7 if data.kind == "bins" else 1,
                hovertemplate=hover,
            ),
        ]
    )
    layout = base_layout(height=280)
    layout["margin"] = {"l": 48, "r": 16, "t": 24, "b": 48}
    fig.update_layout(
        layout,
        hovermode="closest",
        barmode="overlay" if data.kind == "bins" else "group",
        bargap=0.05,
        xaxis={"title": name, "type": "category" if data.kind != "bins" else "linear"},
        yaxis={"title": "share of rows", "tickformat": ".0%", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure_data(fig)


# --- performance over time -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformancePoint:
    """One batch's value of a metric, with how many of its rows had labels."""

    pk: int
    end: object
    version: int | None
    value: float
    labelled: int


def performance_over_time(metric: str, points: Sequence[PerformancePoint], reference: float | None) -> dict:
    """A metric per batch in time order, one trace per version, with the reference's value as a dashed line."""
    palette = ["#0a58ca", "#198754", "#6f42c1", "#dc6b2f", "#20c997", "#e0a800"]
    versions = sorted({p.version for p in points}, key=lambda v: (v is None, v or 0))
    traces = []
    for index, version in enumerate(versions):
        mine = [p for p in points if p.version == version]
        traces.append(
            go.Scatter(
                x=[p.end.isoformat() for p in mine],
                y=[p.value for p in mine],
                customdata=[[p.pk, p.labelled] for p in mine],
                mode="lines+markers",
                name=f"version {version}" if version is not None else "no version",
                line={"color": palette[index % len(palette)]},
                hovertemplate=f"{metric} %{{y:.4g}}<br>batch #%{{customdata[0]}}, %{{customdata[1]}} labelled rows"
                "<extra>%{fullData.name}</extra>",
            )
        )
    fig = go.Figure(traces)
    if reference is not None:
        fig.add_hline(
            y=reference,
            line={"dash": "dash", "color": REFERENCE_COLOUR},
            annotation_text=f"reference {reference:.4g}",
            annotation_position="top left",
        )
    layout = base_layout(height=280)
    fig.update_layout(
        layout,
        hovermode="closest",
        xaxis={"title": "end of batch", "type": "date"},
        yaxis={"title": metric + (" (lower is better)" if metric in ERROR_METRICS else "")},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure_data(fig)
