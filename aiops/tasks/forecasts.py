"""Capacity forecast tasks, on queue `collection` (opsportal/celery.py routes `aiops.tasks.collect_*`)."""

from __future__ import annotations

from celery import shared_task

from aiops import services

__all__ = ["collect_forecast", "collect_forecasts"]


@shared_task(name="aiops.tasks.collect_forecasts", acks_late=True, reject_on_worker_lost=True)
def collect_forecasts() -> dict:
    """Refit the forecasts that are due (each hourly) and fire or resolve their warnings."""
    return services.update_due_forecasts()


@shared_task(name="aiops.tasks.collect_forecast", acks_late=True, reject_on_worker_lost=True)
def collect_forecast(forecast_id: int) -> int:
    """Fit one forecast now (after it was saved); a forecast deleted, disabled or being fitted meanwhile is skipped."""
    run = services.compute_forecast(forecast_id=forecast_id)
    return run.series if run is not None else 0
