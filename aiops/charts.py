"""Plotly figures for AIOps pages."""

from __future__ import annotations

import datetime
import statistics

import plotly.graph_objects as go
from django.utils import timezone

from opsportal.portal.charts import base_layout

from .models import Alert, Incident

SEVERITY_COLOURS = {"critical": "#b02a37", "error": "#dc6b2f", "warning": "#e0a800", "info": "#0a58ca"}


ACTIVITY_LIMIT = 100  # alerts drawn on an incident's activity chart (the latest by start)
RESOLVED_COLOUR = "#6c757d"


def incident_activity(incident: Incident, now: datetime.datetime | None = None) -> go.Figure:
    """Each alert's firing span: one bar from when it started firing to its resolve (or now, while firing).

    Bars are coloured by the alert's severity while it fires, grey once resolved; the latest
    `ACTIVITY_LIMIT` alerts are drawn, the earliest at the top. The time axis covers every span
    plus a margin, and never less than a couple of minutes (alerts that fired together stay readable).
    """
    now = now or timezone.now()
    total = incident.alerts.count()
    alerts = list(
        incident.alerts.order_by("-starts_at", "-id").only(
            "id", "title", "status", "severity", "labels", "starts_at", "ends_at", "last_seen_at"
        )[:ACTIVITY_LIMIT]
    )[::-1]
    names = _alert_names(alerts)
    spans = {a.pk: alert_span(a, now) for a in alerts}
    fig = go.Figure()
    for status in (Alert.Status.FIRING, Alert.Status.RESOLVED):
        picked = [a for a in alerts if a.status == status]
        firing = status == Alert.Status.FIRING
        fig.add_bar(
            name=status.label.lower(),
            orientation="h",
            y=[names[a.pk] for a in picked],
            base=[spans[a.pk][0].isoformat() for a in picked],
            x=[(spans[a.pk][1] - spans[a.pk][0]).total_seconds() * 1000 for a in picked],
            marker={
                "color": [SEVERITY_COLOURS.get(a.severity, "#b02a37") if firing else RESOLVED_COLOUR for a in picked]
            },
            customdata=[
                [
                    a.title,
                    f"{spans[a.pk][0]:%Y-%m-%d %H:%M:%S}",
                    "now" if firing else f"{spans[a.pk][1]:%Y-%m-%d %H:%M:%S}",
                ]
                for a in picked
            ],
            hovertemplate="%{customdata[0]}<br>%{customdata[1]} → %{customdata[2]}<extra>"
            + status.label.lower()
            + "</extra>",
        )
    first = min([start for start, _ in spans.values()], default=incident.created_at)
    last = max([end for _, end in spans.values()], default=incident.resolved_at or now)
    margin = max((last - first) / 20, datetime.timedelta(minutes=1))
    layout = base_layout(height=min(640, max(180, 80 + 26 * len(alerts))))
    fig.update_layout(
        layout,
        hovermode="closest",
        barmode="overlay",
        margin={**layout["margin"], "t": 36},
        xaxis={"type": "date", "range": [(first - margin).isoformat(), (last + margin).isoformat()]},
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": [names[a.pk] for a in alerts],
            "autorange": "reversed",
            "automargin": True,
        },
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
    )
    if total > len(alerts):
        fig.update_layout(title={"text": f"The latest {len(alerts)} of {total} alerts", "x": 0, "font": {"size": 12}})
    return fig


def alert_span(alert: Alert, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """(start, end) of an alert's firing: from its start to its resolve, or to `now` while it fires."""
    end = now if alert.status == Alert.Status.FIRING else alert.ends_at or alert.last_seen_at
    return alert.starts_at, max(alert.starts_at, end)


def _alert_names(alerts: list[Alert]) -> dict[int, str]:
    """A short, distinct name per alert for the chart's rows: "#id", the title when titles differ, and
    the values of the (at most two) labels that tell the alerts apart (instance, pod, ...)."""
    varying = [
        key
        for key in sorted({k for a in alerts for k in a.labels})
        if key not in ("alertname", "severity") and len({str(a.labels.get(key, "")) for a in alerts}) > 1
    ][:2]
    titles_differ = len({a.title for a in alerts}) > 1
    names = {}
    for alert in alerts:
        parts = [alert.title[:40]] if titles_differ or not varying else []
        parts += [f"{key}={str(alert.labels.get(key, ''))[:30]}" for key in varying]
        names[alert.pk] = f"#{alert.pk} " + " ".join(parts)
    return names


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


def response_time_trend(incidents: list[tuple], days: int, now: datetime.datetime | None = None) -> go.Figure:
    """MTTA and MTTR (median and p90) per day (or per week for long periods).

    The current day (or week) is unfinished: only its quickly handled incidents count yet, so its figures
    would read as a sudden drop. It is left out of the lines and drawn apart, as hollow markers named
    "so far (partial)", for the median only.
    """
    step = 7 if days > 45 else 1

    def bucket_of(moment: datetime.datetime) -> datetime.date:
        day = moment.date()
        return day - datetime.timedelta(days=day.weekday()) if step == 7 else day

    current = bucket_of(now or timezone.now())
    buckets: dict[datetime.date, list[tuple]] = {}
    for row in incidents:
        buckets.setdefault(bucket_of(row[0]), []).append(row)
    dates = sorted(d for d in buckets if d != current)
    fig = go.Figure()
    partial = response_times(buckets[current], None)["all"] if current in buckets else None
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
        if partial is not None and partial[metric][0] is not None:
            period = "this week" if step == 7 else "today"
            fig.add_scatter(
                name=f"{metric.upper()} median {period} so far (partial)",
                x=[current.isoformat()],
                y=[partial[metric][0]],
                mode="markers",
                marker={"color": colour, "symbol": "circle-open", "size": 11, "line": {"width": 2}},
                hovertemplate=f"%{{y:.1f}} min, {period} so far: only incidents handled yet<extra></extra>",
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
