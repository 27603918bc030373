"""AIOps metric collection figures: sample ingest through the writer, and query_range through gunicorn.

Ingest (one process, as one `collection` worker): batches of samples shaped like scrapes
(SERIES series per batch, one timestamp per batch, as a scrape of many targets gives) go through
`aiops.metrics.store.write_samples` (series ids from the cache, COPY on PostgreSQL), one
transaction per batch. Reported: steady-state samples/s (series known), the first batch (every
series new), and beside them a raw COPY of the same rows (ids, times and values already as COPY
text, so only psycopg and PostgreSQL work) into the same table in the same run, and the ratio.
The whole scrape path (parsing the exposition text, labelling, writing) is reported too, as what
a worker sustains end to end, beside prometheus_client's parser alone on the same text.

Query: one series with 8 days of 15-second samples (46,080) and its 5-minute rollups; gunicorn
(1 worker) answers `query_range` over the whole 8 days at a 10-minute step (what Grafana asks for
a week-wide panel; rollups), and narrower or rawer cases beside it, with the fixed cost.
"""

from __future__ import annotations

import datetime
import os
import statistics
import time
from collections.abc import Iterator

from django.db import connection, transaction
from django.test import Client

from aiops import services
from aiops.metrics import exposition, rollups, scrape, store
from aiops.metrics import http as metrics_http
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

from . import server

SERIES = int(os.environ.get("BENCH_METRICS_SERIES", "20000"))
BATCHES = int(os.environ.get("BENCH_METRICS_BATCHES", "20"))
QUERY_REPEAT = int(os.environ.get("BENCH_METRICS_REPEAT", "100"))
DAYS = 8
EVERY = 15


def _batch_keys(count: int) -> list[store.SeriesKey]:
    """`count` series like node_exporter's: a few metric names over many instances and label values."""
    keys = []
    for i in range(count):
        name = ("node_cpu_seconds_total", "node_network_receive_bytes_total", "node_filesystem_avail_bytes")[i % 3]
        labels = {"job": "node", "instance": f"host-{i // 30}:9100", "device": f"dev{i % 30}", "mode": "idle"}
        keys.append(store.series_key(name, labels))
    return keys


def _copy_text(ids: list[int], stamp: float, values: list[float]) -> str:
    text = datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(sep=" ")
    return "".join(f"{series_id}\t{text}\t{value!r}\n" for series_id, value in zip(ids, values, strict=True))


def bench_ingest() -> dict:
    keys = _batch_keys(SERIES)
    now = time.time()
    stamps = [now - 3600 + EVERY * n for n in range(BATCHES + 1)]
    values = [float(i) for i in range(SERIES)]
    start = time.perf_counter()
    with transaction.atomic():
        store.write_samples([(key, stamps[0], value) for key, value in zip(keys, values, strict=True)])
    cold_seconds = time.perf_counter() - start
    timings = []
    for n in range(1, BATCHES + 1):
        batch = [(key, stamps[n], value + n) for key, value in zip(keys, values, strict=True)]
        start = time.perf_counter()
        with transaction.atomic():
            store.write_samples(batch)
        timings.append(time.perf_counter() - start)
    writer_rate = SERIES * BATCHES / sum(timings)
    result = {
        "p50_ms": statistics.median(timings) * 1000,
        "p95_ms": sorted(timings)[max(0, int(len(timings) * 0.95) - 1)] * 1000,
        "per_second": writer_rate,
        "queries": 0,
        "samples_per_second": writer_rate,
        "first_batch_samples_per_second": SERIES / cold_seconds,
        "series": SERIES,
        "batches": BATCHES,
    }
    notes = (
        f"{SERIES:,} series x {BATCHES} batches through the writer: {writer_rate:,.0f} samples/s; first batch "
        f"(all series new) {result['first_batch_samples_per_second']:,.0f}/s"
    )
    if connection.vendor == "postgresql":
        ids = [store.CACHE.ids[key] for key in keys]
        copy_timings = []
        for n in range(1, BATCHES + 1):
            data = _copy_text(ids, stamps[n] + 1, [value + n for value in values])
            start = time.perf_counter()
            with transaction.atomic():
                store.copy_rows(data)
            copy_timings.append(time.perf_counter() - start)
        copy_rate = SERIES * BATCHES / sum(copy_timings)
        result["copy_rows_per_second"] = copy_rate
        result["ratio_to_copy"] = writer_rate / copy_rate
        notes += f"; raw COPY of the same rows {copy_rate:,.0f} rows/s, ratio {result['ratio_to_copy']:.2f}"
    result["notes"] = notes
    return result


