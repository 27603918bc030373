"""Threshold rule pages: the list (state, matches, breaching and firing now), one rule, the form with a live preview.

Writes go through `aiops.services` (save_threshold_rule, delete_threshold_rule), which audit them.
"Firing" counts the open alerts a rule raised (their dedup keys name the rule); "breaching" counts
the series the last evaluation found over the line (firing or still within `for`). The preview
(htmx, as the selector and the threshold are typed) counts the series the selector matches now and
shows, for the first few, the current value and whether the rule would breach; it stores nothing.
"""

from __future__ import annotations

import datetime
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput, ServiceError
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.charts import figure_data
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without

from .. import metric_charts, services
from ..metric_charts import ChartSeries, Threshold
from ..metrics import promql, query
from ..models import Alert, Sample, Series, ThresholdRule, ThresholdState
from ..services.thresholds import STALE_SECONDS, alerts_raised, current_breach, firing_alert_counts
from ..threshold_forms import PreviewForm, ThresholdFilterForm, ThresholdForm
from .display import page_of

PREVIEW_ROWS = 8
CHART_SERIES = 5
CHART_HOURS = 6
CHART_POINTS = 240
BREACH_LOOKBACK_SECONDS = CHART_HOURS * 3600
SERIES_SHOWN = 100
ALERTS_SHOWN = 50
STATE_FILTERS = {
    "firing": Q(enabled=True, state=ThresholdRule.State.FIRING),
    "pending": Q(enabled=True, state=ThresholdRule.State.PENDING),
    "ok": Q(enabled=True, state=ThresholdRule.State.OK, last_error=""),
    "error": Q(enabled=True) & ~Q(last_error=""),
    "disabled": Q(enabled=False),
}


def rule_url(rule: ThresholdRule) -> str:
    return reverse("aiops:metric_threshold", args=[rule.pk])


def explorer_url(selector: str) -> str:
    return f"{reverse('aiops:metric_explorer')}?{urlencode({'q': selector})}"


def condition(comparison: str, value: float | None, for_seconds: int | None) -> str:
    """`> 30 for 60 s` (the comparison as a sign, the value as Prometheus writes it)."""
    sign = ">" if comparison == ThresholdRule.Comparison.ABOVE else "<"
    text = f"{sign} {query.format_value(value)}" if value is not None else sign
    return f"{text} for {for_seconds} s" if for_seconds else text


def rule_status(rule: ThresholdRule) -> str:
    """What the list shows: disabled, error (the selector failed at the last evaluation) or the rule's state."""
    if not rule.enabled:
        return "disabled"
    if rule.last_error:
        return "error"
    return rule.state


def match_counts(rules: Iterable[ThresholdRule]) -> dict[int, int | None]:
    """How many stored series each rule's selector matches (None: it does not parse), in one or two queries.

    The series of the rules' metric names are read once (every series when a rule names no metric)
    and matched here with the selector's own rules.
    """
    parsed: dict[int, promql.Selector | None] = {}
    for rule in rules:
        try:
            parsed[rule.pk] = promql.parse_selector(rule.selector)
        except InvalidInput:
            parsed[rule.pk] = None
    selectors = [s for s in parsed.values() if s is not None]
    if not selectors:
        return dict.fromkeys(parsed)
    names = {s.metric_name for s in selectors}
    stored = Series.objects.order_by()
    if None not in names:
        stored = stored.filter(name__in=names)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for name, labels in stored.values_list("name", "labels").iterator(chunk_size=5000):
        by_name[name].append(labels)
    counts: dict[int, int | None] = {}
    for pk, selector in parsed.items():
        if selector is None:
            counts[pk] = None
            continue
        pool = [selector.metric_name] if selector.metric_name is not None else list(by_name)
        counts[pk] = sum(1 for name in pool for labels in by_name.get(name, ()) if selector.matches(name, labels))
    return counts


