"""The span table and the rows that total it: COPY writes, day partitions, retention.

`write(spans)` stores one decoded export in the caller's transaction: the spans by COPY (PostgreSQL;
one partition per day of their start, created when missing) or bulk insert (SQLite, one plain table),
then the end users, sessions and traces they belong to, each with one multi-row
`INSERT ... ON CONFLICT DO UPDATE` that adds this export's counts, tokens and cost to what earlier
exports stored. The additions are done by the database, so exports of one trace arriving at once in
two processes both count; rows are written in key order so two such exports cannot deadlock.

On PostgreSQL the three statements are made while PostgreSQL still stores the COPY's last rows and go
in one round trip as prepared statements; a session's or end user's id is looked up by its key in the
statement that needs it. A COPY row is one f-string: the free texts are checked for what COPY escapes
all at once (most have nothing), times are formatted from integers (the date and time of a second
once), JSON comes from one compact encoder made at import.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from opsportal import prepared
from opsportal.partitions import DayPartitions, copy_field

from ..models import EndUser, Session, Span, Trace
from .decode import SpanRecord, without_nul

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


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
# "YYYY-MM-DD HH:MM:SS" of the seconds since the epoch seen lately (spans of an export share a few seconds).
_SECONDS: dict[int, str] = {}
# jsonb text: compact, non-ASCII as it is, anything JSON cannot spell as its str() (one encoder, made once).
_encode = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode
# What COPY's text format escapes (partitions.copy_field): checked once over a row's joined text.
_COPY_SPECIAL = ("\\", "\n", "\r", "\x00")


def _time(ns: int) -> datetime.datetime:
    """A time in ns since the epoch as an aware datetime (exact to the microsecond, like `_stamp`)."""
    return EPOCH + datetime.timedelta(microseconds=ns // 1000)


def _stamp(ns: int) -> str:
    """A time in ns since the epoch as timestamptz text (`YYYY-MM-DD HH:MM:SS.ffffff+00`), microseconds cut."""
    seconds, micros = divmod(ns // 1000, 1_000_000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[seconds] = (EPOCH + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
    return f"{prefix}.{micros:06d}+00"


def _json(value: object) -> str:
    """JSON for a jsonb column: PostgreSQL refuses the NUL character, escaped or not (it is dropped)."""
    text = _encode(value)
    return _encode(without_nul(value)) if "\\u0000" in text else text


def _number(value: object) -> str:
    return NULL if value is None else str(value)


def _copy_row(span: SpanRecord) -> str:
    """One span as a line of COPY text: the free texts (most need no escaping) checked at once, then the row."""
    m = span.mapped
    texts = (
        span.name, span.service, span.status_message, m.operation, m.provider, m.model, m.request_model,
        m.session_key, m.user_key, m.prompt_name, span.input, span.output,
        _json(m.parameters) if m.parameters else "{}", _json(m.attributes) if m.attributes else "{}",
        _json(m.events) if m.events else "[]", span.resource_json,
    )  # fmt: skip
    joined = "\t".join(texts)
    if joined.count("\t") != 15 or any(special in joined for special in _COPY_SPECIAL):
        texts = tuple(map(copy_field, texts))
    name, service, message, operation, provider, model, request_model, session, user, prompt, text_in, text_out, \
        parameters, attributes, events, resource = texts  # fmt: skip
    start, end = span.start_ns, span.end_ns
    cost = span.cost
    return (
        f"{_stamp(start)}\t{_stamp(end)}\t{(end - start) / 1e6!r}\t{span.trace_id}\t{span.span_id}\t"
        f"{span.parent_span_id}\t{name}\t{span.kind}\t{service}\t{span.status}\t{message}\t{operation}\t"
        f"{provider}\t{model}\t{request_model}\t{_number(m.input_tokens)}\t{_number(m.output_tokens)}\t"
        f"{_number(m.cache_read_tokens)}\t{_number(m.cache_write_tokens)}\t{_number(m.reasoning_tokens)}\t"
        f"{NULL if cost is None else repr(cost)}\t{_number(m.time_to_first_token_ms)}\t{session}\t{user}\t{prompt}\t"
        f"{_number(m.prompt_version_number)}\t{_number(span.prompt_version_id)}\t{text_in}\t{text_out}\t"
        f"{'t' if span.input_truncated else 'f'}\t{'t' if span.output_truncated else 'f'}\t{parameters}\t"
        f"{attributes}\t{events}\t{resource}\n"
    )


# `prepare(chunk, may_query)`: readies a chunk's spans before their rows are made (cost, prompt version);
# answers False when it needs the database and may not query (a COPY is under way).
Prepare = Callable[[list[SpanRecord], bool], bool]


def _slices(spans: Sequence[SpanRecord]) -> Iterator[list[SpanRecord]]:
    for start in range(0, len(spans), COPY_CHUNK):
        yield list(spans[start : start + COPY_CHUNK])


def _copy(
    chunks: Iterable[list[SpanRecord]], prepare: Prepare | None = None, meanwhile: Callable[[], object] | None = None
) -> None:
    """COPY the chunks of spans: PostgreSQL stores one while the next is decoded (a lazy batch), readied
    and formatted. `prepare(chunk, False)` readies each chunk during the COPY; when it needs the database
    the COPY is ended there, `prepare(chunk, True)` runs, and another COPY takes the rest. `meanwhile()`
    runs after the last chunk is sent, before waiting for PostgreSQL to finish."""
    chunks = iter(chunks)
    chunk = next(chunks, None)
    with connection.cursor() as cursor:
        while chunk is not None:
            if prepare is not None:
                prepare(chunk, True)
            with cursor.cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                while True:
                    copy.write("".join([_copy_row(span) for span in chunk]).encode())
                    chunk = next(chunks, None)
                    if chunk is None:
                        if meanwhile is not None:
                            meanwhile()
                        break
                    if prepare is not None and not prepare(chunk, False):
                        break


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


DAY_NS = 86400 * 10**9


def _days(spans: Sequence[SpanRecord]) -> set[datetime.date]:
    return {EPOCH.date() + datetime.timedelta(days=day) for day in {span.start_ns // DAY_NS for span in spans}}


def write_spans(spans: Sequence[SpanRecord]) -> None:
    """The span rows alone (COPY on PostgreSQL), in the caller's transaction."""
    if not spans:
        return
    if not partitioned():
        Span.objects.bulk_create([_model(span) for span in spans], batch_size=200)
        return
    DAYS.write(_days(spans), lambda retrying: _copy(_slices(spans)))


