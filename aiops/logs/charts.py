"""The patterns page's sparklines: one small Plotly line of records per minute for each template."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

LINE_COLOUR = "#d63384"


def sparkline(minutes: Sequence[datetime.datetime], counts: Sequence[int]) -> dict:
    """A Plotly figure (plain JSON data, for json_script): no axes, 40 px high, hover shows the count."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": [minute.isoformat() for minute in minutes],
                "y": list(counts),
                "line": {"width": 1.5, "color": LINE_COLOUR, "shape": "hv"},
                "fill": "tozeroy",
                "hovertemplate": "%{x|%H:%M}: %{y}<extra></extra>",
            }
        ],
        "layout": {
            "height": 40,
            "margin": {"l": 0, "r": 0, "t": 2, "b": 2},
            "xaxis": {"visible": False, "type": "date"},
            "yaxis": {"visible": False, "rangemode": "tozero"},
            "showlegend": False,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        },
    }
