"""Thin tasks: take ids, call services, return quietly when the row is gone."""

from celery import shared_task

from . import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3, retry_backoff=True)
def run_probe(self, probe_id: str) -> str | None:
    probe = services.complete_probe(probe_id=probe_id, worker=self.request.hostname or "")
    return probe.status if probe else None


@shared_task(acks_late=True, reject_on_worker_lost=True)
def mark_stale_workers() -> int:
    return services.mark_stale_workers()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def requeue_pending_probes() -> int:
    return services.requeue_pending_probes()
