"""Thin LLMOps tasks (queue `evals`): execute runs, and resume runs whose worker died."""

from celery import shared_task

from opsportal.enqueue import resend

from . import engine


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_run(run_id: int) -> str:
    """Generate and score a run's missing results; safe to run again (each result is stored once)."""
    return engine.execute(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def resume_stalled_runs() -> list[int]:
    """Re-enqueue runs whose lease expired (their worker died) or that never reached a worker."""
    ids = engine.stalled_runs()
    resend("llmops.tasks.execute_run", ids)
    return ids
