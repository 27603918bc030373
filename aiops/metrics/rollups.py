"""5-minute rollups of raw samples: min, max, sum, count, first, last and the counter increase per bucket.

Buckets start at multiples of 300 s since the epoch. A bucket is rolled up once it is older than
the grace time (`grace_seconds`: two minutes, or longer when a watched query is pulled less often,
so that its late samples are in); the checkpoint says how far rollups are complete, and queries
read raw samples after it. Each run also rolls the last bucket before the checkpoint again
(an upsert), for samples that came a little late. NaN samples are left out of rollups.

`increase` is reset-aware: the sum over the bucket's samples of (value - previous value), or
the value itself where it dropped (a counter reset); the previous sample may lie in the bucket
before, so increases of consecutive buckets add up to the increase over their span.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator

from django.db import connection, transaction
from django.db.models import Max

from ..models import Rollup5m, RollupCheckpoint, Sample, WatchedQuery
from . import partitions

BUCKET_SECONDS = 300
GRACE_SECONDS = 120
MAX_GRACE_SECONDS = 3600
CHUNK_SECONDS = 3600
UTC = datetime.UTC

PG_ROLLUP = """
INSERT INTO aiops_rollup5m
    (series_id, bucket, min_value, max_value, sum_value, count, first_value, last_value, increase)
SELECT series_id, bucket, min(value), max(value), sum(value), count(*),
       (array_agg(value ORDER BY time))[1], (array_agg(value ORDER BY time DESC))[1],
       sum(CASE WHEN previous IS NULL THEN 0 WHEN value >= previous THEN value - previous ELSE value END)
FROM (
    SELECT series_id, time, value,
           date_bin('5 minutes', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
           lag(value) OVER (PARTITION BY series_id ORDER BY time) AS previous
    FROM aiops_sample
    WHERE time >= %(scan_from)s AND time < %(until)s AND value <> 'NaN'
) AS samples
WHERE time >= %(since)s
GROUP BY series_id, bucket
ON CONFLICT (series_id, bucket) DO UPDATE SET
    min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value, sum_value = EXCLUDED.sum_value,
    count = EXCLUDED.count, first_value = EXCLUDED.first_value, last_value = EXCLUDED.last_value,
    increase = EXCLUDED.increase
"""


def floor_bucket(at: datetime.datetime) -> datetime.datetime:
    stamp = int(at.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    return datetime.datetime.fromtimestamp(stamp, UTC)


def grace_seconds() -> int:
    """How long after a bucket ends before it is rolled up: long enough for the slowest watched query."""
    slowest = WatchedQuery.objects.filter(enabled=True).aggregate(slowest=Max("interval_seconds"))["slowest"] or 0
    return min(MAX_GRACE_SECONDS, max(GRACE_SECONDS, slowest + 60))


def checkpoint() -> datetime.datetime | None:
    """Every bucket before this is rolled up (None: nothing yet)."""
    row = RollupCheckpoint.objects.order_by("pk").first()
    return row.done_until if row else None


def roll_up(now: datetime.datetime | None = None, *, budget_seconds: float = 60.0) -> int:
    """Roll up the buckets that are complete since the checkpoint, an hour at a time; rows written."""
    now = now or datetime.datetime.now(UTC)
    until = floor_bucket(now - datetime.timedelta(seconds=grace_seconds()))
    done = checkpoint()
    oldest = floor_bucket(partitions.raw_cutoff(now))
    since = oldest if done is None else max(oldest, done - datetime.timedelta(seconds=BUCKET_SECONDS))
    started = datetime.datetime.now(UTC)
    written = 0
    while since < until and (datetime.datetime.now(UTC) - started).total_seconds() < budget_seconds:
        chunk_end = min(until, since + datetime.timedelta(seconds=CHUNK_SECONDS))
        with transaction.atomic():
            written += _roll(since, chunk_end)
            RollupCheckpoint.objects.update_or_create(pk=1, defaults={"done_until": chunk_end})
        since = chunk_end
    return written


def _roll(since: datetime.datetime, until: datetime.datetime) -> int:
    """Roll up the buckets in [since, until) (both on bucket boundaries)."""
    scan_from = since - datetime.timedelta(seconds=BUCKET_SECONDS)
    if partitions.partitioned():
        months = set()
        month = since.date().replace(day=1)
        while month <= until.date():
            months.add(month)
            month = (month + datetime.timedelta(days=32)).replace(day=1)
        partitions.ensure_rollup_partitions(months)
        with connection.cursor() as cursor:
            cursor.execute(PG_ROLLUP, {"scan_from": scan_from, "since": since, "until": until})
            return cursor.rowcount
    return _roll_in_python(scan_from, since, until)


def _samples(scan_from: datetime.datetime, until: datetime.datetime) -> Iterator[tuple[int, float, float]]:
    rows = (
        Sample.objects.filter(time__gte=scan_from, time__lt=until, value__isnull=False)
        .order_by("series_id", "time")
        .values_list("series_id", "time", "value")
    )
    for series_id, at, value in rows.iterator(chunk_size=5000):
        yield series_id, at.timestamp(), value


def _roll_in_python(scan_from: datetime.datetime, since: datetime.datetime, until: datetime.datetime) -> int:
    """SQLite: the same aggregation in Python (no date_bin there)."""
    buckets: dict[tuple[int, int], list[float]] = {}
    previous: dict[int, float] = {}
    first_stamp = since.timestamp()
    for series_id, at, value in _samples(scan_from, until):
        before = previous.get(series_id)
        previous[series_id] = value
        if at < first_stamp:
            continue
        bucket = int(at) // BUCKET_SECONDS * BUCKET_SECONDS
        growth = 0.0 if before is None else (value - before if value >= before else value)
        row = buckets.get((series_id, bucket))
        if row is None:
            buckets[(series_id, bucket)] = [value, value, value, 1, value, value, growth]
        else:
            row[0] = min(row[0], value)
            row[1] = max(row[1], value)
            row[2] += value
            row[3] += 1
            row[5] = value
            row[6] += growth
    # Every series of the range is rolled again, so the range's old rows simply go.
    Rollup5m.objects.filter(bucket__gte=since, bucket__lt=until)._raw_delete(Rollup5m.objects.db)
    Rollup5m.objects.bulk_create(
        [
            Rollup5m(
                series_id=series_id,
                bucket=datetime.datetime.fromtimestamp(bucket, UTC),
                min_value=low,
                max_value=high,
                sum_value=total,
                count=count,
                first_value=first,
                last_value=last,
                increase=growth if not math.isnan(growth) else None,
            )
            for (series_id, bucket), (low, high, total, count, first, last, growth) in buckets.items()
        ],
        batch_size=2000,
    )
    return len(buckets)
