"""Shared Plotly helpers: one look for every chart, and safe hand-over to templates."""

from __future__ import annotations

import json

import plotly.graph_objects as go

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def base_layout(height: int = 300) -> dict:
    return {
        "height": height,
        "margin": {"l": 48, "r": 16, "t": 16, "b": 40},
        "font": {"family": FONT, "size": 12},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
    }


def figure_data(fig: go.Figure) -> dict:
    """The figure as plain JSON data, for `{{ chart|json_script:"id" }}` (which escapes it for HTML)."""
    return json.loads(fig.to_json())
