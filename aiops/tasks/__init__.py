"""Thin AIOps tasks: they read what is pending in the database and call services."""

from celery import shared_task

from aiops import notifications, services


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=5, retry_backoff=True)
def process_alerts() -> int:
    """Correlate every pending alert change, then learn from what fired together; also the periodic
    sweeper (it only finds work that is left)."""
    total = 0
    while processed := services.process_pending_alerts():
        total += processed
    # Then the learned correlation counts what fired together (off the grouping path).
    while services.learn_cofirings():
        pass
    return total


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=notifications.MAX_ATTEMPTS)
def send_notification(self, notification_id: int) -> str:
    """Send one notification; failures retry with the outbox's backoff, each attempt on the timeline."""
    return notifications.NOTIFICATIONS.send_in_task(self, notification_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sweep_notifications() -> int:
    """Re-enqueue notifications still pending (the broker was down, or a worker died)."""
    return notifications.requeue_pending()


# Watching systems (issue 11): check and collection tasks, one module each (explicit names, so the
# queue routes in opsportal/celery.py match them: aiops.tasks.run_check*, aiops.tasks.collect_*).
from .anomalies import *  # noqa: E402, F403  (live anomaly detection, issue 12: aiops.tasks.collect_anomalies)
from .checks import *  # noqa: E402, F403
from .forecasts import *  # noqa: E402, F403  (capacity forecasts, issue 12: aiops.tasks.collect_forecast*)
from .incident_context import *  # noqa: E402, F403  (incident context, issue 13: aiops.tasks.*_incident_contexts)
from .logs import *  # noqa: E402, F403  (logs, issue 13: aiops.tasks.collect_log_*)
from .metrics import *  # noqa: E402, F403
from .runbooks import *  # noqa: E402, F403  (runbooks, issue 13: aiops.tasks.*runbook*)
