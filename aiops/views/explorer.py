"""The metric explorer: pick stored series by label, overlay them on a zoomable chart, share the view by URL.

The URL holds the view: repeated `series=<id>`, `q=<selector>`, `range=1h|6h|24h|7d|30d` and/or
`start`/`end` (RFC 3339 or unix seconds), `fn=<range function>` (or `value`; left out, counters
are shown as rates), `incident=<id>` (its start and end marked). A series an anomaly monitor scores,
shown as its values, gets the monitor's expected band and its anomalies shaded (`anomaly_layers`).
A bad parameter is named on the page (400), never a 500 or a silently empty chart. Zooming reloads the
data at the new window's resolution from `metric_explorer_data` (JSON);
the picker's partial is `metric_explorer_picker`.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput
from opsportal.portal.charts import figure_data

from .. import anomaly, metric_charts, services
from ..metric_charts import Band, ChartSeries, Marker, Threshold
from ..metrics import promql, query
from ..models import Incident, Sample, Series, ThresholdRule
from ..services import anomalies as live

RANGES = {
    "1h": datetime.timedelta(hours=1),
    "6h": datetime.timedelta(hours=6),
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
}
DEFAULT_RANGE = "1h"
MAX_SPAN = datetime.timedelta(days=400)
OVERLAY_LIMIT = 20
LISTED_LIMIT = 50
FILTER_LIMIT = 8
RULES_CHECKED = 200
DEFAULT_POINTS = 600
MIN_POINTS, MAX_POINTS = 20, 2000
VALUES = "value"  # fn=value: the stored values, counters too
INCIDENT_BEFORE = datetime.timedelta(hours=1)
INCIDENT_AFTER = datetime.timedelta(minutes=15)
UTC = datetime.UTC


@dataclass
class View:
    """What the URL asks to see; `problems` names each parameter that could not be used."""

    series_ids: list[int] = field(default_factory=list)
    selector: str = ""
    range_name: str = ""
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    function: str = ""
    incident: Incident | None = None
    points: int = DEFAULT_POINTS
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def custom(self) -> bool:
        return not self.range_name


def is_counter(series: Series) -> bool:
    """A counter by what its source said or, when it said nothing, by Prometheus's `_total` naming."""
    return series.kind == "counter" or (not series.kind and series.name.endswith("_total"))


def _time(text: str, name: str) -> datetime.datetime:
    stamp = query.parse_time(text, field=name)
    try:
        return datetime.datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(f"{text!r} is out of range.", field=name) from None


def read_view(params: QueryDict) -> View:
    """The view the parameters describe; each bad one becomes a problem naming it, the rest is still read."""
    view = View()
    for raw in params.getlist("series"):
        text = raw.strip()
        if text.isdigit() and int(text) < 2**63:
            view.series_ids.append(int(text))
        elif text:
            view.problems.append(str(InvalidInput(f"{text[:40]!r} is not a series id.", field="series")))
    view.series_ids = list(dict.fromkeys(view.series_ids))
    view.selector = params.get("q", "").strip()
    if view.selector:
        try:
            promql.parse_selector(view.selector, field="q")
        except InvalidInput as exc:
            view.problems.append(str(exc))
    function = params.get("fn", "").strip()
    if function and function != VALUES and function not in promql.RANGE_FUNCTIONS:
        choices = ", ".join((VALUES, *promql.RANGE_FUNCTIONS))
        view.problems.append(str(InvalidInput(f"{function[:40]!r} is not one of {choices}.", field="fn")))
    else:
        view.function = function
    points = params.get("points", "")
    if points:
        if points.isdigit() and MIN_POINTS <= int(points) <= MAX_POINTS:
            view.points = int(points)
        else:
            message = f"must be a whole number from {MIN_POINTS} to {MAX_POINTS}."
            view.problems.append(str(InvalidInput(message, field="points")))
    incident = params.get("incident", "").strip()
    if incident:
        view.incident = Incident.objects.filter(pk=int(incident)).first() if incident.isdigit() else None
        if view.incident is None:
            view.problems.append(str(InvalidInput(f"no incident {incident[:40]!r}.", field="incident")))
    _read_window(view, params)
    return view


