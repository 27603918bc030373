"""Log tasks, on queue `collection` (opsportal/celery.py routes `aiops.tasks.collect_*`)."""

from __future__ import annotations

from celery import shared_task

from aiops.services import logs

__all__ = ["collect_log_partitions", "collect_log_templates"]


@shared_task(name="aiops.tasks.collect_log_templates", acks_late=True, reject_on_worker_lost=True)
def collect_log_templates() -> dict:
    """Each template's closed minutes: metric samples `log_template_records`, baselines, error bursts."""
    done = logs.evaluate_log_templates()
    return {"minutes": done.minutes, "samples": done.samples, "bursts": done.bursts, "resolved": done.resolved}


@shared_task(name="aiops.tasks.collect_log_partitions", acks_late=True, reject_on_worker_lost=True)
def collect_log_partitions() -> dict:
    """Log partitions ahead; days past LOGS_RETENTION_DAYS dropped (SQLite: deleted)."""
    done = logs.maintain_log_storage()
    return {"created": done.created, "dropped": done.dropped, "deleted_rows": done.deleted_rows}
