"""Span retention: whole days dropped past LLMOPS_TRACES_RETENTION_DAYS, with the traces, sessions and users
last seen before then; the partitions ahead are made by the same periodic task."""

from __future__ import annotations

import datetime
import time

import pytest
from django.db import connection

from llmops.models import EndUser, Session, Span, Trace
from llmops.services import traces
from llmops.traces import decode, store
from opsportal.celery import BEAT_SCHEDULE

from .test_trace_ingest import GENERATION, TRACE, json_span, otlp_json

DAY_NS = 86400 * 10**9


def _ingest_at(now_ns: int, trace_id: str, session: str) -> None:
    """An export received at `now_ns` (spans a few seconds older)."""
    span = json_span("ab" * 8, "turn", now_ns - 5 * 10**9, attributes={**GENERATION, "gen_ai.conversation.id": session})
    span["traceId"] = trace_id
    traces.ingest_traces(batch=decode.decode_json(otlp_json([span]), now_ns=now_ns))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="day partitions are PostgreSQL's")
def test_days_past_retention_are_dropped_whole_with_their_traces(db, settings):
    settings.LLMOPS_TRACES_RETENTION_DAYS = 7
    now = time.time_ns()
    _ingest_at(now - 10 * DAY_NS, "d" * 32, "old-conversation")
    _ingest_at(now, TRACE, "conv-42")
    old_day = datetime.datetime.fromtimestamp((now - 10 * DAY_NS - 5 * 10**9) / 1e9, datetime.UTC).date()
    assert store.DAYS.name(old_day) in [name for name, _, _ in store.partition_sizes()]

    done = traces.maintain_traces(now=datetime.datetime.fromtimestamp(now / 1e9, datetime.UTC))

    assert store.DAYS.name(old_day) in done.dropped
    assert store.DAYS.name(old_day) not in [name for name, _, _ in store.partition_sizes()]
    today = datetime.datetime.fromtimestamp(now / 1e9, datetime.UTC).date()
    assert {store.DAYS.name(today + datetime.timedelta(days=n)) for n in range(3)} <= {
        name for name, _, _ in store.partition_sizes()
    }
    assert list(Span.objects.values_list("trace_id", flat=True)) == [TRACE]
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [TRACE]
    assert list(Session.objects.values_list("key", flat=True)) == ["conv-42"]
    assert EndUser.objects.count() == 1  # customer-7 was seen today too


def test_an_export_after_the_partition_was_dropped_elsewhere_is_still_stored(db):
    now = time.time_ns()
    _ingest_at(now, TRACE, "conv-42")
    if connection.vendor == "postgresql":
        day = datetime.datetime.fromtimestamp((now - 5 * 10**9) / 1e9, datetime.UTC).date()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {store.DAYS.name(day)}")  # another process's retention run
    _ingest_at(now, "e" * 32, "conv-43")
    assert Span.objects.filter(trace_id="e" * 32).count() == 1


def test_the_retention_task_runs_hourly():
    entry = BEAT_SCHEDULE["llmops.maintain-traces"]
    assert entry["task"] == "llmops.tasks.maintain_traces"
    assert entry["options"]["expires"] < entry["schedule"]