def _read_window(view: View, params: QueryDict) -> None:
    range_name = params.get("range", "").strip()
    if range_name and range_name not in RANGES:
        view.problems.append(
            str(InvalidInput(f"{range_name[:20]!r} is not one of {', '.join(RANGES)}.", field="range"))
        )
        range_name = ""
    start = end = None
    try:
        if params.get("start"):
            start = _time(params["start"], "start")
        if params.get("end"):
            end = _time(params["end"], "end")
    except InvalidInput as exc:
        view.problems.append(str(exc))
        start = end = None
    now = timezone.now()
    if start is None and end is None and not range_name and view.incident is not None:
        # Around the incident: from an hour before it opened to a little after it resolved (or now).
        start = view.incident.created_at - INCIDENT_BEFORE
        end = min(now, view.incident.resolved_at + INCIDENT_AFTER) if view.incident.resolved_at else now
    if start is None and end is None:
        range_name = range_name or DEFAULT_RANGE
    span = RANGES.get(range_name, RANGES[DEFAULT_RANGE])
    end = end or (start + span if start is not None and params.get("range") else now)
    start = start or end - span
    if end <= start:
        view.problems.append(str(InvalidInput("must be after start.", field="end")))
        start, end = end - span, end
    elif end - start > MAX_SPAN:
        view.problems.append(str(InvalidInput(f"the window is longer than {MAX_SPAN.days} days.", field="start")))
        start = end - MAX_SPAN
    view.range_name = range_name if not (params.get("start") or params.get("end")) and range_name else ""
    view.start, view.end = start, end


def chosen_series(view: View) -> list[Series]:
    """The series to chart: the ids asked for or, without ids, the first `OVERLAY_LIMIT` the selector matches."""
    if view.series_ids:
        ids = view.series_ids
        if len(ids) > OVERLAY_LIMIT:
            view.notes.append(
                f"At most {OVERLAY_LIMIT} series are overlaid: showing the first {OVERLAY_LIMIT} of {len(ids)}."
            )
            ids = ids[:OVERLAY_LIMIT]
        found = {s.pk: s for s in Series.objects.filter(pk__in=ids)}
        missing = [str(pk) for pk in ids if pk not in found]
        if missing:
            view.problems.append(str(InvalidInput(f"no stored series with id {', '.join(missing)}.", field="series")))
        return [found[pk] for pk in ids if pk in found]
    if view.selector and not any(p.startswith("q:") for p in view.problems):
        try:
            matched = services.find_series(selector=view.selector, limit=query.MAX_SERIES)
        except InvalidInput as exc:
            view.problems.append(str(InvalidInput(exc.message, field="q")))
            return []
        if not matched:
            view.problems.append(str(InvalidInput("no stored series matches this selector.", field="q")))
        elif len(matched) > OVERLAY_LIMIT:
            view.notes.append(
                f"The selector matches {len(matched)} series; at most {OVERLAY_LIMIT} are overlaid: showing the first "
                f"{OVERLAY_LIMIT}. Tick the ones to compare, or narrow the selector."
            )
        return matched[:OVERLAY_LIMIT]
    return []


@dataclass
class Drawn:
    """The chart's lines and what each one shows (the function applied, its query for the API)."""

    lines: list[ChartSeries]
    functions: dict[int, str | None]
    window_seconds: float
    step_seconds: float
    overlays: dict[int, live.SeriesOverlay] = field(default_factory=dict)


def draw(view: View, series: list[Series]) -> Drawn:
    """Each series' points at about `view.points` per line: counters as rates unless a function is chosen."""
    span = max(1.0, (view.end - view.start).total_seconds())
    step = max(1.0, math.ceil(span / view.points))
    window = max(query.LOOKBACK_SECONDS, 4 * step)
    functions: dict[int, str | None] = {}
    for one in series:
        if view.function == VALUES:
            functions[one.pk] = None
        elif view.function:
            functions[one.pk] = view.function
        else:
            functions[one.pk] = "rate" if is_counter(one) else None
    points: dict[int, list[tuple[float, float]]] = {}
    for function in dict.fromkeys(functions.values()):
        ids = [pk for pk, f in functions.items() if f == function]
        for result in services.series_chart(
            series_ids=ids, start=view.start, end=view.end, function=function, range_seconds=window,
            points=view.points,
        ):  # fmt: skip
            points[result.series_id] = result.points
    names = metric_charts.legend_names([s.metric() for s in series])
    lines = []
    for one, name in zip(series, names, strict=True):
        function = functions[one.pk]
        shown = f"{function}({name}[{_duration(window)}])" if function else name
        lines.append(ChartSeries(name=shown, points=points.get(one.pk, []), series_id=one.pk, hover=shown))
    return Drawn(lines=lines, functions=functions, window_seconds=window, step_seconds=step)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def thresholds_for(series: list[Series], functions: dict[int, str | None]) -> list[Threshold]:
    """The enabled threshold rules whose selector matches a series shown as its values (not as a rate)."""
    valued = [s for s in series if functions.get(s.pk) is None]
    if not valued:
        return []
    found: dict[str, Threshold] = {}
    for rule in ThresholdRule.objects.filter(enabled=True).order_by("name")[:RULES_CHECKED]:
        try:
            selector = promql.parse_selector(rule.selector)
        except InvalidInput:
            continue
        if any(selector.matches(s.name, s.labels) for s in valued):
            found[rule.name] = Threshold(name=rule.name, value=rule.value, comparison=rule.comparison)
    return list(found.values())


