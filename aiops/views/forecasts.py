"""Capacity forecast pages: the list (soonest full first), one forecast with its chart, the form.

Writes go through `aiops.services` (save/delete_capacity_forecast, run_forecast_now), which audit
them; a saved forecast is fitted by a worker within a minute, or at once with Recompute now.
"""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.charts import figure_data

from .. import forecast_charts, forecasting, services
from ..forecast_forms import ForecastForm
from ..models import CapacityForecast, CapacityForecastResult
from .display import page_of


def forecast_url(forecast: CapacityForecast) -> str:
    return reverse("aiops:metric_forecast", args=[forecast.pk])


def _row(result: CapacityForecastResult, now: datetime.datetime) -> dict:
    used = result.used_share()
    return {
        "result": result,
        "forecast": result.forecast,
        "series": result.series,
        "summary": services.full_text(result, now),
        "used_percent": None if used is None else used * 100,
        "limit": "" if result.limit is None else forecast_charts.short_number(result.limit),
        "now": "" if result.last_value is None else forecast_charts.short_number(result.last_value),
        "state": result.state if result.forecast.enabled else "paused",
    }


@role_required(Role.VIEWER)
def metric_forecasts(request: HttpRequest) -> HttpResponse:
    """Every forecast series, soonest full first: "full in N days (A to B)", the backtest MASE, the state."""
    now = timezone.now()
    results = CapacityForecastResult.objects.select_related("forecast", "series").soonest_first()
    page = page_of(request, results)
    waiting = CapacityForecast.objects.filter(results__isnull=True).order_by("name")
    context = {
        "page": page,
        "rows": [_row(result, now) for result in page],
        "waiting": list(waiting),
        "level": forecasting.LEVEL,
    }
    return render(request, "aiops/forecast_list.html", context)


@never_cache
@role_required(Role.VIEWER)
def metric_forecast(request: HttpRequest, pk: int) -> HttpResponse:
    """One forecast: its settings, each series it matched, and the chart of one of them (`?series=<id>`)."""
    forecast = get_object_or_404(CapacityForecast, pk=pk)
    now = timezone.now()
    results = list(forecast.results.select_related("series", "limit_series").soonest_first())
    chosen = None
    wanted = request.GET.get("series", "")
    if wanted.isdigit():
        chosen = next((r for r in results if r.series_id == int(wanted)), None)
    if chosen is None:
        chosen = next((r for r in results if not r.error), results[0] if results else None)
    chart = None
    if chosen is not None and not chosen.error and chosen.curve:
        history = services.forecast_history(chosen, now=now)
        figure = forecast_charts.forecast_chart(
            history=history,
            curve=chosen.curve,
            limit=chosen.limit,
            full_at=chosen.full_at,
            full_at_earliest=chosen.full_at_earliest,
            full_at_latest=chosen.full_at_latest,
            horizon_end=now + datetime.timedelta(days=forecast.horizon_days),
            level=forecasting.LEVEL,
        )
        chart = figure_data(figure)
    context = {
        "forecast": forecast,
        "rows": [_row(result, now) for result in results],
        "chosen": _row(chosen, now) if chosen is not None else None,
        "chart": chart,
        "level": forecasting.LEVEL,
    }
    return render(request, "aiops/forecast_detail.html", context)


def _recomputed(forecast: CapacityForecast, result: CapacityForecast, data: dict) -> str:
    if result.state == CapacityForecast.State.ERROR:
        return f"{forecast.name} recomputed, with a problem: {result.last_error}"
    count = result.results.count()
    return f"{forecast.name} recomputed: {count} series forecast."


FORECAST_ACTIONS = {
    "run": PageAction(
        run=lambda request, forecast, data: services.run_forecast_now(forecast=forecast, actor=request.user),
        success=_recomputed,
    ),
    "enable": PageAction(
        run=lambda request, forecast, data: services.save_capacity_forecast(
            forecast=forecast, enabled=True, actor=request.user
        ),
        success=lambda forecast, result, data: f"{forecast.name} enabled: it is refitted hourly.",
    ),
    "disable": PageAction(
        run=lambda request, forecast, data: services.save_capacity_forecast(
            forecast=forecast, enabled=False, actor=request.user
        ),
        success=lambda forecast, result, data: f"{forecast.name} disabled; its warnings are resolved.",
    ),
    "delete": PageAction(
        run=lambda request, forecast, data: services.delete_capacity_forecast(forecast=forecast, actor=request.user),
        success=lambda forecast, result, data: f"Forecast {forecast.name} deleted; its warnings are resolved.",
        next=lambda forecast, result: "aiops:metric_forecasts",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def metric_forecast_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """run (recompute now) / enable / disable / delete."""
    forecast = get_object_or_404(CapacityForecast, pk=pk)
    return dispatch(request, FORECAST_ACTIONS, action, forecast, default_next=forecast_url(forecast))


@never_cache
@role_required(Role.OPERATOR)
def metric_forecast_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; a bad value is shown on its field (400) and nothing is saved."""
    forecast = get_object_or_404(CapacityForecast, pk=pk) if pk else None
    initial = ForecastForm.initial_for(forecast) if forecast else {}
    form = ForecastForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_capacity_forecast(actor=request.user, forecast=forecast, **form.service_values())
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Forecast {saved.name} saved; it is fitted within a minute.")
            return redirect(forecast_url(saved))
    if form.is_bound and form.errors:
        status = 400
    return render(request, "aiops/forecast_form.html", {"form": form, "forecast": forecast}, status=status)