def _filtered(data) -> tuple[ThresholdFilterForm, list[str], object]:
    data, problems = checked_filters(data, ThresholdFilterForm().fields, bind=ThresholdFilterForm)
    form = ThresholdFilterForm(data)
    rules = ThresholdRule.objects.order_by("name", "id")
    if form.is_valid():
        values = form.cleaned_data
        if values["state"]:
            wanted = Q()
            for state in values["state"]:
                wanted |= STATE_FILTERS[state]
            rules = rules.filter(wanted)
        if values["q"]:
            rules = rules.filter(Q(name__icontains=values["q"]) | Q(selector__icontains=values["q"]))
    return form, problems, rules


@role_required(Role.VIEWER)
def metric_thresholds(request: HttpRequest) -> HttpResponse:
    """Rules with how many series they match, how many breach now and how many alerts they have firing."""
    form, problems, rules = _filtered(request.GET)
    page = page_of(request, rules)
    rows = list(page)
    counts = match_counts(rows)
    ids = [rule.pk for rule in rows]
    breaching = dict(
        ThresholdState.objects.filter(rule_id__in=ids).order_by().values("rule_id").annotate(n=Count("id"))
        .values_list("rule_id", "n")
    )  # fmt: skip
    firing = firing_alert_counts(ids)
    for rule in rows:
        rule.matches = counts[rule.pk]
        rule.breaching = breaching.get(rule.pk, 0)
        rule.firing_alerts = firing.get(rule.pk, 0)
        rule.status = rule_status(rule)
        rule.condition = condition(rule.comparison, rule.value, rule.for_seconds)
    context = {
        "filter_form": form,
        "filter_problems": problems,
        "page": page,
        "rows": rows,
        "query": query_without(request, "page"),
    }
    return render_page_or_partial(
        request, "aiops/metric_threshold_list.html", "aiops/partials/metric_threshold_table.html", context
    )


# --- Series and their current values --------------------------------------------------------------


@dataclass
class SeriesRow:
    """A matched series with its latest sample and whether the rule breaches (would fire) on it now."""

    series: Series
    last_at: datetime.datetime | None = None
    last_value: float | None = None
    fresh: bool = False
    breaching: bool | None = None
    breached_since: datetime.datetime | None = None
    firing: bool = False

    @property
    def shown_value(self) -> str:
        return query.format_value(self.last_value) if self.last_value is not None else ""

    @property
    def explorer(self) -> str:
        return explorer_url(self.series.selector())


def with_last_samples(series: list[Series]) -> list[SeriesRow]:
    """Each series with its latest stored sample (one query)."""
    if not series:
        return []
    samples = Sample.objects.filter(series_id=OuterRef("pk")).order_by("-time")
    annotated = Series.objects.filter(pk__in=[s.pk for s in series]).annotate(
        last_at=Subquery(samples.values("time")[:1]), last_value=Subquery(samples.values("value")[:1])
    )
    latest = {s.pk: (s.last_at, s.last_value) for s in annotated}
    now = timezone.now()
    rows = []
    for one in series:
        last_at, last_value = latest.get(one.pk, (None, None))
        fresh = last_at is not None and (now - last_at).total_seconds() < STALE_SECONDS
        rows.append(SeriesRow(series=one, last_at=last_at, last_value=last_value, fresh=fresh))
    return rows


def sorted_series(series: list[Series]) -> list[Series]:
    return sorted(series, key=lambda s: (s.name, sorted(s.labels.items())))


