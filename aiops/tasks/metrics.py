"""Metric collection tasks, all on queue `collection` (opsportal/celery.py routes `aiops.tasks.collect_*`).

`collect_due` (every 5 s) claims what is due and sends `collect_targets` / `collect_queries` batches
timed to each run; the others are the storage's periodic upkeep and the threshold rules.
"""

from __future__ import annotations

from celery import shared_task

from aiops import services

__all__ = [
    "collect_due",
    "collect_partitions",
    "collect_queries",
    "collect_rollups",
    "collect_targets",
    "collect_thresholds",
]


@shared_task(name="aiops.tasks.collect_due", acks_late=True, reject_on_worker_lost=True)
def collect_due() -> int:
    """Claim the due scrape targets and watched queries and send their collection tasks."""
    return services.dispatch_due_collection()


@shared_task(name="aiops.tasks.collect_targets", acks_late=True, reject_on_worker_lost=True)
def collect_targets(target_ids: list[int]) -> int:
    """Scrape these targets concurrently and store their samples (targets deleted or paused meanwhile are skipped)."""
    return services.collect_targets(target_ids=target_ids)


@shared_task(name="aiops.tasks.collect_queries", acks_late=True, reject_on_worker_lost=True)
def collect_queries(query_ids: list[int]) -> int:
    """Pull these watched queries from their sources and store the new steps."""
    return services.collect_queries(query_ids=query_ids)


@shared_task(name="aiops.tasks.collect_rollups", acks_late=True, reject_on_worker_lost=True)
def collect_rollups() -> int:
    return services.roll_up_metrics()


@shared_task(name="aiops.tasks.collect_partitions", acks_late=True, reject_on_worker_lost=True)
def collect_partitions() -> dict:
    """Create the sample and rollup partitions ahead, drop those past retention."""
    done = services.maintain_metric_storage()
    return {"created": done.created, "dropped": done.dropped, "deleted_series": done.deleted_series}


@shared_task(name="aiops.tasks.collect_thresholds", acks_late=True, reject_on_worker_lost=True)
def collect_thresholds() -> dict:
    """Evaluate the threshold rules on the stored series; fire and resolve their alerts."""
    return services.evaluate_threshold_rules()
