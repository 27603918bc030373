"""Figures of the check pages: the latency chart (Plotly) and the list's sparklines (inline SVG geometry)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from django.utils import timezone

from opsportal.portal.charts import base_layout

from .services.check_pages import Run
from .services.checks import LatencyPoint

UP_COLOUR = "#198754"
DOWN_COLOUR = "#b02a37"
SPARK_WIDTH = 120
SPARK_HEIGHT = 24


def latency_chart(
    points: Sequence[LatencyPoint],
    down_periods: Sequence[tuple[datetime.datetime, datetime.datetime | None]],
    *,
    since: datetime.datetime,
    until: datetime.datetime | None = None,
) -> go.Figure:
    """Mean latency per bucket over [since, until]; buckets with a failed run as red markers; outages shaded."""
    until = until or timezone.now()
    fig = go.Figure()
    fig.add_scatter(
        name="latency",
        x=[p.at.isoformat() for p in points],
        y=[p.latency_ms for p in points],
        mode="lines",
        line={"color": UP_COLOUR, "width": 1.5},
        customdata=[p.runs for p in points],
        hovertemplate="%{y:.1f} ms (%{customdata} runs)<extra>latency</extra>",
    )
    failed = [p for p in points if not p.up]
    fig.add_scatter(
        name="failed runs",
        x=[p.at.isoformat() for p in failed],
        y=[p.latency_ms if p.latency_ms is not None else 0 for p in failed],
        mode="markers",
        marker={"color": DOWN_COLOUR, "size": 7, "symbol": "x"},
        hovertemplate="a run failed<extra>down</extra>",
    )
    shapes = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": max(start, since).isoformat(),
            "x1": min(end or until, until).isoformat(),
            "y0": 0,
            "y1": 1,
            "fillcolor": DOWN_COLOUR,
            "opacity": 0.15,
            "line": {"width": 0},
            "layer": "below",
            "name": "down",
        }
        for start, end in down_periods
    ]
    fig.update_layout(
        base_layout(height=300),
        shapes=shapes,
        yaxis={"title": "ms", "rangemode": "tozero"},
        xaxis={
            "type": "date",
            "range": [since.isoformat(), until.isoformat()],
            "rangeselector": {
                "buttons": [
                    {"count": 1, "label": "1 h", "step": "hour", "stepmode": "backward"},
                    {"count": 6, "label": "6 h", "step": "hour", "stepmode": "backward"},
                    {"count": 1, "label": "1 d", "step": "day", "stepmode": "backward"},
                    {"count": 7, "label": "7 d", "step": "day", "stepmode": "backward"},
                    {"step": "all", "label": "all"},
                ]
            },
        },
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        margin={"l": 48, "r": 16, "t": 40, "b": 40},
    )
    return fig


@dataclass(frozen=True)
class Sparkline:
    """An SVG polyline of the latest runs' latency, failed runs as red dots, runs without a latency (a
    heartbeat's pings) as green ones; `label` says it in words."""

    points: str
    failures: list[tuple[float, float]]
    untimed: list[tuple[float, float]]
    label: str
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT


def sparkline(runs: Sequence[Run]) -> Sparkline | None:
    """The sparkline of `runs` (oldest first), or None when there are none."""
    if not runs:
        return None
    timed = [run.latency_ms for run in runs if run.latency_ms is not None]
    top = max(timed, default=0) or 1.0
    step = SPARK_WIDTH / max(1, len(runs) - 1)
    usable = SPARK_HEIGHT - 4

    def y_of(latency: float | None) -> float:
        if latency is None and not timed:
            return SPARK_HEIGHT / 2  # nothing timed (a heartbeat's pings): dots along the middle
        return round(SPARK_HEIGHT - 2 - usable * (latency or 0) / top, 1)

    coords = [(round(i * step, 1), y_of(run.latency_ms)) for i, run in enumerate(runs)]
    line = " ".join(f"{x},{y}" for (x, y), run in zip(coords, runs, strict=True) if run.latency_ms is not None)
    failures = [coord for coord, run in zip(coords, runs, strict=True) if not run.up]
    untimed = [coord for coord, run in zip(coords, runs, strict=True) if run.up and run.latency_ms is None]
    low, high = (f"{min(timed):.0f}", f"{max(timed):.0f}") if timed else ("", "")
    last = f"the last {len(runs)} runs" if len(runs) > 1 else "the last run"
    if timed:
        label = f"Latency of {last}: {low} to {high} ms, {len(failures)} failed"
    else:
        label = f"{last.capitalize()}: {len(runs) - len(failures)} up, {len(failures)} failed"
    return Sparkline(points=line, failures=failures, untimed=untimed, label=label)
