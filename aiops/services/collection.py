"""Scheduling metric collection and keeping its storage: dispatch, rollups, partitions and retention.

`dispatch_due_collection` claims the targets and watched queries that are due (`SELECT ... FOR
UPDATE SKIP LOCKED` on PostgreSQL, so two dispatchers never claim the same row), moves their
`next_due_at` on (a worker that was down does not cause a burst of back-dated scrapes: the next
run is now, then every interval) and sends `aiops.tasks.collect_targets` / `collect_queries`
tasks, in batches, timed to each run (a countdown within the dispatch horizon). Any number of
`collection` workers share those tasks.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db import connection, transaction
from django.utils import timezone

from opsportal import enqueue

from ..metrics import partitions, rollups
from ..models import ScrapeTarget, WatchedQuery

DISPATCH_HORIZON_SECONDS = 5.0
DISPATCH_BATCH = 1000
TASK_BATCH = 50


def _claim(model: type, now: datetime.datetime, horizon: datetime.datetime) -> dict[float, list[int]]:
    """Claim the rows due before `horizon` and move them on; {run time: ids} of the runs to send."""
    runs: dict[float, list[int]] = defaultdict(list)
    rows = model.objects.filter(enabled=True, next_due_at__lte=horizon).order_by("next_due_at")
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    claimed = list(rows.only("pk", "interval_seconds", "next_due_at")[:DISPATCH_BATCH])
    for row in claimed:
        interval = datetime.timedelta(seconds=row.interval_seconds)
        due = max(row.next_due_at, now)  # a missed schedule is not caught up with a burst
        while due <= horizon:
            runs[due.timestamp()].append(row.pk)
            due += interval
        row.next_due_at = due
    model.objects.bulk_update(claimed, ["next_due_at"])
    return runs


def dispatch_due_collection(*, now: datetime.datetime | None = None) -> int:
    """Claim the due targets and watched queries and send their collection tasks; how many runs were sent."""
    now = now or timezone.now()
    horizon = now + datetime.timedelta(seconds=DISPATCH_HORIZON_SECONDS)
    sent = 0
    with transaction.atomic():
        for model, task in (
            (ScrapeTarget, "aiops.tasks.collect_targets"),
            (WatchedQuery, "aiops.tasks.collect_queries"),
        ):
            for run_at, ids in sorted(_claim(model, now, horizon).items()):
                countdown = max(0.0, run_at - now.timestamp())
                for start in range(0, len(ids), TASK_BATCH):
                    enqueue.enqueue_on_commit(task, ids[start : start + TASK_BATCH], countdown=countdown or None)
                sent += len(ids)
    return sent


def roll_up_metrics() -> int:
    """Roll up the complete 5-minute buckets since the checkpoint; rollup rows written."""
    return rollups.roll_up()


def maintain_metric_storage() -> partitions.Maintenance:
    """Create partitions ahead, drop those past retention, delete series not seen for the rollup retention."""
    with transaction.atomic():
        return partitions.maintain()
