"""Thin MLOps tasks: registry webhooks are sent from the outbox with retries and backoff."""

from celery import shared_task

from . import webhooks


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=6)
def send_webhook(self, delivery_id: int) -> str | None:
    outcome = webhooks.send(delivery_id=delivery_id)
    if outcome == "retry" and self.request.retries < self.max_retries:
        raise self.retry(countdown=webhooks.retry_delay_for(delivery_id).total_seconds())
    return outcome


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sweep_webhooks() -> int:
    """Re-enqueue webhook deliveries still pending (the broker was down, or a worker died)."""
    return webhooks.requeue_pending()
