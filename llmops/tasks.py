"""Thin LLMOps tasks (queue `evals`): execute runs, resume runs whose worker died, keep the span partitions."""

from celery import shared_task

from opsportal.enqueue import resend

from . import engine
from .services import traces as trace_services


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


@shared_task(acks_late=True, reject_on_worker_lost=True)
def maintain_traces() -> dict:
    """Span partitions ahead; spans, traces, sessions and users past LLMOPS_TRACES_RETENTION_DAYS removed."""
    done = trace_services.maintain_traces()
    return {"created": done.created, "dropped": done.dropped, "deleted_traces": done.deleted_traces}
