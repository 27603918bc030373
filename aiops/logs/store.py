"""The log record table: day partitions on PostgreSQL (`aiops_logrecord_pYYYYMMDD`), COPY writes, retention.

A day's partition is created when a record of that day first arrives (and a few days ahead by the
periodic task); retention drops whole partitions, so deleting a day of logs costs one `DROP TABLE`
instead of a long DELETE and vacuum. SQLite has one plain table: retention is a DELETE there.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from opsportal.partitions import COPY_ESCAPES as COPY_ESCAPES  # bench_logs escapes its bodies with it
from opsportal.partitions import DayPartitions, copy_field

from ..models import LogRecord, LogTemplateBucket
from .decode import ParsedRecord

UTC = datetime.UTC
TABLE = "aiops_logrecord"
AHEAD_DAYS = 2
FUTURE = datetime.timedelta(hours=1)
COPY_CHUNK = 500
COLUMNS = ("time", "service", "severity", "body", "attributes", "trace_id", "span_id", "template_id")

DAYS = DayPartitions(TABLE)


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(day: datetime.date) -> str:
    return DAYS.name(day)


def ensure_partitions(days: set[datetime.date]) -> list[str]:
    """The daily partitions for `days`, created when missing (cached per process); names of those created."""
    return DAYS.ensure(days)


def forget_known() -> None:
    DAYS.forget()


def accepted_window(now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """Records with a time outside [oldest, newest) are refused: past retention, or more than an hour ahead."""
    return now - datetime.timedelta(days=settings.LOGS_RETENTION_DAYS), now + FUTURE


def _text_row(record: ParsedRecord, template_id: int, attributes_json: dict | None = None) -> str:
    """One COPY text line; `attributes_json` caches the encoded attributes of a batch (records share them)."""
    attributes = record.attributes
    if not attributes:
        encoded = "{}"
    elif attributes_json is None:
        encoded = copy_field(json.dumps(attributes, ensure_ascii=False))
    else:
        key = tuple(attributes.items())
        encoded = attributes_json.get(key)
        if encoded is None:
            encoded = attributes_json[key] = copy_field(json.dumps(attributes, ensure_ascii=False))
    return (
        f"{record.time.isoformat(sep=' ')}\t{copy_field(record.service)}\t{record.severity}\t"
        f"{copy_field(record.body)}\t{encoded}\t{record.trace_id}\t{record.span_id}\t{template_id}\n"
    )


def write_records(
    records: Sequence[ParsedRecord], template_ids: Sequence[int], each_chunk: Callable[[int, int], None] | None = None
) -> None:
    """Store the records (each with its template id) in the caller's transaction.

    `each_chunk(start, end)` is called for each chunk of records once it is on its way to PostgreSQL: work
    done there (pure Python, no queries: the connection is busy with the COPY) overlaps the server's.
    """
    if not records:
        return
    if not partitioned():
        if each_chunk is not None:
            each_chunk(0, len(records))
        LogRecord.objects.bulk_create(
            [
                LogRecord(
                    time=r.time,
                    service=r.service,
                    severity=r.severity,
                    body=r.body,
                    attributes=r.attributes,
                    trace_id=r.trace_id,
                    span_id=r.span_id,
                    template_id=t,
                )
                for r, t in zip(records, template_ids, strict=True)
            ],
            batch_size=500,
        )
        return
    DAYS.write(
        {r.time.date() for r in records},
        lambda retrying: _copy_records(records, template_ids, None if retrying else each_chunk),
    )


def _copy_records(
    records: Sequence[ParsedRecord], template_ids: Sequence[int], each_chunk: Callable[[int, int], None] | None
) -> None:
    """COPY the records in chunks, so PostgreSQL indexes one chunk while the next is formatted."""
    encoded: dict = {}
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for start in range(0, len(records), COPY_CHUNK):
            end = start + COPY_CHUNK
            chunk = zip(records[start:end], template_ids[start:end], strict=True)
            copy.write("".join([_text_row(r, t, encoded) for r, t in chunk]))
            if each_chunk is not None:
                each_chunk(start, min(end, len(records)))


def copy_text(data: str) -> None:
    """COPY tab-separated lines in `COLUMNS` order into the record table."""
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        copy.write(data)


@dataclass
class Maintenance:
    """What one retention run did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0
    deleted_buckets: int = 0


def maintain(now: datetime.datetime | None = None) -> Maintenance:
    """Create the partitions ahead and drop (SQLite: delete) the days wholly past LOGS_RETENTION_DAYS."""
    now = now or datetime.datetime.now(UTC)
    done = Maintenance()
    cutoff, _ = accepted_window(now)
    if partitioned():
        done.created = DAYS.ensure_ahead(now, AHEAD_DAYS)
        done.dropped = DAYS.drop_before(cutoff)
    else:
        done.deleted_rows = LogRecord.objects.filter(time__lt=cutoff)._raw_delete(LogRecord.objects.db)
    done.deleted_buckets, _ = LogTemplateBucket.objects.filter(minute__lt=cutoff).delete()
    return done


def partition_sizes() -> list[tuple[str, int, int]]:
    """(partition, estimated rows, bytes on disk incl. indexes) for each day, oldest first (PostgreSQL)."""
    return DAYS.sizes() if partitioned() else []
