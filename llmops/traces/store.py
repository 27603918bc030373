"""The span table and the rows that total it: COPY writes, day partitions, retention.

`write(spans)` stores one decoded export in the caller's transaction: the spans by COPY (PostgreSQL;
one partition per day of their start, created when missing) or bulk insert (SQLite, one plain table),
then the end users, sessions and traces they belong to, each with one multi-row
`INSERT ... ON CONFLICT DO UPDATE` that adds this export's counts, tokens and cost to what earlier
exports stored. The additions are done by the database, so exports of one trace arriving at once in
two processes both count; rows are written in key order so two such exports cannot deadlock.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from opsportal.partitions import DayPartitions, copy_field

from ..models import EndUser, Session, Span, Trace
from .decode import SpanRecord

UTC = datetime.UTC
TABLE = "llmops_span"
AHEAD_DAYS = 2
# Spans per COPY write: PostgreSQL indexes one chunk while the next is formatted.
COPY_CHUNK = 128
COLUMNS = (
    "start_time", "end_time", "duration_ms", "trace_id", "span_id", "parent_span_id", "name", "kind", "service",
    "status", "status_message", "operation", "provider", "model", "request_model", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost", "time_to_first_token_ms", "session_key",
    "user_key", "prompt_name", "prompt_version_number", "prompt_version_id", "input", "output", "input_truncated",
    "output_truncated", "parameters", "attributes", "events", "resource",
)  # fmt: skip
DAYS = DayPartitions(TABLE)
NULL = "\\N"


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def _time(ns: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ns / 1e9, UTC)


def _json(value: object) -> str:
    """JSON for a jsonb column: PostgreSQL refuses the NUL character, escaped or not."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("\\u0000", "") if "\\u0000" in text else text


def _number(value: object) -> str:
    return NULL if value is None else str(value)


def _copy_row(span: SpanRecord) -> str:
    m = span.mapped
    fields = (
        _time(span.start_ns).isoformat(sep=" "), _time(span.end_ns).isoformat(sep=" "), repr(span.duration_ms),
        span.trace_id, span.span_id, span.parent_span_id, copy_field(span.name), span.kind, copy_field(span.service),
        span.status, copy_field(span.status_message), copy_field(m.operation), copy_field(m.provider),
        copy_field(m.model), copy_field(m.request_model), _number(m.input_tokens), _number(m.output_tokens),
        _number(m.cache_read_tokens), _number(m.cache_write_tokens), _number(m.reasoning_tokens), _number(span.cost),
        _number(m.time_to_first_token_ms), copy_field(m.session_key), copy_field(m.user_key),
        copy_field(m.prompt_name), _number(m.prompt_version_number), _number(span.prompt_version_id),
        copy_field(span.input), copy_field(span.output), "t" if span.input_truncated else "f",
        "t" if span.output_truncated else "f", copy_field(_json(m.parameters)) if m.parameters else "{}",
        copy_field(_json(m.attributes)) if m.attributes else "{}", copy_field(_json(m.events)) if m.events else "[]",
        copy_field(span.resource_json.replace("\\u0000", "")),
    )  # fmt: skip
    return "\t".join(fields) + "\n"


def _copy(spans: Sequence[SpanRecord]) -> None:
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for start in range(0, len(spans), COPY_CHUNK):
            copy.write("".join([_copy_row(span) for span in spans[start : start + COPY_CHUNK]]))


def _model(span: SpanRecord) -> Span:
    m = span.mapped
    return Span(
        start_time=_time(span.start_ns), end_time=_time(span.end_ns), duration_ms=span.duration_ms,
        trace_id=span.trace_id, span_id=span.span_id, parent_span_id=span.parent_span_id, name=span.name,
        kind=span.kind, service=span.service, status=span.status, status_message=span.status_message,
        operation=m.operation, provider=m.provider, model=m.model, request_model=m.request_model,
        input_tokens=m.input_tokens, output_tokens=m.output_tokens, cache_read_tokens=m.cache_read_tokens,
        cache_write_tokens=m.cache_write_tokens, reasoning_tokens=m.reasoning_tokens,
        cost=None if span.cost is None else Decimal(str(span.cost)), time_to_first_token_ms=m.time_to_first_token_ms,
        session_key=m.session_key, user_key=m.user_key, prompt_name=m.prompt_name,
        prompt_version_number=m.prompt_version_number, prompt_version_id=span.prompt_version_id, input=span.input,
        output=span.output, input_truncated=span.input_truncated, output_truncated=span.output_truncated,
        parameters=json.loads(_json(m.parameters)), attributes=json.loads(_json(m.attributes)),
        events=json.loads(_json(m.events)), resource=json.loads(span.resource_json),
    )  # fmt: skip


