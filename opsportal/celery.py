"""The Celery application: JSON only, four queues, database-backed beat schedule.

Every periodic task is declared here, in ``BEAT_SCHEDULE``; django-celery-beat's
DatabaseScheduler copies it into the database so the system page can show the
last run of each entry and admins can pause one.
"""

from __future__ import annotations

import os

from celery import Celery, bootsteps
from celery.signals import task_postrun, worker_shutdown
from kombu import Queue

from opsportal.queues import QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")

app = Celery("opsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.task_queues = [Queue(name, routing_key=name) for name in QUEUES]
app.conf.task_default_queue = "default"
app.conf.task_default_routing_key = "default"
app.conf.task_routes = {
    "aiops.tasks.collect_*": {"queue": "collection"},
    "aiops.tasks.run_check*": {"queue": "checks"},
    "llmops.tasks.*": {"queue": "evals"},
}

HOUR = 3600.0
BEAT_SCHEDULE = {
    "system.mark-stale-workers": {
        "task": "opsportal.system.tasks.mark_stale_workers",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "system.requeue-pending-probes": {
        "task": "opsportal.system.tasks.requeue_pending_probes",
        "schedule": 300.0,
        "options": {"expires": 240},
    },
    "aiops.process-pending-alerts": {
        "task": "aiops.tasks.process_alerts",
        "schedule": 15.0,
        "options": {"expires": 12},
    },
    "aiops.sweep-notifications": {
        "task": "aiops.tasks.sweep_notifications",
        "schedule": 120.0,
        "options": {"expires": 100},
    },
    # Checks: the dispatcher claims due checks from the database (docs/aiops.md "Checks"); a tick that
    # finds a worker busy expires, and the next one comes a second later.
    "aiops.run-checks-due": {
        "task": "aiops.tasks.run_checks_due",
        "schedule": 1.0,
        "options": {"expires": 0.9},
    },
    "aiops.prune-check-history": {
        "task": "aiops.tasks.prune_check_history",
        "schedule": HOUR,
        "options": {"expires": 50 * 60},
    },
    "mlops.sweep-webhooks": {
        "task": "mlops.tasks.sweep_webhooks",
        "schedule": 120.0,
        "options": {"expires": 100},
    },
    # Monitoring (issue 14): window checks of due monitors, batches whose evaluation was lost, retraining calls.
    "mlops.evaluate-monitors": {
        "task": "mlops.tasks.evaluate_monitors",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "mlops.sweep-monitor-batches": {
        "task": "mlops.tasks.sweep_monitor_batches",
        "schedule": 120.0,
        "options": {"expires": 100},
    },
    # Logged predictions of closed windows become batches (per monitor, its `batch_minutes`).
    "mlops.cut-prediction-batches": {
        "task": "mlops.tasks.cut_prediction_batches",
        "schedule": 300.0,
        "options": {"expires": 240},
    },
    "mlops.sweep-retraining-calls": {
        "task": "mlops.tasks.sweep_retraining_calls",
        "schedule": 120.0,
        "options": {"expires": 100},
    },
    "llmops.resume-stalled-runs": {
        "task": "llmops.tasks.resume_stalled_runs",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Online evaluators: each sweep scores the generations stored past the evaluator's cursor.
    "llmops.run-evaluators": {
        "task": "llmops.tasks.run_evaluators",
        "schedule": 15.0,
        "options": {"expires": 12},
    },
    # Annotation queues with a filter: each fill adds the matching traces stored since the queue's last one.
    "llmops.fill-review-queues": {
        "task": "llmops.tasks.fill_review_queues",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    # LLM monitors: each rule measured over its window; a breach opens an AIOps incident.
    "llmops.evaluate-llm-monitors": {
        "task": "llmops.tasks.evaluate_llm_monitors",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    # Span partitions ahead and retention (LLMOPS_TRACES_RETENTION_DAYS), as for log records.
    "llmops.maintain-traces": {
        "task": "llmops.tasks.maintain_traces",
        "schedule": HOUR,
        "options": {"expires": 50 * 60},
    },
    # Metric collection (queue `collection`): the dispatcher times each scrape within its 5 s horizon.
    "aiops.collect-due": {
        "task": "aiops.tasks.collect_due",
        "schedule": 5.0,
        "options": {"expires": 4},
    },
    "aiops.collect-rollups": {
        "task": "aiops.tasks.collect_rollups",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "aiops.collect-partitions": {
        "task": "aiops.tasks.collect_partitions",
        "schedule": HOUR,
        "options": {"expires": 0.9 * HOUR},
    },
    "aiops.collect-thresholds": {
        "task": "aiops.tasks.collect_thresholds",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Capacity forecasts (queue `collection`): each forecast is refitted hourly; a tick fits those due.
    "aiops.collect-forecasts": {
        "task": "aiops.tasks.collect_forecasts",
        "schedule": 300.0,
        "options": {"expires": 240},
    },
    # Live anomaly detection (queue `collection`): each monitored series' new samples, scored every minute.
    "aiops.collect-anomalies": {
        "task": "aiops.tasks.collect_anomalies",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    # Logs (queue `collection`): template minutes become metric samples and burst checks; retention hourly.
    "aiops.collect-log-templates": {
        "task": "aiops.tasks.collect_log_templates",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "aiops.collect-log-partitions": {
        "task": "aiops.tasks.collect_log_partitions",
        "schedule": HOUR,
        "options": {"expires": 0.9 * HOUR},
    },
    # Incident context: open incidents' context re-assembled every 2 minutes (and any an enqueue missed).
    "aiops.refresh-incident-contexts": {
        "task": "aiops.tasks.refresh_incident_contexts",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    # Runbooks (issue 13): runs and step calls a lost task left behind, and remediation verdicts.
    "aiops.sweep-runbook-runs": {
        "task": "aiops.tasks.sweep_runbook_runs",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "aiops.verify-runbook-runs": {
        "task": "aiops.tasks.verify_runbook_runs",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "accounts.clear-expired-sessions": {
        "task": "opsportal.accounts.tasks.clear_expired_sessions",
        "schedule": 24 * HOUR,
        "options": {"expires": 12 * HOUR},
    },
}


def installed_schedule() -> dict:
    """BEAT_SCHEDULE without the entries of apps that are not installed (a portal without LLMOps, say)."""
    from django.conf import settings

    installed = set(settings.INSTALLED_APPS)
    return {key: entry for key, entry in BEAT_SCHEDULE.items() if entry["task"].rsplit(".tasks.", 1)[0] in installed}


@app.on_after_configure.connect
def _schedule(sender: Celery, **kwargs) -> None:
    sender.conf.beat_schedule = installed_schedule()


app.autodiscover_tasks()
app.autodiscover_tasks(["opsportal.system", "opsportal.accounts"])


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """Writes this worker's heartbeat row every few seconds from the main process.

    The system page and `/metrics` read these rows, so they work with any broker
    (the embedded filesystem broker has no worker events) and across machines.
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        from django.conf import settings

        self.beat(worker)
        interval = settings.CELERY_WORKER_HEARTBEAT_SECONDS
        self.tref = worker.timer.call_repeatedly(interval, self.beat, (worker,), priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def beat(self, worker) -> None:
        from opsportal.system import services

        queues = sorted(q.name for q in worker.app.amqp.queues.consume_from.values())
        services.record_worker_heartbeat(
            hostname=worker.hostname, pid=os.getpid(), queues=queues, concurrency=worker.concurrency or 1
        )


app.steps["worker"].add(WorkerHeartbeatStep)


@worker_shutdown.connect
def _worker_offline(sender=None, **kwargs) -> None:
    from opsportal.system import services

    hostname = getattr(sender, "hostname", None)
    if hostname:
        services.mark_worker_offline(hostname=hostname)


@task_postrun.connect
def _count_task(sender=None, task_id=None, task=None, state=None, **kwargs) -> None:
    from opsportal.system import services

    if task is not None and state:
        services.count_task(name=task.name, state=state)
