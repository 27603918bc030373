"""Runbook tasks (queue `default`): advancing a run, sending a step's HTTP call, verifying and sweeping."""

from __future__ import annotations

from celery import shared_task

from aiops.runbooks import engine
from opsportal import outbox

__all__ = ["advance_runbook_run", "send_runbook_call", "sweep_runbook_runs", "verify_runbook_runs"]


@shared_task(name="aiops.tasks.advance_runbook_run", acks_late=True, reject_on_worker_lost=True)
def advance_runbook_run(run_id: int) -> str:
    """Run the run's steps from the one it is on until one has to wait (idempotent: state is in the database)."""
    return engine.advance(run_id)


@shared_task(
    name="aiops.tasks.send_runbook_call", bind=True, acks_late=True, reject_on_worker_lost=True,
    max_retries=outbox.MAX_ATTEMPTS,
)  # fmt: skip
def send_runbook_call(self, call_id: int) -> str:
    """Send one step's HTTP request; network errors and 5xx retry with the outbox's backoff."""
    return engine.CALLS.send_in_task(self, call_id)


@shared_task(name="aiops.tasks.verify_runbook_runs", acks_late=True, reject_on_worker_lost=True)
def verify_runbook_runs() -> int:
    """Store whether finished runs remediated their incident (resolved within the runbook's window)."""
    return engine.verify_runs()


@shared_task(name="aiops.tasks.sweep_runbook_runs", acks_late=True, reject_on_worker_lost=True)
def sweep_runbook_runs() -> int:
    """Re-enqueue runs and calls still pending (the broker was down, or a worker died)."""
    return engine.sweep()