def chart_for(series: list[Series], *, name: str, value: float | None, comparison: str) -> dict:
    """The first few series over the last hours, with the threshold as a dashed line."""
    end = timezone.now()
    start = end - datetime.timedelta(hours=CHART_HOURS)
    shown = series[:CHART_SERIES]
    points = {
        result.series_id: result.points
        for result in services.series_chart(series_ids=[s.pk for s in shown], start=start, end=end, points=CHART_POINTS)
    }
    names = metric_charts.legend_names([s.metric() for s in shown])
    lines = [
        ChartSeries(name=n, points=points.get(s.pk, []), series_id=s.pk) for s, n in zip(shown, names, strict=True)
    ]
    thresholds = [Threshold(name=name or "threshold", value=value, comparison=comparison)] if value is not None else []
    figure = metric_charts.explorer_chart(lines, start=start, end=end, thresholds=thresholds)
    figure.update_layout(height=260, margin={"l": 48, "r": 12, "t": 16, "b": 28}, showlegend=len(lines) > 1)
    figure.update_xaxes(rangeselector={"visible": False})  # the data are the last hours only
    return figure_data(figure)


# --- The preview ---------------------------------------------------------------------------------


@dataclass
class Preview:
    """What the rule as typed would watch now; `problem` is the parser's (or the store's) message."""

    selector: str = ""
    problem: str = ""
    total: int = 0
    rows: list[SeriesRow] = field(default_factory=list)
    rule: ThresholdRule | None = None
    breaching: int = 0
    chart: dict | None = None


def build_preview(*, selector: str, comparison: str | None, value: float | None, for_seconds: int | None,
                  name: str = "") -> Preview:  # fmt: skip
    """Matches and current values for a selector and threshold as typed (nothing stored)."""
    preview = Preview(selector=selector)
    if not selector:
        return preview
    try:
        parsed = promql.parse_selector(selector, field="selector")
        matched = query.select_series(parsed)
    except InvalidInput as exc:
        preview.problem = exc.message
        return preview
    matched = sorted_series(matched)
    preview.total = len(matched)
    preview.rows = with_last_samples(matched[:PREVIEW_ROWS])
    if value is not None:
        preview.rule = ThresholdRule(
            comparison=comparison or ThresholdRule.Comparison.ABOVE, value=value, for_seconds=for_seconds or 0
        )
        _mark_breaches(preview.rule, preview.rows)
        preview.breaching = sum(1 for row in preview.rows if row.breaching)
    if matched:
        preview.chart = chart_for(matched, name=name, value=value, comparison=comparison or "above")
    return preview


def _mark_breaches(rule: ThresholdRule, rows: list[SeriesRow]) -> None:
    """Whether each series breaches now and since when, as the evaluator reads it (lookback capped at hours)."""
    now = time.time()
    lookback = min(rule.for_seconds, BREACH_LOOKBACK_SECONDS) + 2 * STALE_SECONDS
    data = query.raw_points([row.series.pk for row in rows], now - lookback, now)
    for row in rows:
        times, values = data[row.series.pk]
        breach = current_breach(rule, times, values, now)
        row.breaching = breach is not None
        if breach is not None:
            since = breach[0]
            row.breached_since = datetime.datetime.fromtimestamp(since, datetime.UTC)
            row.firing = times[-1] - since >= rule.for_seconds


@role_required(Role.VIEWER)
def metric_threshold_preview(request: HttpRequest) -> HttpResponse:
    """The form's live preview (htmx GET with the form's selector, comparison, value and for)."""
    values = PreviewForm(request.GET).values()
    preview = build_preview(
        selector=values["selector"], comparison=values["comparison"], value=values["value"],
        for_seconds=values["for_seconds"], name=request.GET.get("name", "").strip()[:100],
    )  # fmt: skip
    status = 400 if preview.problem else 200
    return render(request, "aiops/partials/metric_threshold_preview.html", {"preview": preview, "oob": True},
                  status=status)  # fmt: skip


# --- One rule ------------------------------------------------------------------------------------