def bench_scrape_path() -> dict:
    """Parse + label + write, from exposition text as a target serves it (no network)."""
    lines = ["# TYPE node_cpu_seconds_total counter"]
    for i in range(SERIES // 2):
        lines.append(f'node_cpu_seconds_total{{cpu="{i}",mode="idle"}} {i * 1.5}')
    body = "\n".join(lines) + "\n"
    spec = scrape.TargetSpec(id=0, name="bench", url="http://host-0:9100/metrics", timeout=10, headers={}, labels={})
    fetched = metrics_http.Fetched(status=200, content_type="text/plain; version=0.0.4", body=body.encode())
    timings = []
    parse_timings = []
    for n in range(5):
        start = time.perf_counter()
        outcome = scrape._outcome(spec, time.time() - 600 + n, fetched, 0)
        parsed = time.perf_counter()
        with transaction.atomic():
            store.write_samples(outcome.samples, kinds=outcome.kinds)
        timings.append(time.perf_counter() - start)
        parse_timings.append(parsed - start)
    count = len(outcome.samples)
    rate = count * len(timings[1:]) / sum(timings[1:])
    parse_rate = count * len(parse_timings[1:]) / sum(parse_timings[1:])
    start = time.perf_counter()
    library = len(exposition.parse(body, "text/plain"))
    library_rate = library / (time.perf_counter() - start)
    return {
        "p50_ms": statistics.median(timings[1:]) * 1000,
        "p95_ms": max(timings[1:]) * 1000,
        "per_second": rate,
        "queries": 0,
        "samples_per_second": rate,
        "parse_samples_per_second": parse_rate,
        "first_scrape_samples_per_second": count / timings[0],
        "prometheus_client_parse_samples_per_second": library_rate,
        "notes": (
            f"exposition of {count:,} samples, scraped again: parse + label {parse_rate:,.0f}/s, with the write "
            f"{rate:,.0f}/s; first scrape (new series) {count / timings[0]:,.0f}/s; prometheus_client's parser "
            f"alone {library_rate:,.0f}/s"
        ),
    }


def load_week(now: float) -> tuple[int, int]:
    """One series with DAYS days of EVERY-second samples (a counter), and its rollups; (series id, samples)."""
    key = store.series_key("bench_requests_total", {"job": "api", "instance": "api-1:8000"})
    first = now - DAYS * 86400 + 60
    count = int((now - first) // EVERY)
    samples = [(key, first + EVERY * k, float(3 * k)) for k in range(count)]
    for start in range(0, count, 20000):
        with transaction.atomic():
            store.write_samples(samples[start : start + 20000])
    rollups.roll_up(datetime.datetime.fromtimestamp(now, datetime.UTC), budget_seconds=600)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE aiops_sample; ANALYZE aiops_rollup5m; ANALYZE aiops_series")
    return store.CACHE.ids[key], count


def run() -> Iterator[tuple[str, dict]]:
    yield "metrics_ingest_writer", bench_ingest()
    yield "metrics_ingest_scrape_path", bench_scrape_path()
    now = time.time()
    _series_id, count = load_week(now)
    admin = accounts.create_user(username="bench-metrics", role=Role.ADMIN, actor=None, password="bench-password-12")
    _token, raw = accounts.create_api_token(user=admin, name="bench", actor=None)
    end = int(now)
    week = end - DAYS * 86400
    selector = 'bench_requests_total{job="api"}'
    cases = [
        ("metrics_query_range_8d", selector, week, 600, "8 days at a 10 min step (rollups), 1,153 points"),
        ("metrics_query_range_8d_rate", f"rate({selector}[10m])", week, 600, "rate() over 8 days, rollups"),
        ("metrics_query_range_8d_raw", selector, week + 600, 120, "8 days at a 2 min step: raw samples, ~46,000 read"),
        ("metrics_query_range_1h", f"rate({selector}[1m])", end - 3600, 15, "1 hour at 15 s, raw, 241 points"),
    ]
    local = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with server.running(workers=1) as port:
        fixed = server.fixed_cost(port, raw)
        client = server.Http(port, raw)
        for name, text, start, step, notes in cases:
            params = {"query": text, "start": start, "end": end, "step": step}
            status, body = client.get("/api/v1/aiops/metrics/query_range", params)
            if status != 200 or b'"values"' not in body:
                raise RuntimeError(f"{name}: {status} {body[:300]!r}")
            result = server.timed(lambda p=params: client.get("/api/v1/aiops/metrics/query_range", p), QUERY_REPEAT)
            source = services.run_query_range(query_text=text, start=start, end=end, step=step).source
            queries = server.count_queries(lambda p=params: local.get("/api/v1/aiops/metrics/query_range", p))
            yield (
                name,
                {
                    **server.with_fixed_cost(result, fixed, f"{notes}; {count:,} samples stored; read: {source}"),
                    "queries": queries,
                    "source": source,
                },
            )
        client.close()
