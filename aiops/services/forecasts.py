"""Capacity forecasts: save and delete them, fit each matched series (aiops.forecasting), alert on the soon-full.

`compute_forecast` reads each usage series' history as averages at the fit's step (5-minute rollups,
then raw samples after the rollup checkpoint, through aiops.metrics.query), pairs it with its
limit, fits, stores one `CapacityForecastResult` per series and raises a warning through
`raise_alert` (dedup key `forecast:<forecast id>:<series id>`) while the earliest full time (the
interval's upper line reaching the limit) falls inside the horizon; the alert resolves when it no
longer does, when the series cannot be forecast any more or stops reporting, and when the forecast
is disabled or deleted. `update_due_forecasts` (the periodic task) refits each forecast every
`REFRESH_SECONDS`; saving one fits it at once in a worker.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from opsportal import enqueue
from opsportal.audit import services as audit
from opsportal.errors import InvalidInput

from .. import forecasting
from ..metrics import promql, query
from ..models import SEVERITY_RANK, CapacityForecast, CapacityForecastResult, Rollup5m, Sample, Series
from .actor import Actor
from .alerts import raise_alert
from .metric_fields import LABEL_NAME, apply_values, ensure_unique, record_change, valid_name
from .metrics import series_url

logger = logging.getLogger(__name__)

ALERT_SOURCE = "metrics"
TASK = "aiops.tasks.collect_forecast"
REFRESH_SECONDS = 3600
FIT_DAYS = 90
STALE_SECONDS = 86400
LIMIT_LOOKBACK_SECONDS = 86400
MAX_HORIZON_DAYS = 365
MAX_SERIES = 200
HISTORY_SHOWN_DAYS = 30
FORECAST_FIELDS = (
    "name", "usage_selector", "limit_kind", "limit_value", "limit_selector", "match_labels", "horizon_days",
    "severity", "service", "description", "enabled",
)  # fmt: skip
RESULT_FIELDS = (
    "limit_series", "limit", "last_value", "last_at", "full_at", "full_at_earliest", "full_at_latest", "mase", "model",
    "step_seconds", "points", "lookahead_days", "curve", "fitted_at", "error",
)  # fmt: skip
UTC = datetime.UTC
DASH = "\u2013"


# --- Saving ------------------------------------------------------------------------------------------------


@transaction.atomic
def save_capacity_forecast(
    *,
    actor: Actor,
    forecast: CapacityForecast | None = None,
    name: str | None = None,
    usage_selector: str | None = None,
    limit_kind: str | None = None,
    limit_value: float | None = None,
    limit_selector: str | None = None,
    match_labels: list[str] | None = None,
    horizon_days: int | None = None,
    severity: str | None = None,
    service: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> CapacityForecast:
    """Create or update a capacity forecast; it is fitted at once by a worker (and hourly after that).

    The limit: `limit_kind` "constant" with `limit_value`, "series" with `limit_selector` (each
    usage series is paired with the limit series that has the same values of `match_labels`, or of
    every label the two share when it is empty), or "percentage" (100).
    """
    created = forecast is None
    forecast = forecast or CapacityForecast()
    before = {} if created else audit.snapshot(forecast, FORECAST_FIELDS)
    was_enabled = forecast.enabled
    apply_values(
        forecast,
        {"name": name, "usage_selector": usage_selector, "limit_kind": limit_kind, "limit_selector": limit_selector,
         "severity": severity, "service": service, "description": description, "enabled": enabled},
    )  # fmt: skip
    forecast.name = valid_name(forecast.name)
    if not forecast.usage_selector:
        raise InvalidInput(
            'required (a selector of the usage gauge, e.g. node_filesystem_used_bytes{mountpoint="/"}).',
            field="usage_selector",
        )
    promql.parse_selector(forecast.usage_selector, field="usage_selector")
    if forecast.limit_kind not in CapacityForecast.LimitKind.values:
        raise InvalidInput(f"must be one of {', '.join(CapacityForecast.LimitKind.values)}.", field="limit_kind")
    if limit_value is not None:
        if isinstance(limit_value, bool) or not isinstance(limit_value, int | float) or not math.isfinite(limit_value):
            raise InvalidInput("must be a finite number.", field="limit_value")
        forecast.limit_value = float(limit_value)
    if match_labels is not None:
        forecast.match_labels = _valid_labels(match_labels)
    _check_limit(forecast)
    if horizon_days is not None:
        if (
            isinstance(horizon_days, bool)
            or not isinstance(horizon_days, int | float)
            or int(horizon_days) != horizon_days
        ):
            raise InvalidInput("must be a whole number of days.", field="horizon_days")
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise InvalidInput(f"must be between 1 and {MAX_HORIZON_DAYS} days.", field="horizon_days")
        forecast.horizon_days = int(horizon_days)
    if forecast.severity not in SEVERITY_RANK:
        raise InvalidInput(f"must be one of {', '.join(SEVERITY_RANK)}.", field="severity")
    if len(forecast.service) > 200:
        raise InvalidInput("at most 200 characters.", field="service")
    ensure_unique(CapacityForecast, forecast.name, forecast.pk)
    forecast.next_run_at = timezone.now()
    if not forecast.enabled:
        forecast.state = CapacityForecast.State.PENDING
    forecast.save()
    if was_enabled and not forecast.enabled:
        _resolve_all(forecast)
    record_change(forecast, actor, created, before, FORECAST_FIELDS, None)
    if forecast.enabled:
        enqueue.enqueue_on_commit(TASK, forecast.pk)
    return forecast


def _valid_labels(value: object) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.replace(",", " ").split()]
    if not isinstance(value, list | tuple):
        raise InvalidInput("must be a list of label names.", field="match_labels")
    labels = []
    for item in value:
        if not isinstance(item, str) or not LABEL_NAME.fullmatch(item) or item.startswith("__"):
            raise InvalidInput(f"{str(item)[:40]!r} is not a label name.", field="match_labels")
        if item not in labels:
            labels.append(item)
    return labels


def _check_limit(forecast: CapacityForecast) -> None:
    kind = forecast.limit_kind
    if kind == CapacityForecast.LimitKind.CONSTANT:
        if forecast.limit_value is None:
            raise InvalidInput("required for a constant limit.", field="limit_value")
        if forecast.limit_value <= 0:
            raise InvalidInput("must be above 0.", field="limit_value")
        forecast.limit_selector = ""
        forecast.match_labels = []
    elif kind == CapacityForecast.LimitKind.SERIES:
        if not forecast.limit_selector:
            raise InvalidInput("required for a limit series (e.g. node_filesystem_size_bytes).", field="limit_selector")
        promql.parse_selector(forecast.limit_selector, field="limit_selector")
        forecast.limit_value = None
    else:
        forecast.limit_value = None
        forecast.limit_selector = ""
        forecast.match_labels = []


@transaction.atomic
def delete_capacity_forecast(*, forecast: CapacityForecast, actor: Actor) -> None:
    """Delete the forecast; the alerts it raised are resolved."""
    _resolve_all(forecast)
    audit.record(action=audit.Action.DELETE, actor=actor, obj=forecast, changes={"name": [forecast.name, None]})
    forecast.delete()


def run_forecast_now(*, forecast: CapacityForecast, actor: Actor) -> CapacityForecast:
    """Fit the forecast now, in the request (what the page's Recompute does); the results are stored."""
    compute_forecast(forecast_id=forecast.pk)
    forecast.refresh_from_db()
    return forecast


# --- Alerts --------------------------------------------------------------------------------------------------


def _dedup_key(forecast: CapacityForecast, series_id: int) -> str:
    return f"forecast:{forecast.pk}:{series_id}"


def forecast_url(forecast: CapacityForecast, series_id: int | None = None) -> str:
    """The forecast's page (absolute), on one series when given; the series' page if the pages are not installed."""
    try:
        path = reverse("aiops:metric_forecast", args=[forecast.pk])
    except NoReverseMatch:
        path = f"{reverse('api:aiops:forecast-detail', args=[forecast.pk])}"
    if series_id is not None and "/api/" not in path:
        path = f"{path}?series={series_id}"
    return f"{settings.OPSPORTAL_BASE_URL}{path}"


def full_text(result: CapacityForecastResult, now: datetime.datetime | None = None) -> str:
    """ "full in 12 days (9.5-15)" (an en dash) as the pages and alerts say it: the mean's time, then the interval's."""
    now = now or timezone.now()
    if result.error:
        return ""
    if result.last_value is not None and result.limit is not None and result.last_value >= result.limit:
        return "full now"
    ahead = round(result.lookahead_days or forecasting.LOOKAHEAD_DAYS)
    if result.full_at_earliest is None:
        return f"not full within {ahead} days"

    def days(at: datetime.datetime | None) -> str:
        if at is None:
            return f"{ahead}+"
        value = max(0.0, (at - now).total_seconds() / 86400)
        return f"{value:.0f}" if value >= 10 else f"{value:.1f}"

    main = days(result.full_at) if result.full_at else f"more than {ahead}"
    return f"full in {main} days ({days(result.full_at_earliest)}{DASH}{days(result.full_at_latest)})"


def _fire(forecast: CapacityForecast, series: Series, result: CapacityForecastResult, now: datetime.datetime) -> None:
    text = full_text(result, now)
    selector = series.selector()
    raise_alert(
        source=ALERT_SOURCE,
        dedup_key=_dedup_key(forecast, series.pk),
        title=f"{forecast.name}: {series.name} {text}"[:250],
        severity=forecast.severity,
        service=forecast.service or series.labels.get("service", ""),
        description=forecast.description
        or (
            f"{selector} is forecast to reach its limit ({query.format_value(result.limit)}) {text}: the earliest "
            f"time of the {forecasting.LEVEL:.0%} prediction interval is within the {forecast.horizon_days}-day "
            f"horizon."
        ),
        labels={**series.labels, "alertname": forecast.name, "metric": series.name},
        annotations={
            "series": selector[:1000],
            "series_id": str(series.pk),
            "forecast_id": str(forecast.pk),
            "limit": query.format_value(result.limit),
            "value": query.format_value(result.last_value),
            "full_at": result.full_at.isoformat() if result.full_at else "",
            "full_at_earliest": result.full_at_earliest.isoformat() if result.full_at_earliest else "",
            "full_at_latest": result.full_at_latest.isoformat() if result.full_at_latest else "",
            "mase": f"{result.mase:.3f}" if result.mase is not None else "",
            "horizon_days": str(forecast.horizon_days),
        },
        links=[
            {"href": forecast_url(forecast, series.pk), "text": "Forecast"},
            {"href": series_url(series), "text": "Series"},
        ],
    )


def _resolve(forecast: CapacityForecast, series_id: int) -> None:
    raise_alert(source=ALERT_SOURCE, dedup_key=_dedup_key(forecast, series_id), resolve=True)


def _resolve_all(forecast: CapacityForecast) -> None:
    if forecast.pk is None:
        return
    for result in forecast.results.filter(alerting=True):
        _resolve(forecast, result.series_id)
        result.alerting = False
        result.save(update_fields=["alerting"])


# --- Computing ------------------------------------------------------------------------------------------------


@dataclass
class ForecastRun:
    """What one computation did."""

    series: int = 0
    errors: int = 0
    fired: int = 0
    resolved: int = 0
    alerting: int = 0
    problems: list[str] = field(default_factory=list)


def update_due_forecasts(*, now: datetime.datetime | None = None, budget_seconds: float = 200.0) -> dict[str, int]:
    """Fit every enabled forecast that is due (hourly), soonest due first, within `budget_seconds`."""
    started = time.monotonic()
    counts = {"forecasts": 0, "series": 0, "fired": 0, "resolved": 0}
    while time.monotonic() - started < budget_seconds:
        moment = now or timezone.now()
        with transaction.atomic():
            due = (
                CapacityForecast.objects.select_for_update(skip_locked=True)
                .filter(enabled=True, next_run_at__lte=moment)
                .order_by("next_run_at", "pk")
                .first()
            )
            if due is None:
                break
            # Claimed: the next tick (or another worker) takes the next one.
            CapacityForecast.objects.filter(pk=due.pk).update(
                next_run_at=moment + datetime.timedelta(seconds=REFRESH_SECONDS)
            )
        run = compute_forecast(forecast_id=due.pk, now=now)
        if run is None:
            continue
        counts["forecasts"] += 1
        counts["series"] += run.series
        counts["fired"] += run.fired
        counts["resolved"] += run.resolved
    return counts


def compute_forecast(*, forecast_id: int, now: datetime.datetime | None = None) -> ForecastRun | None:
    """Fit each series the forecast matches, store the results, fire and resolve its alerts (None: gone or disabled).

    The fits run outside any transaction (seconds of CPU per series); storing them and the alerts is one
    short transaction under the forecast's row lock. A forecast edited meanwhile is left to the fit its
    save enqueued.
    """
    now = now or timezone.now()
    started = time.monotonic()
    forecast = CapacityForecast.objects.filter(pk=forecast_id, enabled=True).first()
    if forecast is None:
        return None
    settings_then = audit.snapshot(forecast, FORECAST_FIELDS)
    run = ForecastRun()
    try:
        usage, limits = _matched(forecast, now)
    except InvalidInput as exc:
        run.problems.append(str(exc))
        usage, limits = [], {}
    fitted = []
    for series in usage:
        result = CapacityForecastResult(forecast=forecast, series=series)
        limit_series, limit, problem = limits.get(series.pk, (None, None, "no limit."))
        _fit_one(forecast, series, result, limit_series, limit, problem, now)
        fitted.append(result)
    with transaction.atomic():
        forecast = CapacityForecast.objects.select_for_update().filter(pk=forecast_id, enabled=True).first()
        if forecast is None or audit.snapshot(forecast, FORECAST_FIELDS) != settings_then:
            return None
        known = {r.series_id: r for r in forecast.results.all()}
        for new in fitted:
            result = known.pop(new.series_id, None) or CapacityForecastResult(forecast=forecast, series=new.series)
            for name in RESULT_FIELDS:
                setattr(result, name, getattr(new, name))
            run.series += 1
            run.errors += bool(result.error)
            should_alert = _should_alert(forecast, result, now)
            if should_alert and not result.alerting:
                _fire(forecast, new.series, result, now)
                run.fired += 1
            elif result.alerting and not should_alert:
                _resolve(forecast, new.series_id)
                run.resolved += 1
            result.alerting = should_alert
            run.alerting += should_alert
            result.save()
        for series_id, result in known.items():
            # No longer matched, or no longer reporting.
            if result.alerting:
                _resolve(forecast, series_id)
                run.resolved += 1
            result.delete()
        if not usage and not run.problems:
            run.problems.append(
                f"usage_selector: no series matching it has reported in the last {STALE_SECONDS // 3600} hours."
            )
        if run.problems:
            state = CapacityForecast.State.ERROR
        elif run.alerting:
            state = CapacityForecast.State.WARNING
        elif run.errors == run.series:
            state = CapacityForecast.State.ERROR
        else:
            state = CapacityForecast.State.OK
        if not run.problems and run.errors:
            run.problems.append(f"{run.errors} of {run.series} series could not be forecast (see each one).")
        CapacityForecast.objects.filter(pk=forecast.pk).update(
            state=state,
            last_run_at=now,
            last_error=" ".join(run.problems)[:2000],
            last_duration_seconds=time.monotonic() - started,
            next_run_at=max(forecast.next_run_at, now + datetime.timedelta(seconds=REFRESH_SECONDS)),
        )
    return run


def _should_alert(forecast: CapacityForecast, result: CapacityForecastResult, now: datetime.datetime) -> bool:
    if result.error or result.full_at_earliest is None:
        return False
    return result.full_at_earliest <= now + datetime.timedelta(days=forecast.horizon_days)


def _matched(
    forecast: CapacityForecast, now: datetime.datetime
) -> tuple[list[Series], dict[int, tuple[Series | None, float | None, str]]]:
    """The usage series reporting lately, and each one's (limit series, limit value, problem)."""
    since = now.timestamp() - STALE_SECONDS
    selector = promql.parse_selector(forecast.usage_selector, field="usage_selector")
    try:
        usage = query.select_series(selector, since=since, limit=MAX_SERIES)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="usage_selector") from None
    kind = forecast.limit_kind
    if kind == CapacityForecast.LimitKind.CONSTANT:
        return usage, {s.pk: (None, forecast.limit_value, "") for s in usage}
    if kind == CapacityForecast.LimitKind.PERCENTAGE:
        return usage, {s.pk: (None, 100.0, "") for s in usage}
    limit_selector = promql.parse_selector(forecast.limit_selector, field="limit_selector")
    try:
        candidates = query.select_series(limit_selector, since=since, limit=query.MAX_SERIES)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="limit_selector") from None
    latest = _latest_values([s.pk for s in candidates], now)
    pairs: dict[int, tuple[Series | None, float | None, str]] = {}
    for series in usage:
        matches = [c for c in candidates if c.pk != series.pk and _same_labels(forecast, series, c)]
        if not matches:
            keys = ", ".join(forecast.match_labels) or "every shared label"
            pairs[series.pk] = (None, None, f"no series of {forecast.limit_selector} has the same {keys}.")
        elif len(matches) > 1:
            pairs[series.pk] = (
                None,
                None,
                f"{len(matches)} series of the limit selector match; name the labels to match on (match_labels).",
            )
        else:
            value = latest.get(matches[0].pk)
            problem = "" if value is not None else "the limit series has no recent value."
            pairs[series.pk] = (matches[0], value, problem)
    return usage, pairs


