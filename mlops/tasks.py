"""Thin MLOps tasks: registry webhooks are sent from the outbox with retries and backoff."""

from celery import shared_task

from . import webhooks


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=webhooks.MAX_ATTEMPTS)
def send_webhook(self, delivery_id: int) -> str:
    """Send one webhook delivery; failures retry with the outbox's backoff."""
    return webhooks.DELIVERIES.send_in_task(self, delivery_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sweep_webhooks() -> int:
    """Re-enqueue webhook deliveries still pending (the broker was down, or a worker died)."""
    return webhooks.requeue_pending()
