"""Thin LLMOps tasks (queue `evals`): execute runs, resume runs whose worker died, keep the span partitions."""

from celery import shared_task

from opsportal.enqueue import resend

from . import engine
from .online import runner as online_runner
from .services import monitors as monitor_services
from .services import review as review_services
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


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluate_spans(evaluator_id: int) -> dict:
    """One sweep of an evaluator over the generations stored past its cursor; safe to run twice."""
    done = online_runner.evaluate_new_spans(evaluator_id)
    return {"seen": done.seen, "scored": done.scored, "scores": done.scores, "busy": done.skipped_busy}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_evaluators() -> list[int]:
    """Send a sweep for every enabled evaluator (the cursor in the database keeps what is still to score)."""
    ids = online_runner.enabled_evaluators()
    resend("llmops.tasks.evaluate_spans", ids)
    return ids


@shared_task(acks_late=True, reject_on_worker_lost=True)
def fill_review_queue(queue_id: int) -> dict | None:
    """Add the traces matching a queue's filter stored since its last fill; safe to run twice."""
    done = review_services.fill_queue(queue_id=queue_id)
    return None if done is None else {"added": done.added, "cursor": done.cursor, "busy": done.skipped_busy}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def fill_review_queues() -> list[int]:
    """Send a fill for every queue with a filter (its cursor in the database keeps where it is)."""
    ids = review_services.filling_queues()
    resend("llmops.tasks.fill_review_queue", ids)
    return ids


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluate_llm_monitor(monitor_id: int) -> dict | None:
    """Measure one LLM monitor over its window; fire or resolve its AIOps alert. Safe to run twice."""
    done = monitor_services.evaluate_monitor(monitor_id=monitor_id)
    return None if done is None else {"value": done.value, "samples": done.samples, "state": done.state}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluate_llm_monitors() -> list[int]:
    """Send an evaluation for every enabled LLM monitor."""
    ids = monitor_services.enabled_monitors()
    resend("llmops.tasks.evaluate_llm_monitor", ids)
    return ids
