"""Log figures: ingest through HTTP with pattern mining, and search over millions of records.

Ingest: gunicorn with one sync worker (one web process) receives OTLP/HTTP protobuf batches of
`BATCH` records (3 services, ~60 patterns with variable numbers, ids and words, 5 % errors) from one
keep-alive client, sequentially; every record is decoded, validated, mined (drain3 behind the shape
cache), written with COPY and counted before the 200. Reported: records/s over all batches after a
warm-up batch (the miners learn the patterns there), and a raw COPY of the same rows (already COPY
text: only psycopg and PostgreSQL work) into the same table in the same run, and the ratio.

Search: `BENCH_LOG_RECORDS` records (default 10,000,000) over five past days, generated as COPY text
and written with COPY into day tables that are then attached as partitions (PostgreSQL builds
their indexes once, as a bulk load would); then `GET /api/v1/aiops/logs/` with a word, a service and
a one-day window (the filtered text query), through gunicorn, p50 of `SEARCH_REPEAT` requests,
beside the same run's fixed cost.
"""

from __future__ import annotations

import datetime
import io
import os
import random
import statistics
import time
from collections.abc import Iterator

from django.db import connection, transaction
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from aiops import services
from aiops.logs import store
from aiops.logs.decode import ParsedRecord
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

from . import server

BATCH = int(os.environ.get("BENCH_LOG_BATCH", "2000"))
BATCHES = int(os.environ.get("BENCH_LOG_BATCHES", "30"))
RECORDS = int(os.environ.get("BENCH_LOG_RECORDS", "10000000"))
SEARCH_REPEAT = int(os.environ.get("BENCH_LOG_SEARCH_REPEAT", "50"))
UTC = datetime.UTC
SERVICES = ("checkout", "search", "payments")
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
PATTERNS = [
    "GET /api/v1/items/{n} answered 200 in {ms} ms",
    "user {n} logged in from {ip}",
    "cache miss for key session:{hex}",
    "order {n} placed by customer {m} total {ms}.50 EUR",
    "payment {n} declined by issuer: insufficient funds",
    "retrying connection to db-{m} in {ms} ms (attempt {k})",
    "slow query on table {word} took {ms} ms",
    "worker {m} picked job {hex} from queue {word}",
    "timeout calling inventory service after {ms} ms",
    "circuit breaker {word} opened after {k} failures",
    "healthcheck ok for node-{m}",
    "message {hex} acknowledged by consumer {word}-{m}",
    "rendered template {word}.html in {ms} ms",
    "file /var/data/{word}/{n}.json rotated",
    "{word} feature flag evaluated to {bool} for user {n}",
    "TLS handshake with {ip} failed: certificate expired",
    "queue {word} depth {n} above watermark",
    "token for client {hex} refreshed",
    "span {hex} exported to collector",
    "config reloaded: {k} keys changed",
]


def _line(rng: random.Random, pattern: str) -> str:
    return pattern.format(
        n=rng.randrange(1, 10**6), m=rng.randrange(1, 64), ms=rng.randrange(1, 5000), k=rng.randrange(1, 9),
        ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}", hex=f"{rng.getrandbits(48):012x}",
        word=rng.choice(WORDS), bool=rng.choice(("true", "false")),
    )  # fmt: skip


def _batch(rng: random.Random, at_ns: int) -> tuple[bytes, list[ParsedRecord]]:
    """One OTLP request of BATCH records over the services, and the same records as stored (for the COPY)."""
    request = ExportLogsServiceRequest()
    records: list[ParsedRecord] = []
    per_service = BATCH // len(SERVICES)
    for service in SERVICES:
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.add(key="service.name").value.string_value = service
        resource_logs.resource.attributes.add(key="host.name").value.string_value = f"{service}-1"
        scope = resource_logs.scope_logs.add()
        for i in range(per_service):
            log = scope.log_records.add()
            log.time_unix_nano = at_ns + i * 1000
            error = rng.random() < 0.05
            log.severity_number = 17 if error else 9
            body = _line(rng, rng.choice(PATTERNS))
            log.body.string_value = body
            log.attributes.add(key="http.route").value.string_value = f"/r/{i % 10}"
            at = datetime.datetime.fromtimestamp((at_ns + i * 1000) / 1e9, UTC)
            attributes = {"host.name": f"{service}-1", "http.route": f"/r/{i % 10}"}
            records.append(ParsedRecord(at, service, "error" if error else "info", body, attributes, "", ""))
    return request.SerializeToString(), records


