"""Plotly figures of capacity forecasts: one series' history and forecast, and the overview's soonest full."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .metric_charts import BAND_COLOUR, THRESHOLD_COLOUR

UTC = datetime.UTC
HEIGHT = 400
HISTORY_COLOUR = "#0d6efd"
FORECAST_COLOUR = "#6610f2"
FULL_COLOUR = "#b02a37"
HORIZON_COLOUR = "#fd7e14"
RANGE_COLOUR = "rgba(176, 42, 55, 0.08)"


def _iso(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, UTC).isoformat()


def _values(values: Sequence[float | None]) -> list[float | None]:
    return [None if value is None or not math.isfinite(value) else value for value in values]


def forecast_chart(
    *,
    history: Sequence[tuple[float, float]],
    curve: dict,
    limit: float | None,
    full_at: datetime.datetime | None,
    full_at_earliest: datetime.datetime | None,
    full_at_latest: datetime.datetime | None,
    horizon_end: datetime.datetime,
    level: float,
) -> go.Figure:
    """History, the forecast's mean and prediction band, the limit line, the full date and its range, the horizon."""
    fig = go.Figure()
    times = [_iso(at) for at in curve.get("times", [])]
    if times:
        fig.add_scatter(
            name=f"{level:.0%} interval (lower)", x=times, y=_values(curve["lower"]), mode="lines",
            line={"width": 0}, showlegend=False, hoverinfo="skip",
        )  # fmt: skip
        fig.add_scatter(
            name=f"{level:.0%} prediction interval", x=times, y=_values(curve["upper"]), mode="lines",
            line={"width": 0}, fill="tonexty", fillcolor=BAND_COLOUR, hoverinfo="skip",
        )  # fmt: skip
    fig.add_scatter(
        name="history", x=[_iso(at) for at, _ in history], y=_values([value for _, value in history]), mode="lines",
        line={"width": 1.5, "color": HISTORY_COLOUR}, connectgaps=False,
        hovertemplate="%{y:.4~s}<extra>history</extra>",
    )  # fmt: skip
    if times:
        fig.add_scatter(
            name="forecast", x=times, y=_values(curve["mean"]), mode="lines",
            line={"width": 1.5, "color": FORECAST_COLOUR, "dash": "dash"},
            hovertemplate="%{y:.4~s}<extra>forecast</extra>",
        )  # fmt: skip
    shapes: list[dict] = []
    annotations: list[dict] = []
    if limit is not None:
        shapes.append(
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": limit, "y1": limit,
             "line": {"color": THRESHOLD_COLOUR, "width": 1.5}, "name": "limit"}
        )  # fmt: skip
        annotations.append(
            {"xref": "paper", "x": 0, "xanchor": "left", "yref": "y", "y": limit, "yanchor": "bottom",
             "text": f"limit {short_number(limit)}", "showarrow": False,
             "font": {"color": THRESHOLD_COLOUR, "size": 11}, "name": "limit"}
        )  # fmt: skip
    if full_at_earliest is not None:
        until = full_at_latest or (datetime.datetime.fromtimestamp(curve["times"][-1], UTC) if times else None)
        if until is not None:
            shapes.append(
                {"type": "rect", "xref": "x", "x0": full_at_earliest.isoformat(), "x1": until.isoformat(),
                 "yref": "paper", "y0": 0, "y1": 1, "fillcolor": RANGE_COLOUR, "line": {"width": 0},
                 "layer": "below", "name": "full between"}
            )  # fmt: skip
    if full_at is not None:
        shapes.append(
            {"type": "line", "xref": "x", "x0": full_at.isoformat(), "x1": full_at.isoformat(), "yref": "paper",
             "y0": 0, "y1": 1, "line": {"color": FULL_COLOUR, "width": 1.5, "dash": "dot"}, "name": "full"}
        )  # fmt: skip
        annotations.append(
            {"xref": "x", "x": full_at.isoformat(), "yref": "paper", "y": 1, "yanchor": "bottom",
             "text": f"full {full_at:%Y-%m-%d %H:%M}", "showarrow": False, "font": {"color": FULL_COLOUR, "size": 11},
             "name": "full"}
        )  # fmt: skip
    shapes.append(
        {"type": "line", "xref": "x", "x0": horizon_end.isoformat(), "x1": horizon_end.isoformat(), "yref": "paper",
         "y0": 0, "y1": 1, "line": {"color": HORIZON_COLOUR, "width": 1, "dash": "dash"}, "name": "horizon"}
    )  # fmt: skip
    annotations.append(
        {"xref": "x", "x": horizon_end.isoformat(), "xanchor": "right", "yref": "paper", "y": 0.02,
         "yanchor": "bottom", "text": "horizon", "showarrow": False, "font": {"color": HORIZON_COLOUR, "size": 11},
         "name": "horizon"}
    )  # fmt: skip
    fig.update_layout(
        base_layout(height=HEIGHT),
        shapes=shapes,
        annotations=annotations,
        yaxis={"zeroline": False, "automargin": True, "rangemode": "tozero", "exponentformat": "SI"},
        xaxis={"type": "date"},
        legend={"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0, "xanchor": "left"},
        margin={"l": 56, "r": 16, "t": 28, "b": 40},
    )
    return fig


def short_number(value: float) -> str:
    """A value with an SI prefix for big numbers (bytes): 500 G, 1.5 T; small ones as they are."""
    for size, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.4g} {prefix}"
    return f"{value:.4g}"


def soonest_chart(
    rows: Sequence[tuple[str, float, float, float | None]], *, max_days: float, level: float
) -> go.Figure:
    """The overview's panel: (name, days to full, earliest, latest or None) as points with their interval."""
    names = [name for name, *_ in rows][::-1]
    full = [days for _, days, _, _ in rows][::-1]
    minus = [max(0.0, days - earliest) for _, days, earliest, _ in rows][::-1]
    plus = [max(0.0, (latest if latest is not None else max_days) - days) for _, days, _, latest in rows][::-1]
    fig = go.Figure()
    fig.add_scatter(
        x=full, y=names, mode="markers", marker={"size": 9, "color": FULL_COLOUR},
        error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "color": FULL_COLOUR},
        hovertemplate="%{y}: full in %{x:.1f} days<extra></extra>", name="full in (days)",
    )  # fmt: skip
    fig.update_layout(
        base_layout(height=max(160, 60 + 34 * len(rows))),
        xaxis={"title": f"days until full ({level:.0%} interval)", "rangemode": "tozero"},
        yaxis={"automargin": True},
        showlegend=False,
        margin={"l": 16, "r": 16, "t": 16, "b": 40},
    )
    return fig