def markers_for(incident: Incident | None) -> list[Marker]:
    if incident is None:
        return []
    marks = [Marker(at=incident.created_at, text=f"incident #{incident.pk} opened")]
    if incident.resolved_at:
        marks.append(Marker(at=incident.resolved_at, text=f"#{incident.pk} resolved"))
    return marks


def _plain(values) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def anomaly_layers(view: View, series: list[Series], drawn: Drawn) -> tuple[list[Band], list[dict], list[dict]]:
    """For each series shown as its values that an anomaly monitor scores: the expected band over the window
    (the detector's local model at the chart's step, see aiops.services.anomalies.chart_band), a shaded
    rectangle per anomaly in the window, and a marker at each anomaly's peak whose hover tells its score and
    expected range. Fills `drawn.overlays`."""
    valued = [s for s in series if drawn.functions.get(s.pk) is None]
    if not valued:
        return [], [], []
    drawn.overlays = services.series_overlays(series_ids=[s.pk for s in valued], start=view.start, end=view.end)
    bands: list[Band] = []
    shapes: list[dict] = []
    peaks: list[dict] = []
    step = drawn.step_seconds
    half = datetime.timedelta(seconds=max(step / 2, 1))
    for one in valued:
        overlay = drawn.overlays.get(one.pk)
        if overlay is None:
            continue
        try:
            detector = anomaly.get_detector(overlay.monitor.detector)
        except KeyError:
            continue
        warm = int(getattr(detector.params, "warmup", 288))
        start, end = view.start.timestamp(), view.end.timestamp()
        (result,) = query.evaluate_series([one], start=start - warm * step, end=end, step=step,
                                          range_seconds=drawn.window_seconds)  # fmt: skip
        times = np.array([at for at, _ in result.points], dtype=float)
        values = np.array([value for _, value in result.points], dtype=float)
        low, high = live.chart_band(times, values, threshold=overlay.threshold, detector=detector)
        shown = times >= start
        if shown.any():
            bands.append(Band(name=f"expected band ({overlay.monitor.name})", times=list(times[shown]),
                              lower=_plain(low[shown]), upper=_plain(high[shown])))  # fmt: skip
        for found in overlay.anomalies:
            until = found.ended_at or found.last_above_at
            shown_value = query.format_value(float(f"{found.value:.6g}"))
            text = (f"anomaly ({overlay.monitor.name}): score {found.peak_score:.2f}, {shown_value}, "
                    f"expected {live.band_text(found.expected_low, found.expected_high)}"
                    f"{' (not interesting)' if found.not_interesting else ''}")  # fmt: skip
            shapes.append(
                {"type": "rect", "xref": "x", "yref": "paper", "x0": (found.started_at - half).isoformat(),
                 "x1": (max(until, found.last_above_at) + half).isoformat(), "y0": 0, "y1": 1, "layer": "below",
                 "fillcolor": ANOMALY_NOT_INTERESTING if found.not_interesting else ANOMALY_FILL,
                 "line": {"width": 0}, "name": text}
            )  # fmt: skip
            peaks.append({"at": found.peak_at.isoformat(), "value": found.value, "text": text})
    return bands, shapes, peaks


ANOMALY_FILL = "rgba(220, 53, 69, 0.22)"
ANOMALY_NOT_INTERESTING = "rgba(108, 117, 125, 0.18)"


def figure_for(view: View, series: list[Series]) -> tuple[dict, Drawn]:
    drawn = draw(view, series)
    rate_only = set(drawn.functions.values()) == {"rate"}
    bands, shapes, peaks = anomaly_layers(view, series, drawn)
    figure = metric_charts.explorer_chart(
        drawn.lines,
        start=view.start,
        end=view.end,
        y_title="per second" if rate_only else "",
        thresholds=thresholds_for(series, drawn.functions),
        markers=markers_for(view.incident),
        bands=bands,
        shapes=shapes,
    )
    if peaks:
        figure.add_scatter(
            name="anomalies", x=[p["at"] for p in peaks], y=[p["value"] for p in peaks], mode="markers",
            marker={"color": "#dc3545", "size": 9, "symbol": "circle-open", "line": {"width": 2}},
            text=[p["text"] for p in peaks], hovertemplate="%{text}<extra></extra>",
        )  # fmt: skip
    return figure_data(figure), drawn