@dataclass(slots=True)
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
        if span.start_ns < self.first_ns:
            self.first_ns = span.start_ns
        if span.end_ns > self.last_ns:
            self.last_ns = span.end_ns
        self.spans += 1
        if span.status == "error":
            self.errors += 1
        if m.input_tokens:
            self.input_tokens += m.input_tokens
        if m.output_tokens:
            self.output_tokens += m.output_tokens
        if span.cost:
            self.cost += span.cost
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
        if not self.session_key:
            self.session_key = m.session_key
        if not self.user_key:
            self.user_key = m.user_key


def _add(found: dict[str, _Totals], key: str, span: SpanRecord) -> None:
    totals = found.get(key)
    if totals is None:
        totals = found[key] = _Totals(span.start_ns, span.end_ns)
    totals.add(span)


def _totals(spans: Sequence[SpanRecord]) -> tuple[dict[str, _Totals], dict[str, _Totals], dict[str, _Totals]]:
    """What the export adds to each trace, session and end user (one pass)."""
    traces: dict[str, _Totals] = {}
    sessions: dict[str, _Totals] = {}
    users: dict[str, _Totals] = {}
    for span in spans:
        _add(traces, span.trace_id, span)
        m = span.mapped
        if m.session_key:
            _add(sessions, m.session_key, span)
        if m.user_key:
            _add(users, m.user_key, span)
    return traces, sessions, users


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
        return _stamp(ns) if self.pg else connection.ops.adapt_datetimefield_value(_time(ns))

    def rows(self, columns: Sequence[tuple[str, str]]) -> str:
        """`SELECT ... FROM` one JSON parameter holding every row as an array, typed by `columns`.

        One parameter for a whole export: a statement of thousands of placeholders costs more to bind
        (psycopg parses such a query in Python each time) than the database takes to run it. A kind
        `table.column` is a key of that table: the row's id there (NULL for none), looked up by its
        unique index, so a statement does not need the ids an earlier one wrote.
        """
        values = []
        for i, (_, kind) in enumerate(columns):
            text = f"(e->>{i})" if self.pg else f"json_extract(e.value, '$[{i}]')"
            if "." in kind:
                table, key = kind.split(".")
                values.append(f"(SELECT k.id FROM {table} k WHERE k.{key} = {text})")  # noqa: S608 (no value)
            elif not self.pg:
                values.append(text)
            else:
                values.append(f"(e->{i})" if kind == "jsonb" else f"{text}::{kind}")
        if self.pg:
            return f"SELECT {', '.join(values)} FROM jsonb_array_elements(%s::jsonb) e"  # noqa: S608 (no value in it)
        # WHERE: SQLite reads ON CONFLICT after a SELECT only behind one.
        return f"SELECT {', '.join(values)} FROM json_each(%s) e WHERE true"  # noqa: S608 (no value in it)