def _same_labels(forecast: CapacityForecast, usage: Series, limit: Series) -> bool:
    keys = forecast.match_labels or (set(usage.labels) & set(limit.labels))
    return all(usage.labels.get(key, "") == limit.labels.get(key, "") for key in keys)


def _latest_values(ids: list[int], now: datetime.datetime) -> dict[int, float]:
    data = query.raw_points(ids, now.timestamp() - LIMIT_LOOKBACK_SECONDS, now.timestamp())
    out = {}
    for series_id, (_times, values) in data.items():
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            out[series_id] = finite[-1]
    return out


def first_sample_times(ids: list[int], since: datetime.datetime) -> dict[int, float]:
    """Each series' oldest rollup bucket or raw sample after `since` (unix seconds): how much history it has."""
    out: dict[int, float] = {}
    if not ids:
        return out
    for model, column in ((Rollup5m, "bucket"), (Sample, "time")):
        rows = (
            model.objects.filter(series_id__in=ids, **{f"{column}__gte": since})
            .values("series_id")
            .annotate(first=Min(column))
            .values_list("series_id", "first")
        )
        for series_id, first in rows:
            stamp = first.timestamp()
            out[series_id] = min(out.get(series_id, stamp), stamp)
    return out


def history(series: Series, *, now: datetime.datetime, step: int | None = None,
            days: float = FIT_DAYS) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """The series' averages at the fit's step over its last `days` days: (times, values with NaN gaps, step)."""
    since = now - datetime.timedelta(days=days)
    first = first_sample_times([series.pk], since).get(series.pk)
    if first is None:
        return np.array([]), np.array([]), step or forecasting.STEPS[0]
    end = math.floor(now.timestamp())
    step = step or forecasting.choose_step(end - first)
    end = end // step * step
    start = max(first // step * step + step, end - math.floor(days * 86400 / step) * step)
    if start > end:
        return np.array([]), np.array([]), step
    points = query.evaluate_series(
        [series], start=start, end=end, step=step, function="avg_over_time", range_seconds=step
    )[0].points
    times = np.arange(start, end + step, step, dtype=float)
    values = np.full(len(times), np.nan)
    for at, value in points:
        values[round((at - start) / step)] = value
    return times, values, step


def _fit_one(
    forecast: CapacityForecast,
    series: Series,
    result: CapacityForecastResult,
    limit_series: Series | None,
    limit: float | None,
    problem: str,
    now: datetime.datetime,
) -> None:
    result.limit_series = limit_series
    result.limit = limit
    result.fitted_at = now
    if series.kind == "counter" or (not series.kind and series.name.endswith("_total")):
        problem = problem or "a counter: capacity forecasts need a gauge (a level that can be full)."
    if not problem and limit is not None and limit <= 0:
        problem = f"the limit is {query.format_value(limit)}; it must be above 0."
    fitted = None
    if not problem:
        times, values, step = history(series, now=now)
        try:
            fitted = forecasting.forecast(times, values, step=step, limit=limit, horizon_days=forecast.horizon_days)
        except forecasting.ForecastError as exc:
            problem = str(exc)
        except Exception as exc:
            # statsmodels' optimiser and linear algebra fail in many ways on odd data; one series' failure
            # is that series' error, not the end of the whole forecast.
            logger.warning("forecast %s, series %s: the fit failed", forecast.pk, series.pk, exc_info=True)
            problem = f"the model could not be fitted ({type(exc).__name__}: {exc})."[:500]
    if fitted is None:
        result.error = problem
        result.full_at = result.full_at_earliest = result.full_at_latest = None
        result.mase = None
        result.curve = {}
        result.model = ""
        return
    result.error = ""
    result.last_value = fitted.last_value
    result.last_at = _dt(fitted.last_time)
    result.full_at = _dt(fitted.full_at)
    result.full_at_earliest = _dt(fitted.full_at_earliest)
    result.full_at_latest = _dt(fitted.full_at_latest)
    result.mase = fitted.mase if fitted.mase is None or math.isfinite(fitted.mase) else None
    result.model = fitted.model
    result.step_seconds = fitted.step_seconds
    result.points = fitted.points
    result.curve = fitted.curve
    result.lookahead_days = fitted.lookahead_seconds / 86400


def _dt(stamp: float | None) -> datetime.datetime | None:
    return None if stamp is None else datetime.datetime.fromtimestamp(stamp, UTC)


# --- Reading -----------------------------------------------------------------------------------------------------


def soonest_forecasts(*, limit: int = 5) -> list[CapacityForecastResult]:
    """The enabled forecasts' series that reach their limit soonest (a full time known), for the overview."""
    return list(
        CapacityForecastResult.objects.filter(forecast__enabled=True, error="", full_at_earliest__isnull=False)
        .select_related("forecast", "series")
        .soonest_first()[:limit]
    )


def forecast_history(
    result: CapacityForecastResult, *, now: datetime.datetime | None = None
) -> list[tuple[float, float]]:
    """The history a forecast page draws: the series at the fit's step over its last HISTORY_SHOWN_DAYS days."""
    now = now or timezone.now()
    times, values, _step = history(result.series, now=now, step=result.step_seconds, days=HISTORY_SHOWN_DAYS)
    return [(float(at), float(value)) for at, value in zip(times, values, strict=True)]


@dataclass(frozen=True)
class SeriesForecast:
    """What a page showing a series says of its capacity: "full in 12 days (9.5-15)", the MASE, the forecast's page."""

    series_id: int
    forecast: str
    text: str
    mase: float | None
    alerting: bool
    url: str


def series_forecasts(*, series_ids: list[int], now: datetime.datetime | None = None) -> dict[int, list[SeriesForecast]]:
    """The enabled forecasts' latest results for these series (one query), e.g. for the metric explorer's details."""
    now = now or timezone.now()
    out: dict[int, list[SeriesForecast]] = {}
    rows = CapacityForecastResult.objects.filter(series_id__in=series_ids, forecast__enabled=True, error="")
    for result in rows.select_related("forecast").order_by("forecast__name"):
        out.setdefault(result.series_id, []).append(
            SeriesForecast(
                series_id=result.series_id,
                forecast=result.forecast.name,
                text=full_text(result, now),
                mase=result.mase,
                alerting=result.alerting,
                url=f"{reverse('aiops:metric_forecast', args=[result.forecast_id])}?series={result.series_id}",
            )
        )
    return out
