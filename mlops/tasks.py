"""Thin MLOps tasks: registry and retraining webhooks sent from their outboxes with retries and backoff, and
monitor checks evaluated on each batch and on a schedule."""

from celery import shared_task
from django.db import DatabaseError

from . import retraining, webhooks
from .models import Monitor, MonitoringBatch
from .services import monitor_checks, predictions


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=webhooks.MAX_ATTEMPTS)
def send_webhook(self, delivery_id: int) -> str:
    """Send one webhook delivery; failures retry with the outbox's backoff."""
    return webhooks.DELIVERIES.send_in_task(self, delivery_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sweep_webhooks() -> int:
    """Re-enqueue webhook deliveries still pending (the broker was down, or a worker died)."""
    return webhooks.requeue_pending()


@shared_task(
    acks_late=True, reject_on_worker_lost=True, autoretry_for=(DatabaseError,), max_retries=3, retry_backoff=True
)
def evaluate_monitor_batch(batch_id: int) -> int:
    """Run the per-batch checks on one stored batch (once; a repeat finds it evaluated). Returns breaches opened."""
    batch = MonitoringBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return 0
    return len(monitor_checks.evaluate_batch(batch=batch))


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sweep_monitor_batches() -> int:
    """Re-enqueue the evaluation of batches still unevaluated (the broker was down, or a worker died)."""
    return monitor_checks.requeue_unevaluated_batches()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluate_monitors() -> int:
    """Enqueue the window evaluation of every monitor whose `schedule_minutes` came round."""
    return monitor_checks.enqueue_due_monitors()


@shared_task(
    acks_late=True, reject_on_worker_lost=True, autoretry_for=(DatabaseError,), max_retries=3, retry_backoff=True
)
def evaluate_monitor(monitor_id: int) -> int:
    """Run one monitor's window checks (and its rollback guard). Returns breaches opened."""
    monitor = Monitor.objects.filter(pk=monitor_id).first()
    if monitor is None:
        return 0
    return len(monitor_checks.evaluate_window(monitor=monitor).opened)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=retraining.MAX_ATTEMPTS)
def send_retraining_call(self, call_id: int) -> str:
    """Send one retraining webhook call; failures retry with the outbox's backoff."""
    return retraining.CALLS.send_in_task(self, call_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sweep_retraining_calls() -> int:
    """Re-enqueue retraining calls still pending (the broker was down, or a worker died)."""
    return retraining.requeue_pending()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def cut_prediction_batches() -> int:
    """Enqueue the cut of logged predictions into batches for every monitor that has new ones."""
    due = predictions.monitors_to_cut()
    for monitor_id in due:
        cut_monitor_prediction_batches.delay(monitor_id)
    return len(due)


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=3, default_retry_delay=30)
def cut_monitor_prediction_batches(monitor_id: int) -> int:
    """Cut one monitor's logged predictions of closed windows into batches. Returns the batches made."""
    monitor = Monitor.objects.filter(pk=monitor_id).first()
    if monitor is None:
        return 0
    return len(predictions.cut_prediction_batches(monitor=monitor))