def series_details(series: list[Series], drawn: Drawn, view: View) -> list[dict]:
    """Labels, kind, first and last stored sample, last value and the query API URL of each charted series."""
    samples = Sample.objects.filter(series_id=OuterRef("pk"))
    annotated = Series.objects.filter(pk__in=[s.pk for s in series]).annotate(
        first_at=Subquery(samples.order_by("time").values("time")[:1]),
        last_at=Subquery(samples.order_by("-time").values("time")[:1]),
        last_value=Subquery(samples.order_by("-time").values("value")[:1]),
    )
    by_id = {s.pk: s for s in annotated}
    api = reverse("api:aiops:metrics-query-range")
    rows = []
    for one, line in zip(series, drawn.lines, strict=True):
        stored = by_id.get(one.pk, one)
        function = drawn.functions[one.pk]
        selector = one.selector()
        text = f"{function}({selector}[{_duration(drawn.window_seconds)}])" if function else selector
        params = {"query": text, "start": int(view.start.timestamp()), "end": int(view.end.timestamp()),
                  "step": int(drawn.step_seconds)}  # fmt: skip
        last_value = getattr(stored, "last_value", None)
        rows.append(
            {
                "series": one,
                "legend": line.name,
                "counter": is_counter(one),
                "function": function,
                "selector": selector,
                "first_at": getattr(stored, "first_at", None),
                "last_at": getattr(stored, "last_at", None),
                "last_value": query.format_value(last_value) if last_value is not None else "",
                "query_url": f"{api}?{urlencode(params)}",
                "empty": not any(math.isfinite(v) for _, v in line.points),
                "anomaly": drawn.overlays.get(one.pk),
            }
        )
    return rows


# --- The picker ---------------------------------------------------------------------------------


@dataclass
class Picker:
    """The picker's state: a metric, label filters (label → value; "" is a filter being added) and the matches."""

    selector: str = ""
    metric: str = ""
    metrics: list[str] = field(default_factory=list)
    filters: list[dict] = field(default_factory=list)
    addable: list[str] = field(default_factory=list)
    matched: list[Series] = field(default_factory=list)
    total: int = 0
    complex: bool = False
    problem: str = ""
    checked: set[int] = field(default_factory=set)
    kept: list[Series] = field(default_factory=list)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def compose(metric: str, filters: list[tuple[str, str]]) -> str:
    """The selector the picker's choices make: metric{label="value",...}."""
    inner = ",".join(f"{label}={_quoted(value)}" for label, value in filters if value)
    if not metric:
        return f"{{{inner}}}" if inner else ""
    return f"{metric}{{{inner}}}" if inner else metric


def build_picker(*, selector: str, metric: str = "", filters: list[tuple[str, str]] | None = None,
                 from_labels: bool = False, checked: set[int] | None = None) -> Picker:  # fmt: skip
    """The picker for a selector typed in the box, or for the metric and label filters chosen in the selects.

    One query for the metric names and one for the series of the chosen metric; the values each
    filter offers are those of the series the other filters leave (narrowed by what is chosen).
    """
    picker = Picker(metrics=services.label_values(label="__name__"), checked=checked or set())
    pending = ""
    if from_labels:
        chosen = [(label, value) for label, value in (filters or []) if label]
        pending = next((label for label, value in chosen if not value), "")
        selector = compose(metric, chosen)
        picker.metric = metric
    parsed = None
    if selector:
        try:
            parsed = promql.parse_selector(selector, field="q")
        except InvalidInput as exc:
            picker.problem = str(exc)
    picker.selector = selector
    if parsed is None:
        _keep_ticked(picker)
        return picker
    picker.metric = parsed.metric_name or ""
    equal = [m for m in parsed.matchers if m.op == "=" and m.label != "__name__"]
    picker.complex = any(m.op != "=" for m in parsed.matchers)
    try:
        base_selector = picker.metric or selector
        base = services.find_series(selector=base_selector, limit=query.MAX_SERIES)
    except InvalidInput as exc:
        picker.problem = str(InvalidInput(exc.message, field="q"))
        _keep_ticked(picker)
        return picker
    matched = [s for s in base if parsed.matches(s.name, s.labels)]
    picker.total = len(matched)
    picker.matched = matched[:LISTED_LIMIT]
    for matcher in equal[:FILTER_LIMIT]:
        others = promql.Selector(tuple(m for m in parsed.matchers if m is not matcher))
        values = sorted({s.labels.get(matcher.label, "") for s in base if others.matches(s.name, s.labels)} - {""})
        picker.filters.append({"label": matcher.label, "value": matcher.value, "values": values})
    if pending and len(picker.filters) < FILTER_LIMIT:
        values = sorted({s.labels.get(pending, "") for s in matched} - {""})
        picker.filters.append({"label": pending, "value": "", "values": values})
    chosen_labels = {f["label"] for f in picker.filters}
    if picker.metric and len(picker.filters) < FILTER_LIMIT:
        picker.addable = sorted({label for s in matched for label in s.labels} - chosen_labels)
    _keep_ticked(picker)
    return picker


