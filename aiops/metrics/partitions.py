"""Partitions of the sample and rollup tables on PostgreSQL, and retention on every database.

Samples are partitioned by day (`aiops_sample_pYYYYMMDD`): raw retention is counted in days, so
dropping yesterday's oldest day is one `DROP TABLE`, and a query over the last hour reads one or
two partitions. Rollups are partitioned by month (`aiops_rollup5m_pYYYYMM`): 400 days of
5-minute rows are ~115,000 rows per series, and monthly partitions keep the count of partitions
small (14) for the planner while retention still frees space a month at a time.

`maintain` creates the partitions ahead (today and the next `AHEAD_DAYS` days; this month and the
next) and drops those wholly past retention; the writer creates a missing partition itself, so a
sample never fails for want of one. SQLite has plain tables: retention is a DELETE there.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from opsportal.partitions import create_partition as _create
from opsportal.partitions import drop_partition as _drop
from opsportal.partitions import list_partitions as partitions

from ..models import Rollup5m, Sample, Series

AHEAD_DAYS = 3
SAMPLE_PARTITION = re.compile(r"aiops_sample_p(\d{8})")
ROLLUP_PARTITION = re.compile(r"aiops_rollup5m_p(\d{6})")
UTC = datetime.UTC

_known_days: set[datetime.date] = set()
_known_months: set[datetime.date] = set()


@dataclass
class Maintenance:
    """What one `maintain` run did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0
    deleted_series: int = 0


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def sample_partition_name(day: datetime.date) -> str:
    return f"aiops_sample_p{day:%Y%m%d}"


def rollup_partition_name(month: datetime.date) -> str:
    return f"aiops_rollup5m_p{month:%Y%m}"


def _next_month(month: datetime.date) -> datetime.date:
    return (month.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)


def ensure_sample_partitions(days: set[datetime.date]) -> list[str]:
    """The daily partitions for `days`, created when missing (cached per process); names of those created."""
    created = []
    for day in sorted(days - _known_days):
        name = sample_partition_name(day)
        if _create("aiops_sample", name, day, day + datetime.timedelta(days=1)):
            created.append(name)
        _known_days.add(day)
    return created


def ensure_rollup_partitions(months: set[datetime.date]) -> list[str]:
    created = []
    for month in sorted({m.replace(day=1) for m in months} - _known_months):
        name = rollup_partition_name(month)
        if _create("aiops_rollup5m", name, month, _next_month(month)):
            created.append(name)
        _known_months.add(month)
    return created


def forget_known() -> None:
    """Forget which partitions this process saw (after partitions were dropped behind its back)."""
    _known_days.clear()
    _known_months.clear()


def raw_cutoff(now: datetime.datetime) -> datetime.datetime:
    """Samples older than this are past raw retention."""
    return now - datetime.timedelta(days=settings.METRICS_RAW_RETENTION_DAYS)


def rollup_cutoff(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(days=settings.METRICS_ROLLUP_RETENTION_DAYS)


def maintain(now: datetime.datetime | None = None) -> Maintenance:
    """Create the partitions ahead, drop (or on SQLite delete) what is past retention, delete forgotten series.

    A series is deleted once it has not been seen for the rollup retention: none of its samples or
    rollups can be left by then.
    """
    now = now or datetime.datetime.now(UTC)
    done = Maintenance()
    raw_cut, rollup_cut = raw_cutoff(now), rollup_cutoff(now)
    if partitioned():
        today = now.astimezone(UTC).date()
        done.created += ensure_sample_partitions({today + datetime.timedelta(days=n) for n in range(AHEAD_DAYS + 1)})
        done.created += ensure_rollup_partitions({today.replace(day=1), _next_month(today)})
        for name in partitions("aiops_sample"):
            match = SAMPLE_PARTITION.fullmatch(name)
            if match is None:
                continue
            day = datetime.datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
            if day + datetime.timedelta(days=1) <= raw_cut:
                _drop(name)
                _known_days.discard(day.date())
                done.dropped.append(name)
        for name in partitions("aiops_rollup5m"):
            match = ROLLUP_PARTITION.fullmatch(name)
            if match is None:
                continue
            month = datetime.datetime.strptime(match.group(1), "%Y%m").replace(tzinfo=UTC)
            upper = datetime.datetime.combine(_next_month(month.date()), datetime.time(), tzinfo=UTC)
            if upper <= rollup_cut:
                _drop(name)
                _known_months.discard(month.date())
                done.dropped.append(name)
    else:
        done.deleted_rows += Sample.objects.filter(time__lt=raw_cut)._raw_delete(Sample.objects.db)
        done.deleted_rows += Rollup5m.objects.filter(bucket__lt=rollup_cut)._raw_delete(Rollup5m.objects.db)
    _, deleted = Series.objects.filter(last_seen_at__lt=rollup_cut).delete()
    done.deleted_series = deleted.get(Series._meta.label, 0)
    return done
