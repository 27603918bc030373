"""Incident context tasks: assemble it for incidents that just opened, refresh it while they are open."""

from __future__ import annotations

from celery import shared_task

from aiops.services import incident_context

__all__ = ["assemble_incident_contexts", "refresh_incident_contexts"]


@shared_task(
    name="aiops.tasks.assemble_incident_contexts",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    max_retries=3,
    retry_backoff=True,
)
def assemble_incident_contexts(incident_ids: list[int]) -> int:
    """Assemble and store the context of these incidents (gone ones are skipped); how many were stored."""
    return incident_context.refresh_contexts(incident_ids=incident_ids)


@shared_task(name="aiops.tasks.refresh_incident_contexts", acks_late=True, reject_on_worker_lost=True)
def refresh_incident_contexts() -> int:
    """The periodic refresh and sweeper: open incidents whose context is missing or older than the period."""
    return incident_context.refresh_open_contexts()
