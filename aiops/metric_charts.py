"""The metric explorer's figure (Plotly): stored series overlaid, threshold lines, incident marks.

`explorer_chart` takes what to draw as plain data so that later layers (anomaly shading, an
expected band) add to the same figure: `bands` are filled areas between a lower and an upper
line, `shapes` any extra Plotly shapes (e.g. shaded anomaly windows).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

UTC = datetime.UTC
HEIGHT = 380
THRESHOLD_COLOUR = "#b02a37"
INCIDENT_COLOUR = "#6f42c1"
BAND_COLOUR = "rgba(13, 110, 253, 0.15)"
RANGE_BUTTONS = (("1h", 1, "hour"), ("6h", 6, "hour"), ("24h", 24, "hour"), ("7d", 7, "day"), ("30d", 30, "day"))
NO_SAMPLES = "no samples in this range"


@dataclass(frozen=True)
class ChartSeries:
    """One line: its legend name, hover name and points (unix seconds, value; NaN is a gap)."""

    name: str
    points: Sequence[tuple[float, float]]
    series_id: int | None = None
    hover: str = ""


@dataclass(frozen=True)
class Threshold:
    """A threshold rule drawn as a dashed horizontal line."""

    name: str
    value: float
    comparison: str = "above"


@dataclass(frozen=True)
class Marker:
    """A moment marked with a vertical line (an incident's start or end)."""

    at: datetime.datetime
    text: str
    colour: str = INCIDENT_COLOUR


@dataclass(frozen=True)
class Band:
    """A filled band between `lower` and `upper` at `times` (e.g. the expected range of a series)."""

    name: str
    times: Sequence[float]
    lower: Sequence[float]
    upper: Sequence[float]
    colour: str = BAND_COLOUR
    extra: dict = field(default_factory=dict)


def legend_names(metrics: Sequence[dict[str, str]]) -> list[str]:
    """Short legend names: the metric name and only the labels that tell the shown series apart.

    One series alone is named by its whole selector; several by their metric name and the labels
    that differ between them (`node_load1{instance="b"}`, not the same job and env repeated).
    """
    if len(metrics) == 1:
        return [_selector(metrics[0], set(metrics[0]))]
    keys = set().union(*(m.keys() for m in metrics)) - {"__name__"}
    differing = {key for key in keys if len({m.get(key, "") for m in metrics}) > 1}
    return [_selector(metric, differing) for metric in metrics]


def _selector(metric: dict[str, str], keys: set[str]) -> str:
    inner = ",".join(f'{key}="{metric[key]}"' for key in sorted(keys) if key in metric and key != "__name__")
    name = metric.get("__name__", "")
    return f"{name}{{{inner}}}" if inner else name


def _iso(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, UTC).isoformat()


def explorer_chart(
    series: Sequence[ChartSeries],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    y_title: str = "",
    thresholds: Sequence[Threshold] = (),
    markers: Sequence[Marker] = (),
    bands: Sequence[Band] = (),
    shapes: Sequence[dict] = (),
) -> go.Figure:
    """The series over [start, end] with the range buttons and zoom; an empty range says so on the chart."""
    fig = go.Figure()
    for band in bands:
        times = [_iso(at) for at in band.times]
        fig.add_scatter(
            name=f"{band.name} (lower)", x=times, y=list(band.lower), mode="lines", line={"width": 0},
            showlegend=False, hoverinfo="skip", **band.extra,
        )  # fmt: skip
        fig.add_scatter(
            name=band.name, x=times, y=list(band.upper), mode="lines", line={"width": 0}, fill="tonexty",
            fillcolor=band.colour, hoverinfo="skip", **band.extra,
        )  # fmt: skip
    has_points = False
    for line in series:
        values = [None if not math.isfinite(value) else value for _, value in line.points]
        has_points = has_points or any(value is not None for value in values)
        fig.add_scatter(
            name=line.name,
            x=[_iso(at) for at, _ in line.points],
            y=values,
            mode="lines",
            line={"width": 1.5},
            connectgaps=False,
            meta={"series_id": line.series_id},
            hovertemplate=f"%{{y:.4~g}}<extra>{(line.hover or line.name)[:80]}</extra>",
        )
    drawn_shapes: list[dict] = [dict(shape) for shape in shapes]
    annotations: list[dict] = []
    for threshold in thresholds:
        drawn_shapes.append(
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": threshold.value,
             "y1": threshold.value, "line": {"color": THRESHOLD_COLOUR, "width": 1.5, "dash": "dash"},
             "name": f"threshold: {threshold.name}"}
        )  # fmt: skip
        annotations.append(
            {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": threshold.value, "yanchor": "bottom",
             "text": f"{threshold.name} ({threshold.comparison} {threshold.value:g})", "showarrow": False,
             "font": {"color": THRESHOLD_COLOUR, "size": 11}}
        )  # fmt: skip
    for marker in markers:
        drawn_shapes.append(
            {"type": "line", "xref": "x", "x0": marker.at.isoformat(), "x1": marker.at.isoformat(), "yref": "paper",
             "y0": 0, "y1": 1, "line": {"color": marker.colour, "width": 1.5, "dash": "dot"}, "name": marker.text}
        )  # fmt: skip
        annotations.append(
            {"xref": "x", "x": marker.at.isoformat(), "yref": "paper", "y": 1, "yanchor": "bottom",
             "text": marker.text, "showarrow": False, "font": {"color": marker.colour, "size": 11}}
        )  # fmt: skip
    if not has_points:
        annotations.append(
            {"xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "text": NO_SAMPLES, "showarrow": False,
             "font": {"size": 16, "color": "#6c757d"}, "name": "empty"}
        )  # fmt: skip
    fig.update_layout(
        base_layout(height=HEIGHT),
        shapes=drawn_shapes,
        annotations=annotations,
        yaxis={"title": y_title, "zeroline": False, "automargin": True},
        xaxis={
            "type": "date",
            "range": [start.isoformat(), end.isoformat()],
            "rangeselector": {
                "buttons": [
                    {"count": count, "label": label, "step": step, "stepmode": "backward"}
                    for label, count, step in RANGE_BUTTONS
                ]
            },
        },
        legend={"orientation": "h", "y": -0.15, "yanchor": "top", "x": 0, "xanchor": "left"},
        margin={"l": 56, "r": 16, "t": 40, "b": 40},
    )
    return fig
