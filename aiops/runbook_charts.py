"""The runbook page's Plotly figure: MTTR of incidents it ran on against those of the same services without it."""

from __future__ import annotations

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .services.runbooks import RunbookFigures


def runbook_mttr(figures: RunbookFigures) -> go.Figure:
    """Two bars (median minutes to resolve), each labelled with how many resolved incidents it is over."""
    labels = [f"With this runbook ({figures.with_count})", f"Same services, without it ({figures.without_count})"]
    values = [figures.mttr_with, figures.mttr_without]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=[v if v is not None else 0 for v in values],
            text=[f"{v:g} min" if v is not None else "no resolved incident" for v in values],
            textposition="auto",
            marker_color=["#198754", "#6c757d"],
            hovertemplate="%{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(**base_layout(260), yaxis_title="Median time to resolve (min)", showlegend=False)
    return fig