def write_spans(spans: Sequence[SpanRecord]) -> None:
    """The span rows alone (COPY on PostgreSQL), in the caller's transaction."""
    if not spans:
        return
    if not partitioned():
        Span.objects.bulk_create([_model(span) for span in spans], batch_size=200)
        return
    DAYS.write({_time(span.start_ns).date() for span in spans}, lambda retrying: _copy(spans))


@dataclass
class _Totals:
    """What one export adds to a trace, session or end user."""

    first_ns: int
    last_ns: int
    spans: int = 0
    generations: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    name: str = ""
    service: str = ""
    model: str = ""
    model_start_ns: int = 0
    models: set[str] = field(default_factory=set)
    session_key: str = ""
    user_key: str = ""
    prompt_version_id: int | None = None

    def add(self, span: SpanRecord) -> None:
        m = span.mapped
        self.first_ns = min(self.first_ns, span.start_ns)
        self.last_ns = max(self.last_ns, span.end_ns)
        self.spans += 1
        self.errors += span.status == "error"
        self.input_tokens += m.input_tokens or 0
        self.output_tokens += m.output_tokens or 0
        self.cost += span.cost or 0.0
        if not span.parent_span_id:
            self.name, self.service = span.name, span.service
        elif not self.service:
            self.service = span.service
        if m.model:
            self.generations += 1
            self.models.add(m.model)
            if not self.model or span.start_ns < self.model_start_ns:
                self.model, self.model_start_ns = m.model, span.start_ns
        if span.prompt_version_id is not None and self.prompt_version_id is None:
            self.prompt_version_id = span.prompt_version_id
        self.session_key = self.session_key or m.session_key
        self.user_key = self.user_key or m.user_key


def _totals(spans: Sequence[SpanRecord], key: str) -> dict[str, _Totals]:
    found: dict[str, _Totals] = {}
    for span in spans:
        value = (
            span.trace_id if key == "trace" else span.mapped.session_key if key == "session" else span.mapped.user_key
        )
        if not value:
            continue
        totals = found.get(value)
        if totals is None:
            totals = found[value] = _Totals(span.start_ns, span.end_ns)
        totals.add(span)
    return found


class _Dialect:
    """The few SQL spellings that differ between PostgreSQL and SQLite."""

    def __init__(self) -> None:
        self.pg = partitioned()
        self.least, self.greatest = ("LEAST", "GREATEST") if self.pg else ("MIN", "MAX")
        if self.pg:
            self.latency = (
                "EXTRACT(EPOCH FROM ({g}(t.end_time, EXCLUDED.end_time) - {l}(t.start_time, EXCLUDED.start_time)))"
                " * 1000"
            )
            self.models = (
                "CASE WHEN t.model_names @> EXCLUDED.model_names THEN t.model_names ELSE "
                "(SELECT jsonb_agg(DISTINCT v ORDER BY v) "
                "FROM jsonb_array_elements(t.model_names || EXCLUDED.model_names) v) END"
            )
        else:
            self.latency = (
                # julianday() is a float of days (about 50 microseconds apart today): rounded to 0.1 ms.
                "ROUND((julianday({g}(t.end_time, EXCLUDED.end_time)) "
                "- julianday({l}(t.start_time, EXCLUDED.start_time))) * 86400000.0, 1)"
            )
            self.models = (
                "(SELECT json_group_array(value) FROM (SELECT value FROM json_each(t.model_names) UNION "
                "SELECT value FROM json_each(EXCLUDED.model_names) ORDER BY 1))"
            )
        self.latency = self.latency.format(g=self.greatest, l=self.least)

    def time(self, ns: int) -> str:
        """A time as the row source below reads it (SQLite: Django's own text form of a UTC time)."""
        moment = _time(ns)
        return moment.isoformat() if self.pg else connection.ops.adapt_datetimefield_value(moment)

    def rows(self, columns: Sequence[tuple[str, str]]) -> str:
        """`SELECT ... FROM` one JSON parameter holding every row as an array, typed by `columns`.

        One parameter for a whole export: a statement of thousands of placeholders costs more to bind
        (psycopg parses such a query in Python each time) than the database takes to run it.
        """
        if self.pg:
            values = ", ".join(
                f"(e->{i})" if kind == "jsonb" else f"(e->>{i})::{kind}" for i, (_, kind) in enumerate(columns)
            )
            return f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) e"  # noqa: S608 (no value in it)
        values = ", ".join(f"json_extract(e.value, '$[{i}]')" for i in range(len(columns)))
        # WHERE: SQLite reads ON CONFLICT after a SELECT only behind one.
        return f"SELECT {values} FROM json_each(%s) e WHERE true"  # noqa: S608 (no value in it)


