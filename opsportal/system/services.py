"""Workers, queues, readiness and the enqueue path every app uses."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from opsportal.enqueue import enqueue_on_commit
from opsportal.outbox import sweep
from opsportal.queues import QUEUES

from .models import TaskCounter, TaskProbe, WorkerHeartbeat

logger = logging.getLogger(__name__)

PROBE_TASK = "opsportal.system.tasks.run_probe"

# A worker that has not written a heartbeat for this many intervals is shown as offline.
STALE_AFTER_BEATS = 3


def record_worker_heartbeat(*, hostname: str, pid: int, queues: list[str], concurrency: int) -> None:
    now = timezone.now()
    updated = WorkerHeartbeat.objects.filter(hostname=hostname, pid=pid).update(
        last_seen_at=now, online=True, queues=queues, concurrency=concurrency
    )
    if not updated:
        WorkerHeartbeat.objects.update_or_create(
            hostname=hostname,
            defaults={
                "pid": pid,
                "queues": queues,
                "concurrency": concurrency,
                "started_at": now,
                "last_seen_at": now,
                "online": True,
            },
        )


def mark_worker_offline(*, hostname: str) -> None:
    WorkerHeartbeat.objects.filter(hostname=hostname).update(online=False)


def mark_stale_workers() -> int:
    """Mark workers silent for too long as offline; forget ones gone for a week. Returns how many went offline."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=STALE_AFTER_BEATS * settings.CELERY_WORKER_HEARTBEAT_SECONDS)
    stale = WorkerHeartbeat.objects.filter(online=True, last_seen_at__lt=cutoff).update(online=False)
    WorkerHeartbeat.objects.filter(online=False, last_seen_at__lt=now - datetime.timedelta(days=7)).delete()
    return stale


def workers() -> list[WorkerHeartbeat]:
    """All known workers, with `online` reflecting the current heartbeat age."""
    limit = STALE_AFTER_BEATS * settings.CELERY_WORKER_HEARTBEAT_SECONDS
    rows = list(WorkerHeartbeat.objects.all())
    for row in rows:
        row.online = row.online and row.seconds_since_seen() <= limit
    return rows


def count_task(*, name: str, state: str) -> None:
    """Add one to a task's finished-in-state counter (one UPDATE in the common case)."""
    if TaskCounter.objects.filter(name=name, state=state).update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            TaskCounter.objects.create(name=name, state=state, count=1)
    except IntegrityError:
        TaskCounter.objects.filter(name=name, state=state).update(count=F("count") + 1)


@transaction.atomic
def request_probe(*, actor: User | AnonymousUser | None) -> TaskProbe:
    """Create a probe and send it to a worker; the system page shows when it comes back."""
    user = actor if actor is not None and actor.is_authenticated else None
    probe = TaskProbe.objects.create(requested_by=user, enqueue_attempts=1)
    enqueue_on_commit(PROBE_TASK, str(probe.id))
    return probe


def complete_probe(*, probe_id: str, worker: str) -> TaskProbe | None:
    """Mark a probe done; a probe already done or gone is left alone (the task is idempotent)."""
    TaskProbe.objects.filter(id=probe_id, status=TaskProbe.Status.PENDING).update(
        status=TaskProbe.Status.DONE, completed_at=timezone.now(), worker=worker
    )
    return TaskProbe.objects.filter(id=probe_id).first()


def requeue_pending_probes(*, older_than: datetime.timedelta = datetime.timedelta(minutes=1)) -> int:
    """Re-send probes still pending (e.g. the broker was down when they were created); returns how many went out."""
    now = timezone.now()
    due = TaskProbe.objects.filter(
        status=TaskProbe.Status.PENDING,
        created_at__lt=now - older_than,
        created_at__gt=now - datetime.timedelta(days=1),
    )
    sent = sweep(PROBE_TASK, due)
    TaskProbe.objects.filter(pk__in=sent).update(enqueue_attempts=F("enqueue_attempts") + 1)
    return len(sent)


def broker_connection():
    return current_app.connection_for_read()


def check_broker(timeout: float = 2.0) -> str | None:
    """None when the broker answers, else a short description of the failure."""
    try:
        with broker_connection() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            conn.default_channel  # noqa: B018 (opens a channel: proves the broker really answers)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_database() -> str | None:
    """None when the database answers, else a short description of the failure."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def queue_depths(timeout: float = 2.0) -> dict[str, int | None]:
    """Messages waiting in each queue; None for every queue when the broker is unreachable."""
    try:
        with broker_connection() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            channel = conn.default_channel
            depths: dict[str, int | None] = {}
            for name in QUEUES:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:
                    # A queue nobody has declared yet holds nothing.
                    depths[name] = 0
            return depths
    except Exception:
        logger.warning("Broker unreachable while reading queue depths", exc_info=True)
        return dict.fromkeys(QUEUES)


def periodic_tasks() -> list:
    """Beat schedule entries with their last run (from django-celery-beat)."""
    from django_celery_beat.models import PeriodicTask

    return list(PeriodicTask.objects.select_related("interval", "crontab").order_by("name"))


def run_check(check: Callable[[], str | None]) -> dict[str, Any]:
    error = check()
    return {"ok": error is None, "error": error}