def rule_series(rule: ThresholdRule) -> tuple[list[SeriesRow], int, str]:
    """The series the rule matches (the first SERIES_SHOWN), with current values and the evaluator's states."""
    try:
        matched = sorted_series(query.select_series(promql.parse_selector(rule.selector)))
    except InvalidInput as exc:
        return [], 0, exc.message
    rows = with_last_samples(matched[:SERIES_SHOWN])
    states = {s.series_id: s for s in ThresholdState.objects.filter(rule=rule, series__in=[r.series for r in rows])}
    for row in rows:
        state = states.get(row.series.pk)
        row.breaching = state is not None
        if state is not None:
            row.breached_since = state.breached_since
            row.firing = state.firing
    return rows, len(matched), ""


@never_cache
@role_required(Role.VIEWER)
def metric_threshold(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(ThresholdRule, pk=pk)
    rows, total, problem = rule_series(rule)
    alerts = list(alerts_raised(rule).select_related("incident")[:ALERTS_SHOWN])
    incidents = list({a.incident_id: a.incident for a in alerts if a.incident is not None}.values())
    series = [row.series for row in rows]
    context = {
        "rule": rule,
        "status": rule_status(rule),
        "condition": condition(rule.comparison, rule.value, rule.for_seconds),
        "rows": rows,
        "total": total,
        "problem": problem,
        "series_shown": SERIES_SHOWN,
        "breaching": rule.states.count(),
        "firing": alerts_raised(rule).filter(status=Alert.Status.FIRING).count(),
        "alerts": alerts,
        "alerts_shown": ALERTS_SHOWN,
        "incidents": incidents,
        "explorer_url": explorer_url(rule.selector),
        "chart": chart_for(series, name=rule.name, value=rule.value, comparison=rule.comparison) if series else None,
    }
    return render(request, "aiops/metric_threshold_detail.html", context)


RULE_ACTIONS = {
    "enable": PageAction(
        run=lambda request, rule, data: services.save_threshold_rule(rule=rule, enabled=True, actor=request.user),
        success=lambda rule, result, data: f"{rule.name} enabled: evaluated again from the next run.",
    ),
    "disable": PageAction(
        run=lambda request, rule, data: services.save_threshold_rule(rule=rule, enabled=False, actor=request.user),
        success=lambda rule, result, data: f"{rule.name} disabled: not evaluated; what it fired is resolved.",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def metric_threshold_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """enable / disable (delete has its own confirmation page)."""
    rule = get_object_or_404(ThresholdRule, pk=pk)
    return dispatch(request, RULE_ACTIONS, action, rule, default_next=rule_url(rule))


@never_cache
@role_required(Role.OPERATOR)
def metric_threshold_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what deleting does (the alerts firing now resolve); POST: delete."""
    rule = get_object_or_404(ThresholdRule, pk=pk)
    if request.method == "POST":
        name = rule.name
        services.delete_threshold_rule(rule=rule, actor=request.user)
        messages.success(request, f"Threshold rule {name} deleted; the alerts it had firing are resolved.")
        return redirect("aiops:metric_thresholds")
    firing = alerts_raised(rule).filter(status="firing").count()
    return render(request, "aiops/metric_threshold_delete.html", {"rule": rule, "firing": firing})


@never_cache
@role_required(Role.OPERATOR)
def metric_threshold_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; the preview beside the form follows what is typed."""
    rule = get_object_or_404(ThresholdRule, pk=pk) if pk else None
    initial = ThresholdForm.initial_for(rule) if rule else {}
    form = ThresholdForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_threshold_rule(actor=request.user, rule=rule, **form.service_values())
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Threshold rule {saved.name} saved.")
            return redirect(rule_url(saved))
    if form.is_bound and form.errors:
        status = 400
    values = PreviewForm(form.data if form.is_bound else {**ThresholdForm.defaults(), **initial}).values()
    preview = build_preview(
        selector=values["selector"], comparison=values["comparison"], value=values["value"],
        for_seconds=values["for_seconds"], name=str(form["name"].value() or ""),
    )  # fmt: skip
    return render(request, "aiops/metric_threshold_form.html", {"form": form, "rule": rule, "preview": preview},
                  status=status)  # fmt: skip