def _upsert(sql: _Dialect, table: str, columns: Sequence[tuple[str, str]], rows: list[list], conflict: str,
            updates: str, returning: str = "") -> list[tuple]:  # fmt: skip
    """INSERT the rows (arrays in `columns` order), or on `conflict` apply `updates`; the RETURNING rows."""
    names = ", ".join(name for name, _ in columns)
    statement = (
        f"INSERT INTO {table} AS t ({names}) {sql.rows(columns)} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}" + (f" RETURNING {returning}" if returning else "")
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [json.dumps(rows)])
        return cursor.fetchall() if returning else []


TOTALS = ("generations = t.generations + EXCLUDED.generations, input_tokens = t.input_tokens + EXCLUDED.input_tokens, "
          "output_tokens = t.output_tokens + EXCLUDED.output_tokens, cost = t.cost + EXCLUDED.cost")  # fmt: skip


def _upsert_users(users: dict[str, _Totals], sql: _Dialect) -> dict[str, int]:
    if not users:
        return {}
    columns = [("external_id", "varchar"), ("first_seen", "timestamptz"), ("last_seen", "timestamptz"),
               ("generations", "bigint"), ("input_tokens", "bigint"), ("output_tokens", "bigint"),
               ("cost", "numeric")]  # fmt: skip
    rows = [[key, sql.time(t.first_ns), sql.time(t.last_ns), t.generations, t.input_tokens, t.output_tokens, t.cost]
            for key, t in sorted(users.items())]  # fmt: skip
    updates = (f"first_seen = {sql.least}(t.first_seen, EXCLUDED.first_seen), "
               f"last_seen = {sql.greatest}(t.last_seen, EXCLUDED.last_seen), {TOTALS}")  # fmt: skip
    found = _upsert(sql, EndUser._meta.db_table, columns, rows, "external_id", updates, "id, external_id")
    return {key: pk for pk, key in found}


def _upsert_sessions(sessions: dict[str, _Totals], users: dict[str, int], sql: _Dialect) -> dict[str, int]:
    if not sessions:
        return {}
    columns = [("key", "varchar"), ("service", "varchar"), ("end_user_id", "bigint"), ("first_seen", "timestamptz"),
               ("last_seen", "timestamptz"), ("generations", "bigint"), ("input_tokens", "bigint"),
               ("output_tokens", "bigint"), ("cost", "numeric")]  # fmt: skip
    rows = [[key, t.service, users.get(t.user_key), sql.time(t.first_ns), sql.time(t.last_ns), t.generations,
             t.input_tokens, t.output_tokens, t.cost] for key, t in sorted(sessions.items())]  # fmt: skip
    updates = ("end_user_id = COALESCE(t.end_user_id, EXCLUDED.end_user_id), "
               f"first_seen = {sql.least}(t.first_seen, EXCLUDED.first_seen), "
               f"last_seen = {sql.greatest}(t.last_seen, EXCLUDED.last_seen), {TOTALS}")  # fmt: skip
    found = _upsert(sql, Session._meta.db_table, columns, rows, "key", updates, "id, key")
    return {key: pk for pk, key in found}


