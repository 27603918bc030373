"""Uptime-check tasks: the dispatcher (queue `checks`) and the history pruner (queue `default`)."""

from __future__ import annotations

from celery import shared_task

from aiops import services
from opsportal.enqueue import send

__all__ = ["prune_check_history", "run_checks_due"]

# How long one dispatcher task keeps claiming batches before it returns (beat sends one a second).
DISPATCH_BUDGET_SECONDS = 10.0


@shared_task(name="aiops.tasks.run_checks_due", ignore_result=True)
def run_checks_due() -> int:
    """Run the due checks, batch after batch, until none is due (or the budget is spent).

    Beat sends this every second (expiring within it). Nothing is lost with the message: a claimed
    check holds a lease in the database, and runs again when it ends if this worker died. When a batch
    comes back full, one more task is sent so that another worker process joins in.
    """
    return services.run_due_checks(budget_seconds=DISPATCH_BUDGET_SECONDS, on_full_batch=_another_dispatcher)


def _another_dispatcher() -> None:
    try:
        send("aiops.tasks.run_checks_due", retry=False)
    except Exception:  # the broker is busy or down: beat sends the next one within a second anyway
        return


@shared_task(name="aiops.tasks.prune_check_history", acks_late=True, reject_on_worker_lost=True)
def prune_check_history() -> dict[str, int]:
    """Delete check results, pings and hourly counts past their retention."""
    return services.prune_check_history()
