"""Live anomaly detection task, on queue `collection` (opsportal/celery.py routes `aiops.tasks.collect_*`)."""

from __future__ import annotations

from celery import shared_task

from aiops import services

__all__ = ["collect_anomalies"]


@shared_task(name="aiops.tasks.collect_anomalies", acks_late=True, reject_on_worker_lost=True)
def collect_anomalies() -> dict:
    """Score the new samples of every monitored series (states stored, so a restart resumes); fire and resolve."""
    return services.score_anomaly_monitors()