def _upsert_traces(traces: dict[str, _Totals], sessions: dict[str, int], users: dict[str, int], sql: _Dialect,
                   now: str) -> None:  # fmt: skip
    columns = [("trace_id", "varchar"), ("name", "varchar"), ("service", "varchar"), ("start_time", "timestamptz"),
               ("end_time", "timestamptz"), ("latency_ms", "float8"), ("spans", "integer"),
               ("generations", "integer"), ("errors", "integer"), ("input_tokens", "bigint"),
               ("output_tokens", "bigint"), ("cost", "numeric"), ("model", "varchar"), ("model_names", "jsonb"),
               ("session_id", "bigint"), ("end_user_id", "bigint"), ("prompt_version_id", "bigint"),
               ("updated_at", "timestamptz")]  # fmt: skip
    rows = [
        [trace_id, t.name, t.service, sql.time(t.first_ns), sql.time(t.last_ns), (t.last_ns - t.first_ns) / 1e6,
         t.spans, t.generations, t.errors, t.input_tokens, t.output_tokens, t.cost, t.model, sorted(t.models),
         sessions.get(t.session_key), users.get(t.user_key), t.prompt_version_id, now]
        for trace_id, t in sorted(traces.items())
    ]  # fmt: skip
    updates = (
        "name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE t.name END, "
        "service = CASE WHEN EXCLUDED.name <> '' OR t.service = '' THEN EXCLUDED.service ELSE t.service END, "
        f"start_time = {sql.least}(t.start_time, EXCLUDED.start_time), "
        f"end_time = {sql.greatest}(t.end_time, EXCLUDED.end_time), latency_ms = {sql.latency}, "
        "spans = t.spans + EXCLUDED.spans, generations = t.generations + EXCLUDED.generations, "
        "errors = t.errors + EXCLUDED.errors, input_tokens = t.input_tokens + EXCLUDED.input_tokens, "
        "output_tokens = t.output_tokens + EXCLUDED.output_tokens, cost = t.cost + EXCLUDED.cost, "
        "model = CASE WHEN t.model = '' THEN EXCLUDED.model ELSE t.model END, "
        f"model_names = {sql.models}, session_id = COALESCE(t.session_id, EXCLUDED.session_id), "
        "end_user_id = COALESCE(t.end_user_id, EXCLUDED.end_user_id), "
        "prompt_version_id = COALESCE(t.prompt_version_id, EXCLUDED.prompt_version_id), "
        "updated_at = EXCLUDED.updated_at"
    )
    _upsert(sql, Trace._meta.db_table, columns, rows, "trace_id", updates)


def write(spans: Sequence[SpanRecord]) -> None:
    """Store an export's spans and fold them into their traces, sessions and end users (caller's transaction)."""
    if not spans:
        return
    write_spans(spans)
    sql = _Dialect()
    users = _upsert_users(_totals(spans, "user"), sql)
    sessions = _upsert_sessions(_totals(spans, "session"), users, sql)
    _upsert_traces(_totals(spans, "trace"), sessions, users, sql, sql.time(time.time_ns()))


@dataclass
class Maintenance:
    """What one retention run did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_spans: int = 0
    deleted_traces: int = 0
    deleted_sessions: int = 0
    deleted_users: int = 0


def cutoff(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(days=settings.LLMOPS_TRACES_RETENTION_DAYS)


def maintain(now: datetime.datetime | None = None) -> Maintenance:
    """Create the span partitions ahead, drop (SQLite: delete) the days wholly past LLMOPS_TRACES_RETENTION_DAYS,
    and delete the traces, sessions and end users last seen before then."""
    now = now or timezone.now()
    done = Maintenance()
    before = cutoff(now)
    if partitioned():
        done.created = DAYS.ensure_ahead(now, AHEAD_DAYS)
        done.dropped = DAYS.drop_before(before)
    else:
        done.deleted_spans = Span.objects.filter(start_time__lt=before)._raw_delete(Span.objects.db)
    done.deleted_traces, _ = Trace.objects.filter(end_time__lt=before).delete()
    done.deleted_sessions, _ = Session.objects.filter(last_seen__lt=before).delete()
    done.deleted_users, _ = EndUser.objects.filter(last_seen__lt=before).delete()
    return done


def partition_sizes() -> list[tuple[str, int, int]]:
    """(partition, estimated rows, bytes on disk incl. indexes) for each day, oldest first (PostgreSQL)."""
    return DAYS.sizes() if partitioned() else []
