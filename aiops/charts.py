"""Plotly figures for AIOps pages."""

from __future__ import annotations

import datetime
import statistics

import plotly.graph_objects as go

from opsportal.portal.charts import base_layout

from .models import Incident, IncidentEvent

SEVERITY_COLOURS = {"critical": "#b02a37", "error": "#dc6b2f", "warning": "#e0a800", "info": "#0a58ca"}


def incident_activity(incident: Incident) -> go.Figure:
    """Alert firings and resolutions on the incident's timeline, as markers over time."""
    events = incident.events.filter(kind__in=[IncidentEvent.Kind.ALERT_FIRING, IncidentEvent.Kind.ALERT_RESOLVED])
    rows = list(events.values_list("at", "kind", "message")[:2000])
    fig = go.Figure()
    for kind, name, colour, symbol in (
        (IncidentEvent.Kind.ALERT_FIRING, "firing", SEVERITY_COLOURS.get(incident.severity, "#b02a37"), "triangle-up"),
        (IncidentEvent.Kind.ALERT_RESOLVED, "resolved", "#198754", "circle"),
    ):
        picked = [r for r in rows if r[1] == kind]
        fig.add_scatter(
            name=name,
            x=[r[0].isoformat() for r in picked],
            y=list(range(1, len(picked) + 1)),
            mode="lines+markers",
            line={"shape": "hv", "color": colour},
            marker={"symbol": symbol, "size": 9, "color": colour},
            text=[r[2] for r in picked],
            hovertemplate="%{text}<br>%{x}<extra></extra>",
        )
    fig.update_layout(base_layout(height=220), yaxis={"title": "alerts (cumulative)", "rangemode": "tozero"})
    return fig


def _minutes(delta) -> float:
    return delta.total_seconds() / 60


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    """(median, p90) of `values`, or (None, None) when empty."""
    if not values:
        return None, None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0], ordered[0]
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    return statistics.median(ordered), deciles[8]


def response_times(incidents: list[tuple], key_index: int | None) -> dict[str, dict[str, tuple]]:
    """{group: {"mtta": (median, p90), "mttr": (median, p90), "n": count}}.

    Rows are (created_at, acknowledged_at, resolved_at, service, severity); grouped by
    the column `key_index`, or all together under "all" when it is None.
    """
    groups: dict[str, dict[str, list[float]]] = {}
    for row in incidents:
        created, acked, resolved = row[0], row[1], row[2]
        key = "all" if key_index is None else (row[key_index] or "(none)")
        bucket = groups.setdefault(key, {"mtta": [], "mttr": []})
        if acked:
            bucket["mtta"].append(_minutes(acked - created))
        if resolved:
            bucket["mttr"].append(_minutes(resolved - created))
    return {
        group: {"mtta": _percentiles(v["mtta"]), "mttr": _percentiles(v["mttr"]), "n": len(v["mttr"])}
        for group, v in groups.items()
    }


def response_time_bars(stats: dict[str, dict[str, tuple]], title: str) -> go.Figure:
    """Grouped bars: MTTA and MTTR, median and p90, per group."""
    groups = sorted(stats)
    fig = go.Figure()
    for metric, colour in (("mtta", "#0a58ca"), ("mttr", "#6f42c1")):
        for index, (label, opacity) in enumerate((("median", 1.0), ("p90", 0.45))):
            fig.add_bar(
                name=f"{metric.upper()} {label}",
                x=groups,
                y=[stats[g][metric][index] for g in groups],
                marker={"color": colour, "opacity": opacity},
                hovertemplate="%{x}: %{y:.1f} min<extra>" + f"{metric.upper()} {label}</extra>",
            )
    fig.update_layout(
        base_layout(height=300), barmode="group", yaxis={"title": "minutes"}, title={"text": title, "x": 0}
    )
    return fig


def response_time_trend(incidents: list[tuple], days: int) -> go.Figure:
    """MTTA and MTTR (median and p90) per day (or per week for long periods)."""
    step = 7 if days > 45 else 1
    buckets: dict[datetime.date, list[tuple]] = {}
    for row in incidents:
        day = row[0].date()
        if step == 7:
            day -= datetime.timedelta(days=day.weekday())
        buckets.setdefault(day, []).append(row)
    dates = sorted(buckets)
    fig = go.Figure()
    for metric, colour in (("mtta", "#0a58ca"), ("mttr", "#6f42c1")):
        per_day = [response_times(buckets[d], None)["all"] for d in dates]
        for index, (label, dash) in enumerate((("median", "solid"), ("p90", "dot"))):
            fig.add_scatter(
                name=f"{metric.upper()} {label}",
                x=[d.isoformat() for d in dates],
                y=[stat[metric][index] for stat in per_day],
                mode="lines+markers",
                line={"color": colour, "dash": dash},
                connectgaps=True,
            )
    fig.update_layout(
        base_layout(height=300), yaxis={"title": "minutes", "rangemode": "tozero"}, xaxis={"type": "date"}
    )
    return fig


def counts_by_status_and_service(rows: list[dict]) -> go.Figure:
    """Stacked bars of incident counts per service, one colour per status."""
    services = sorted({r["service"] or "(none)" for r in rows})
    fig = go.Figure()
    for status, colour in (("triggered", "#b02a37"), ("acknowledged", "#e0a800"), ("resolved", "#198754")):
        counts = {(r["service"] or "(none)"): r["n"] for r in rows if r["status"] == status}
        fig.add_bar(name=status, x=services, y=[counts.get(s, 0) for s in services], marker_color=colour)
    fig.update_layout(base_layout(height=300), barmode="stack", yaxis={"title": "incidents"})
    return fig


def noisiest_alerts(rows: list[dict]) -> go.Figure:
    """Horizontal bars: the alerts seen most often (all occurrences, all repeats)."""
    rows = list(reversed(rows))
    fig = go.Figure()
    fig.add_bar(
        orientation="h",
        x=[r["seen"] for r in rows],
        y=[f"{r['title'][:60]} ({r['service'] or '-'})" for r in rows],
        marker_color="#d63384",
        hovertemplate="%{y}: %{x} times<extra></extra>",
    )
    fig.update_layout(
        base_layout(height=max(260, 26 * len(rows) + 60)), xaxis={"title": "times seen"}, hovermode="closest"
    )
    fig.update_layout(margin={"l": 320})
    return fig


def open_by_severity(counts: dict[str, int]) -> go.Figure:
    """Bars: open incidents per severity, most severe first."""
    order = ["critical", "error", "warning", "info"]
    fig = go.Figure()
    fig.add_bar(
        x=order,
        y=[counts.get(s, 0) for s in order],
        marker_color=[SEVERITY_COLOURS[s] for s in order],
        hovertemplate="%{x}: %{y}<extra></extra>",
    )
    fig.update_layout(
        base_layout(height=260), yaxis={"title": "open incidents", "rangemode": "tozero"}, hovermode="closest"
    )
    return fig
