"""The trace list's latency and cost range filters with and without their indexes (migration 0008), PostgreSQL.

BENCH_TRACE_FILTER_ROWS trace rows (default 300,000) are written by SQL in arrival order over 30 days, with
log-normal latencies (median 1.2 s, 1 % over 10 s) and costs (median 0.0004 USD, one in ten free), a few
services and models, 2 % with errors. Each case runs what the traces page runs for a filter: one keyset page
(`trace_queries.keyset_page`: the newest 50 rows and the capped count), timed in-process, first without the
two range indexes and the finer statistics of migration 0008 ("before"), then with them ("after"), in the
same run, BENCH_TRACE_FILTER_REPEAT times each (default 30). The reported p50/p95 are the "after" figures of
the slowest case before; every case's before/after p50 is in `cases`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from decimal import Decimal

from django.db import connection

ROWS = int(os.environ.get("BENCH_TRACE_FILTER_ROWS", "300000"))
REPEAT = int(os.environ.get("BENCH_TRACE_FILTER_REPEAT", "30"))

FILL = """
INSERT INTO llmops_trace (trace_id, name, service, start_time, end_time, latency_ms, spans, generations, errors,
                          input_tokens, output_tokens, cost, model, model_names, updated_at)
SELECT md5(g::text), 'POST /chat', (ARRAY['support-bot', 'search', 'agent', 'summarizer', 'triage'])[1 + g %% 5],
       st, st + make_interval(secs => lat / 1000.0), lat, 3, 1, CASE WHEN random() < 0.02 THEN 1 ELSE 0 END,
       (500 + random() * 4500)::int, (50 + random() * 950)::int,
       CASE WHEN g %% 10 = 0 THEN 0
            ELSE round(exp(-7.6 + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::numeric, 8) END,
       m, jsonb_build_array(m), now()
FROM (SELECT g, now() - random() * interval '30 days' AS st,
             exp(7.1 + 0.9 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS lat,
             (ARRAY['gpt-4o-mini', 'gpt-4.1', 'claude-3-5-sonnet-20241022', 'llama3.1'])[1 + (g / 7) %% 4] AS m
      FROM generate_series(1, %(rows)s) g) s
ORDER BY st
"""
CASES = [
    ("latency >= 10 s", {"min_latency": 10_000.0}),
    ("latency >= 20 s", {"min_latency": 20_000.0}),
    ("latency <= 100 ms", {"max_latency": 100.0}),
    ("cost >= 0.01 USD", {"min_cost": Decimal("0.01")}),
    ("service agent, latency >= 20 s", {"service": "agent", "min_latency": 20_000.0}),
    ("latency >= 5 s and cost >= 0.005 USD", {"min_latency": 5_000.0, "min_cost": Decimal("0.005")}),
    ("7 days, cost >= 0.005 USD", {"window": "7d", "min_cost": Decimal("0.005")}),
    ("errors, latency >= 10 s", {"status": "error", "min_latency": 10_000.0}),
    ("latency >= 3 s (common)", {"min_latency": 3_000.0}),
]
INDEXES = [("llmops_trace_latency", "latency_ms"), ("llmops_trace_cost", "cost")]
STATISTICS = "ALTER TABLE llmops_trace ALTER COLUMN latency_ms SET STATISTICS {0}, ALTER COLUMN cost SET STATISTICS {0}"


def _time_cases() -> dict[str, list[float]]:
    from llmops import trace_queries

    timings: dict[str, list[float]] = {}
    for label, values in CASES:
        trace_queries.keyset_page(trace_queries.filtered_traces(values))  # warm the cache
        runs = []
        for _ in range(REPEAT):
            start = time.perf_counter()
            page = trace_queries.keyset_page(trace_queries.filtered_traces(values))
            runs.append((time.perf_counter() - start) * 1000)
        assert page.rows, label
        timings[label] = runs
    return timings


def _without_indexes() -> None:
    with connection.cursor() as cursor:
        for name, _ in INDEXES:
            cursor.execute(f"DROP INDEX {name}")
        cursor.execute(STATISTICS.format(-1))
        cursor.execute("ANALYZE llmops_trace")


def _with_indexes() -> None:
    with connection.cursor() as cursor:
        for name, column in INDEXES:
            cursor.execute(f"CREATE INDEX {name} ON llmops_trace ({column})")
        cursor.execute(STATISTICS.format(1000))
        cursor.execute("ANALYZE llmops_trace")


def run() -> Iterator[tuple[str, dict]]:
    if connection.vendor != "postgresql":
        print("bench_trace_filters: PostgreSQL only, skipped")
        return
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(FILL, {"rows": ROWS})
        cursor.execute("VACUUM ANALYZE llmops_trace")
        print(f"trace filters: {ROWS:,} traces written in {time.perf_counter() - started:.1f} s")
    _without_indexes()
    before = _time_cases()
    _with_indexes()
    after = _time_cases()
    cases = {
        label: {"before_p50_ms": round(statistics.median(before[label]), 2),
                "after_p50_ms": round(statistics.median(after[label]), 2)}
        for label, _ in CASES
    }  # fmt: skip
    for label, figures in cases.items():
        print(f"  {label:40s} before {figures['before_p50_ms']:8.2f} ms  after {figures['after_p50_ms']:8.2f} ms")
    slowest = max(cases, key=lambda label: cases[label]["before_p50_ms"])
    runs = sorted(after[slowest])
    yield (
        "llmops_trace_filters",
        {
            "p50_ms": statistics.median(runs),
            "p95_ms": runs[max(0, round(0.95 * len(runs)) - 1)],
            "per_second": 1000 / statistics.median(runs),
            "queries": 2,
            "traces": ROWS,
            "repeat": REPEAT,
            "cases": cases,
            "notes": f"{ROWS:,} traces; slowest before: {slowest} ({cases[slowest]['before_p50_ms']} ms before)",
        },
    )