def _keep_ticked(picker: Picker) -> None:
    """Series ticked under another selector stay ticked (to overlay series of several metrics)."""
    listed = {s.pk for s in picker.matched}
    others = sorted(picker.checked - listed)[:OVERLAY_LIMIT]
    picker.kept = list(Series.objects.filter(pk__in=others).order_by("name", "id")) if others else []
    for one in (*picker.matched, *picker.kept):
        one.counter = is_counter(one)


def _picker_of(params: QueryDict, *, selector: str, series: list[Series] | None = None,
               checked: set[int] | None = None) -> Picker:  # fmt: skip
    if params.get("from") == "labels":
        labels = params.getlist("label")
        values = params.getlist("value")
        filters = list(zip(labels, values + [""] * (len(labels) - len(values)), strict=False))
        if params.get("add"):
            filters.append((params["add"], ""))
        return build_picker(selector="", metric=params.get("metric", ""), filters=filters, from_labels=True,
                            checked=checked)  # fmt: skip
    if not selector and series:
        # Opened on series ids alone (a threshold alert's link): the picker starts at their metric.
        selector = series[0].name
    return build_picker(selector=selector, checked=checked)


@role_required(Role.VIEWER)
def metric_explorer_picker(request: HttpRequest) -> HttpResponse:
    """The picker's partial: the metric, label filters narrowed by what is chosen, and the matching series."""
    checked = {int(v) for v in request.GET.getlist("series") if v.isdigit() and int(v) < 2**63}
    picker = _picker_of(request.GET, selector=request.GET.get("q", "").strip(), checked=checked)
    return render(request, "aiops/partials/metric_picker.html", {"picker": picker, "overlay_limit": OVERLAY_LIMIT,
                                                                   "listed_limit": LISTED_LIMIT})  # fmt: skip


# --- Pages --------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def metric_explorer(request: HttpRequest) -> HttpResponse:
    view = read_view(request.GET)
    series = chosen_series(view)
    context = {
        "view": view,
        "series": series,
        "ranges": list(RANGES),
        "functions": promql.RANGE_FUNCTIONS,
        "overlay_limit": OVERLAY_LIMIT,
        "listed_limit": LISTED_LIMIT,
        "picker": _picker_of(request.GET, selector=view.selector, series=series, checked=set(view.series_ids)),
        "data_url": reverse("aiops:metric_explorer_data"),
        "chart": None,
    }
    if series and not view.problems:
        chart, drawn = figure_for(view, series)
        details = series_details(series, drawn, view)
        context.update(chart=chart, details=details, empty=all(row["empty"] for row in details),
                       counters=any(row["counter"] for row in details))  # fmt: skip
    return render(request, "aiops/metric_explorer.html", context, status=400 if view.problems else 200)


@role_required(Role.VIEWER)
def metric_explorer_data(request: HttpRequest) -> JsonResponse:
    """The chart's figure for another window (a zoom or a range button), at about `points` points per line."""
    view = read_view(request.GET)
    series = chosen_series(view) if not view.problems else []
    if not view.problems and not series:
        view.problems.append(str(InvalidInput("choose series (series=<id>) or a selector (q=).", field="series")))
    if view.problems:
        return JsonResponse({"error": " ".join(view.problems), "problems": view.problems}, status=400)
    chart, drawn = figure_for(view, series)
    return JsonResponse(
        {
            "figure": chart,
            "start": view.start.isoformat(),
            "end": view.end.isoformat(),
            "step_seconds": drawn.step_seconds,
            "points": view.points,
            "empty": not any(math.isfinite(v) for line in drawn.lines for _, v in line.points),
            "notes": view.notes,
        }
    )


def explorer_link(*, series_ids: list[int], incident: Incident | None = None) -> str:
    """The explorer on these series, around the incident when one is given (its marks on the chart)."""
    params: list[tuple[str, str | int]] = [("series", pk) for pk in series_ids[:OVERLAY_LIMIT]]
    if incident is not None:
        params.append(("incident", incident.pk))
    return f"{reverse('aiops:metric_explorer')}?{urlencode(params)}"
