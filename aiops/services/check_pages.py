"""Read-only queries the check pages need beyond `aiops.services.checks`: each latest runs per check.

One query for a whole page of checks (no query per row): on PostgreSQL a LATERAL join reads each
check's newest runs from the `(check, -at)` index; elsewhere (SQLite) a window function over the
last day's runs of those checks.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from ..models import CheckResult

SPARK_RUNS = 30


@dataclass(frozen=True)
class Run:
    """One stored run, as a sparkline draws it."""

    at: datetime.datetime
    up: bool
    latency_ms: float | None


def latest_runs(*, check_ids: list[int], limit: int = SPARK_RUNS) -> dict[int, list[Run]]:
    """Each check's `limit` newest runs, oldest first, in one query (checks without runs: an empty list)."""
    runs: dict[int, list[Run]] = {check_id: [] for check_id in check_ids}
    if not check_ids:
        return runs
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(CheckResult._meta.db_table)
        sql = (
            "SELECT c.id, r.at, r.up, r.latency_ms FROM unnest(%s::bigint[]) AS c(id) "  # noqa: S608
            f"CROSS JOIN LATERAL (SELECT at, up, latency_ms FROM {table} WHERE check_id = c.id "
            "ORDER BY at DESC, id DESC LIMIT %s) AS r"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(check_ids), limit])
            rows = cursor.fetchall()
    else:
        rows = (
            CheckResult.objects.filter(check_obj_id__in=check_ids, at__gte=timezone.now() - datetime.timedelta(days=1))
            .annotate(
                rank=Window(RowNumber(), partition_by=[F("check_obj_id")], order_by=[F("at").desc(), F("id").desc()])
            )
            .filter(rank__lte=limit)
            .values_list("check_obj_id", "at", "up", "latency_ms")
        )
    for check_id, at, up, latency_ms in rows:
        runs[check_id].append(Run(at=at, up=bool(up), latency_ms=latency_ms))
    for found in runs.values():
        found.sort(key=lambda run: run.at)
    return runs
