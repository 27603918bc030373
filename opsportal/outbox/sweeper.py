"""Re-enqueueing what the broker lost: rows still pending after their task should have run."""

from __future__ import annotations

import datetime
import uuid

from django.db.models import Q, QuerySet
from django.utils import timezone

from opsportal.enqueue import resend

from .models import OutboxMessage, Status

# Rows re-enqueued per sweep at most; the next sweep takes the rest.
SWEEP_LIMIT = 1000


def sweep(task_name: str, due: QuerySet, *, limit: int = SWEEP_LIMIT) -> list:
    """Re-send task `task_name` for the oldest `limit` rows of `due` (by created_at).

    Returns the primary keys that went out; a broker failure stops the sweep (the
    next one tries again). Any table with pending rows and a `created_at` can use it.
    """
    keys = list(due.order_by("created_at").values_list("pk", flat=True)[:limit])
    # Task arguments are JSON: a UUID key travels as its text.
    arguments = [str(key) if isinstance(key, uuid.UUID) else key for key in keys]
    return keys[: resend(task_name, arguments)]


def requeue_pending(
    model: type[OutboxMessage],
    task_name: str,
    *,
    older_than: datetime.timedelta = datetime.timedelta(minutes=2),
    overdue_by: datetime.timedelta = datetime.timedelta(minutes=1),
    limit: int = SWEEP_LIMIT,
) -> int:
    """Re-enqueue task `task_name` for the `model` rows never tried and older than `older_than`, or whose retry is
    overdue by `overdue_by` (its task was lost). Returns how many were re-enqueued."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True, created_at__lt=now - older_than) | Q(next_attempt_at__lt=now - overdue_by)
    return len(sweep(task_name, model.objects.filter(due, status=Status.PENDING), limit=limit))
