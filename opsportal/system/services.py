"""Workers, queues, readiness and the enqueue path every app uses."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class ScheduledTask:
    """A beat schedule entry as the system page shows it: what it runs, how often, when it runs next."""

    name: str
    task: str
    enabled: bool
    schedule: str  # in words: "every 15 seconds", "daily at 03:00 (UTC)"
    last_run_at: datetime.datetime | None
    total_run_count: int
    next_run_at: datetime.datetime | None  # None: paused, or a one-off that has run
    overdue: bool  # the next run is well past: beat is not running

    @property
    def first_run(self) -> bool:
        return self.total_run_count == 0 and self.last_run_at is None


# Past its due time by this much, an entry is overdue (beat ticks at least every few seconds).
OVERDUE_AFTER = datetime.timedelta(minutes=1)
_UNITS = [("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)]
_DAYS = ["Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays"]


def describe_interval(seconds: float) -> str:
    """ "every 15 seconds", "every 2 minutes", "every day", "every 90 seconds"."""
    whole = round(seconds)
    for unit, size in _UNITS:
        if whole >= size and whole % size == 0:
            count = whole // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def describe_crontab(crontab) -> str:
    """Common cron forms in words; anything else as the cron expression itself, with its time zone."""
    minute, hour = str(crontab.minute), str(crontab.hour)
    dom, month, dow = str(crontab.day_of_month), str(crontab.month_of_year), str(crontab.day_of_week)
    zone = f" ({crontab.timezone})"
    every_day = dom == month == "*"
    if every_day and dow == "*" and hour == "*" and minute.startswith("*/") and minute[2:].isdigit():
        return describe_interval(int(minute[2:]) * 60)
    if every_day and dow == "*" and hour == "*" and minute.isdigit():
        return f"hourly at :{int(minute):02d}"
    if every_day and minute.isdigit() and hour.isdigit():
        at = f"{int(hour):02d}:{int(minute):02d}{zone}"
        if dow == "*":
            return f"daily at {at}"
        if dow.isdigit() and int(dow) in range(7):
            return f"on {_DAYS[int(dow)]} at {at}"
    return f"cron {minute} {hour} {dom} {month} {dow}{zone}"


def _describe(entry) -> str:
    if entry.interval_id:
        every = datetime.timedelta(**{entry.interval.period: entry.interval.every})
        return describe_interval(every.total_seconds())
    if entry.crontab_id:
        return describe_crontab(entry.crontab)
    if entry.clocked_id:
        return f"once at {timezone.localtime(entry.clocked.clocked_time):%Y-%m-%d %H:%M}"
    return str(entry.schedule)


def next_run(entry, now: datetime.datetime) -> datetime.datetime | None:
    """When beat runs `entry` next.

    Beat counts an entry that never ran from when it registered it (at start-up, which saves the
    entry: `date_changed`), so a 24-hour entry first runs a day after beat started; an entry with a
    `start_time` in the future waits for it.
    """
    if not entry.enabled or (entry.one_off and entry.total_run_count):
        return None
    if entry.clocked_id:
        return entry.clocked.clocked_time
    if entry.start_time and entry.start_time > now:
        return entry.start_time
    since = entry.last_run_at or entry.date_changed or now
    # Negative when the run is past due (beat is not running, or is about to send it). The schedule reads
    # the clock itself, a moment after `now`: round to the second.
    due = now + entry.schedule.remaining_estimate(since) + datetime.timedelta(milliseconds=500)
    return due.replace(microsecond=0)


def periodic_tasks() -> list[ScheduledTask]:
    """Beat schedule entries (from django-celery-beat) with their schedule in words and their next run."""
    from django_celery_beat.models import PeriodicTask

    now = timezone.now()
    rows = []
    for entry in PeriodicTask.objects.select_related("interval", "crontab", "clocked", "solar").order_by("name"):
        due = next_run(entry, now)
        rows.append(
            ScheduledTask(
                name=entry.name,
                task=entry.task,
                enabled=entry.enabled,
                schedule=_describe(entry),
                last_run_at=entry.last_run_at,
                total_run_count=entry.total_run_count,
                next_run_at=due,
                overdue=due is not None and now - due > OVERDUE_AFTER,
            )
        )
    return rows


def run_check(check: Callable[[], str | None]) -> dict[str, Any]:
    error = check()
    return {"ok": error is None, "error": error}