def bench_ingest(port: int, token: str) -> dict:
    rng = random.Random(13)
    now_ns = time.time_ns() - 600 * 10**9
    batches = [_batch(rng, now_ns + n * 10**9) for n in range(BATCHES + 1)]
    client = server.Http(port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}

    def send(body: bytes) -> None:
        client.conn.request("POST", "/api/v1/aiops/otlp/v1/logs", body=body, headers=headers)
        response = client.conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"OTLP ingest answered {response.status}: {answer[:300]!r}")

    start = time.perf_counter()
    send(batches[0][0])  # warm-up: the miners learn the patterns
    warm_seconds = time.perf_counter() - start
    timings = []
    for body, _records in batches[1:]:
        start = time.perf_counter()
        send(body)
        timings.append(time.perf_counter() - start)
    client.close()
    records = sum(len(r) for _, r in batches[1:])
    rate = records / sum(timings)
    result = {
        "p50_ms": statistics.median(timings) * 1000,
        "p95_ms": sorted(timings)[max(0, int(len(timings) * 0.95) - 1)] * 1000,
        "per_second": len(timings) / sum(timings),
        "queries": 0,
        "records_per_second": rate,
        "first_batch_records_per_second": len(batches[0][1]) / warm_seconds,
        "batch": len(batches[0][1]),
        "batches": BATCHES,
    }
    notes = (
        f"OTLP protobuf, {len(batches[0][1]):,} records a request, 1 gunicorn worker: {rate:,.0f} records/s "
        f"with mining; first batch (patterns new) {result['first_batch_records_per_second']:,.0f}/s"
    )
    if connection.vendor == "postgresql":
        copy_timings = []
        for _body, rows in batches[1:]:
            data = "".join([store._text_row(r, 1) for r in rows])
            start = time.perf_counter()
            with transaction.atomic():
                store.copy_text(data)
            copy_timings.append(time.perf_counter() - start)
        copy_rate = records / sum(copy_timings)
        result["copy_rows_per_second"] = copy_rate
        result["ratio_to_copy"] = rate / copy_rate
        notes += f"; raw COPY of the same rows {copy_rate:,.0f} rows/s, ratio {result['ratio_to_copy']:.2f}"
    result["notes"] = notes
    return result


def load_records(total: int) -> tuple[list[datetime.date], float]:
    """`total` records over five past days (COPY into day tables, then attached); the days and seconds taken."""
    rng = random.Random(7)
    today = datetime.datetime.now(UTC).date()
    days = [today - datetime.timedelta(days=d) for d in range(6, 1, -1)]
    per_day = total // len(days)
    services_ = [f"svc-{n:02d}" for n in range(20)]
    bodies = [[_line(rng, p).translate(store.COPY_ESCAPES) for _ in range(50)] for p in PATTERNS]
    started = time.perf_counter()
    for day in days:
        name = store.partition_name(day)
        midnight = datetime.datetime.combine(day, datetime.time(), tzinfo=UTC).timestamp()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TABLE {name} (LIKE {store.TABLE} INCLUDING DEFAULTS)")
        chunk = 200_000
        for offset in range(0, per_day, chunk):
            buffer = io.StringIO()
            for i in range(offset, min(offset + chunk, per_day)):
                stamp = datetime.datetime.fromtimestamp(midnight + i * 86400 / per_day, UTC).isoformat(sep=" ")
                pattern = i % len(PATTERNS)
                severity = "error" if i % 20 == 0 else "info"
                body = bodies[pattern][i % 50]
                buffer.write(
                    f"{stamp}\t{services_[i % 20]}\t{severity}\t{body}\t"
                    f'{{"http.route": "/r/{i % 10}"}}\t\t\t{pattern + 1}\n'
                )
            with (
                transaction.atomic(),
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {name} ({', '.join(store.COLUMNS)}) FROM STDIN") as copy,
            ):
                copy.write(buffer.getvalue())
        following = day + datetime.timedelta(days=1)
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER TABLE {store.TABLE} ATTACH PARTITION {name} "
                f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')"
            )
            cursor.execute(f"ANALYZE {name}")
    return days, time.perf_counter() - started


def run() -> Iterator[tuple[str, dict]]:
    admin = accounts.create_user(username="bench-logs", role=Role.ADMIN, actor=None, password="bench-password-12")
    _token, raw = accounts.create_api_token(user=admin, name="bench", actor=None)
    _integration, token = services.create_integration(
        name="bench logs", kind="logs", actor=None, rate_limit_per_minute=10**6
    )
    with server.running(workers=1) as port:
        yield "logs_ingest_otlp", bench_ingest(port, token)
    if connection.vendor != "postgresql":
        return
    days, load_seconds = load_records(RECORDS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {store.TABLE}")  # noqa: S608 (our table's name)
        stored = cursor.fetchone()[0]
    day = days[-1]
    since = datetime.datetime.combine(day, datetime.time(), tzinfo=UTC)
    params = {
        "q": "timeout",
        "service": "svc-07",
        "since": since.isoformat(),
        "until": (since + datetime.timedelta(days=1)).isoformat(),
    }
    with server.running(workers=1) as port:
        fixed = server.fixed_cost(port, raw)
        client = server.Http(port, raw)
        status, body = client.get("/api/v1/aiops/logs/", params)
        if status != 200 or b'"results"' not in body:
            raise RuntimeError(f"log search answered {status}: {body[:300]!r}")
        result = server.timed(lambda: client.get("/api/v1/aiops/logs/", params), SEARCH_REPEAT)
        wider = server.timed(
            lambda: client.get("/api/v1/aiops/logs/", {"q": "timeout inventory", "severity": "error"}),
            SEARCH_REPEAT,
        )
        client.close()
    notes = (
        f"{stored:,} records over 5 days (loaded in {load_seconds:.0f} s); q=timeout, service (1 of 20), one day; "
        f"without service or time filter (q=timeout inventory, severity=error) p50 {wider['p50_ms']:.1f} ms"
    )
    yield (
        "logs_search_filtered_text",
        {**server.with_fixed_cost(result, fixed, notes), "queries": 2, "records": stored, "unfiltered": wider},
    )
