"""Range partitions by day on PostgreSQL, and COPY's text format: what the portal's big append-only tables share.

A table partitioned by day (`<table>_pYYYYMMDD`) gets a day's partition when a row of that day first
arrives (and a few days ahead by a periodic task); retention drops whole partitions, so deleting a day
costs one `DROP TABLE` instead of a long DELETE and vacuum. Used by the metric samples and log records
(aiops) and the spans (llmops).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

import psycopg
from django.db import DatabaseError, connection, transaction

UTC = datetime.UTC
# COPY's text format: backslash, tab, newline and carriage return are escaped; NUL cannot be stored.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})


def copy_field(text: str) -> str:
    """`text` as a COPY text field (most text has nothing to escape: checked first, in C)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text or "\x00" in text:
        return text.translate(COPY_ESCAPES)
    return text


def _midnight(day: datetime.date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def create_partition(table: str, name: str, lower: datetime.date, upper: datetime.date) -> bool:
    """Create partition `name` of `table` for [lower, upper) unless it exists; True when this call created it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return False
        try:
            # A savepoint: another worker creating the same partition at the same moment is not an error.
            with transaction.atomic():
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{_midnight(lower)}') TO ('{_midnight(upper)}')"
                )
        except DatabaseError:
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is None:
                raise
            return False
    return True


def list_partitions(table: str) -> list[str]:
    """The names of `table`'s partitions, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE parent.relname = %s ORDER BY 1",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def drop_partition(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


class DayPartitions:
    """The daily partitions of one table; which exist is cached per process (`forget` after a drop elsewhere)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.pattern = re.compile(rf"{re.escape(table)}_p(\d{{8}})")
        self._known: set[datetime.date] = set()

    def name(self, day: datetime.date) -> str:
        return f"{self.table}_p{day:%Y%m%d}"

    def ensure(self, days: set[datetime.date]) -> list[str]:
        """The partitions for `days`, created when missing; names of those this call created."""
        created = []
        for day in sorted(days - self._known):
            name = self.name(day)
            if create_partition(self.table, name, day, day + datetime.timedelta(days=1)):
                created.append(name)
            self._known.add(day)
        return created

    def forget(self) -> None:
        self._known.clear()

    def write(self, days: set[datetime.date], copy: Callable[[bool], None]) -> None:
        """Run `copy(retrying)` into the partitions of `days` (created when missing), in a savepoint.

        A partition this process thought it had may have been dropped (retention, or a rolled-back
        transaction created it): then make sure and run `copy(True)` once more.
        """
        self.ensure(days)
        try:
            with transaction.atomic():
                copy(False)
        except (DatabaseError, psycopg.Error):
            self.forget()
            self.ensure(days)
            copy(True)

    def ensure_ahead(self, now: datetime.datetime, ahead_days: int) -> list[str]:
        today = now.astimezone(UTC).date()
        return self.ensure({today + datetime.timedelta(days=n) for n in range(ahead_days + 1)})

    def drop_before(self, cutoff: datetime.datetime) -> list[str]:
        """Drop the partitions whose whole day is before `cutoff`; their names."""
        dropped = []
        for name in list_partitions(self.table):
            match = self.pattern.fullmatch(name)
            if match is None:
                continue
            day = datetime.datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
            if day + datetime.timedelta(days=1) <= cutoff:
                drop_partition(name)
                self._known.discard(day.date())
                dropped.append(name)
        return dropped

    def sizes(self) -> list[tuple[str, int, int]]:
        """(partition, estimated rows, bytes on disk incl. indexes) for each day, oldest first."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_inherits i "
                "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE p.relname = %s ORDER BY 1",
                [self.table],
            )
            return [(name, max(rows, 0), size) for name, rows, size in cursor.fetchall()]