def _upsert(sql: _Dialect, table: str, columns: Sequence[tuple[str, str]], rows: list[list], conflict: str,
            updates: str) -> tuple[str, str]:  # fmt: skip
    """The statement that INSERTs the rows (arrays in `columns` order), or on `conflict` applies `updates`,
    and its one parameter."""
    names = ", ".join(name for name, _ in columns)
    statement = (
        f"INSERT INTO {table} AS t ({names}) {sql.rows(columns)} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    return statement, _json(rows)


TOTALS = ("generations = t.generations + EXCLUDED.generations, input_tokens = t.input_tokens + EXCLUDED.input_tokens, "
          "output_tokens = t.output_tokens + EXCLUDED.output_tokens, cost = t.cost + EXCLUDED.cost")  # fmt: skip
USERS = EndUser._meta.db_table
SESSIONS = Session._meta.db_table


def _upsert_users(users: dict[str, _Totals], sql: _Dialect) -> tuple[str, str]:
    columns = [("external_id", "varchar"), ("first_seen", "timestamptz"), ("last_seen", "timestamptz"),
               ("generations", "bigint"), ("input_tokens", "bigint"), ("output_tokens", "bigint"),
               ("cost", "numeric")]  # fmt: skip
    rows = [[key, sql.time(t.first_ns), sql.time(t.last_ns), t.generations, t.input_tokens, t.output_tokens, t.cost]
            for key, t in sorted(users.items())]  # fmt: skip
    updates = (f"first_seen = {sql.least}(t.first_seen, EXCLUDED.first_seen), "
               f"last_seen = {sql.greatest}(t.last_seen, EXCLUDED.last_seen), {TOTALS}")  # fmt: skip
    return _upsert(sql, USERS, columns, rows, "external_id", updates)


def _upsert_sessions(sessions: dict[str, _Totals], sql: _Dialect) -> tuple[str, str]:
    columns = [("key", "varchar"), ("service", "varchar"), ("end_user_id", f"{USERS}.external_id"),
               ("first_seen", "timestamptz"), ("last_seen", "timestamptz"), ("generations", "bigint"),
               ("input_tokens", "bigint"), ("output_tokens", "bigint"), ("cost", "numeric")]  # fmt: skip
    rows = [[key, t.service, t.user_key or None, sql.time(t.first_ns), sql.time(t.last_ns), t.generations,
             t.input_tokens, t.output_tokens, t.cost] for key, t in sorted(sessions.items())]  # fmt: skip
    updates = ("end_user_id = COALESCE(t.end_user_id, EXCLUDED.end_user_id), "
               f"first_seen = {sql.least}(t.first_seen, EXCLUDED.first_seen), "
               f"last_seen = {sql.greatest}(t.last_seen, EXCLUDED.last_seen), {TOTALS}")  # fmt: skip
    return _upsert(sql, SESSIONS, columns, rows, "key", updates)


def _upsert_traces(traces: dict[str, _Totals], sql: _Dialect, now: str) -> tuple[str, str]:
    columns = [("trace_id", "varchar"), ("name", "varchar"), ("service", "varchar"), ("start_time", "timestamptz"),
               ("end_time", "timestamptz"), ("latency_ms", "float8"), ("spans", "integer"),
               ("generations", "integer"), ("errors", "integer"), ("input_tokens", "bigint"),
               ("output_tokens", "bigint"), ("cost", "numeric"), ("model", "varchar"), ("model_names", "jsonb"),
               ("session_id", f"{SESSIONS}.key"), ("end_user_id", f"{USERS}.external_id"),
               ("prompt_version_id", "bigint"), ("updated_at", "timestamptz")]  # fmt: skip
    rows = [
        [trace_id, t.name, t.service, sql.time(t.first_ns), sql.time(t.last_ns), (t.last_ns - t.first_ns) / 1e6,
         t.spans, t.generations, t.errors, t.input_tokens, t.output_tokens, t.cost, t.model, sorted(t.models),
         t.session_key or None, t.user_key or None, t.prompt_version_id, now]
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
    return _upsert(sql, Trace._meta.db_table, columns, rows, "trace_id", updates)


def _fold(spans: Sequence[SpanRecord], sql: _Dialect) -> list[tuple[str, str]]:
    """The statements (end users, then sessions, then traces: each looks up the ids the one before wrote)."""
    traces, sessions, users = _totals(spans)
    statements = [_upsert_users(users, sql)] if users else []
    if sessions:
        statements.append(_upsert_sessions(sessions, sql))
    statements.append(_upsert_traces(traces, sql, sql.time(time.time_ns())))
    return statements


def write(
    spans: Sequence[SpanRecord],
    *,
    chunks: Callable[[], Iterable[list[SpanRecord]]] | None = None,
    days: set[int] | None = None,
    prepare: Prepare | None = None,
) -> None:
    """Store an export's spans and fold them into their traces, sessions and end users (caller's transaction).

    `chunks()`, when given, yields the spans a chunk at a time from the first as they are decoded
    (`TraceBatch.chunks`; `spans` is complete once they are all given), and `days` are the days since
    the epoch of their start times (known before they are decoded). `prepare`: see `_copy`.
    PostgreSQL: each chunk is decoded and formatted while PostgreSQL stores the one before; the folding
    statements are made while PostgreSQL still takes in the COPY's last rows, then sent together in one
    round trip.
    """
    sql = _Dialect()
    if chunks is None:
        chunks = lambda: _slices(spans)  # noqa: E731
    if not sql.pg:
        for chunk in chunks():
            if prepare is not None:
                prepare(chunk, True)
        if not spans:
            return
        write_spans(spans)
        with connection.cursor() as cursor:
            for statement, rows in _fold(spans, sql):
                cursor.execute(statement, [rows])
        return
    if days is None:
        if not spans:
            return
        partition_days = _days(spans)
    else:
        partition_days = {EPOCH.date() + datetime.timedelta(days=day) for day in days}
    folded: list[list[tuple[str, str]]] = []

    def fold() -> None:
        if not folded and spans:
            folded.append(_fold(spans, sql))

    DAYS.write(partition_days, lambda retrying: _copy(chunks(), prepare, fold))
    if not folded:
        return  # no span stored (all refused)
    with connection.cursor() as cursor:
        # One round trip; prepared once per connection (the three statements' planning is then saved).
        prepared.execute(cursor, [(statement, [rows]) for statement, rows in folded[0]])


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
