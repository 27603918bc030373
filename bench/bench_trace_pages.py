"""Trace pages on a big span table, through gunicorn: the traces list with filters (target p50 < 150 ms with
10 million spans) and a trace page with 1,000 spans (target < 300 ms), `/healthz` timed in the same run.

The table is filled by SQL (`generate_series` into the day partitions of a week, PostgreSQL only):
BENCH_TRACE_SPANS spans (default 10,000,000) in traces of ten spans (a root, a generation, eight tool
calls), with their trace rows, 20,000 end users and 100,000 sessions, plus one trace of 1,000 spans. Rows
are written as the ingest leaves them, indexes in place; ANALYZE follows. Each list case is timed over
one keep-alive connection with a logged-in browser session, and its in-process query count is taken.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator

from django.db import connection
from django.test import Client
from django.utils import timezone

from opsportal.accounts import services
from opsportal.accounts.roles import Role
from opsportal.partitions import DayPartitions

from . import server

SPANS = int(os.environ.get("BENCH_TRACE_SPANS", "10000000"))
SPANS_PER_TRACE = 10
USERS = 20_000
SESSIONS = 100_000
DAYS = 7
BIG_TRACE = "f" * 32
REPEAT = int(os.environ.get("BENCH_TRACE_REPEAT", "100"))

FILL_USERS = """
INSERT INTO llmops_enduser (external_id, first_seen, last_seen, generations, input_tokens, output_tokens, cost)
SELECT 'user-' || u, %(start)s, %(end)s, 0, 0, 0, 0 FROM generate_series(1, %(users)s) u
"""
FILL_SESSIONS = """
INSERT INTO llmops_session (key, service, end_user_id, first_seen, last_seen, generations, input_tokens,
                            output_tokens, cost)
SELECT 'conv-' || s, 'support-bot', (SELECT min(id) FROM llmops_enduser) + s %% %(users)s, %(start)s, %(end)s,
       0, 0, 0, 0
FROM generate_series(1, %(sessions)s) s
"""
# Trace i starts i * step seconds after the week's start, newest last; one in 20 has an error, one in 4 is slow.
FILL_TRACES = """
INSERT INTO llmops_trace (trace_id, name, service, start_time, end_time, latency_ms, spans, generations, errors,
                          input_tokens, output_tokens, cost, model, model_names, session_id, end_user_id,
                          prompt_version_id, updated_at)
SELECT md5(i::text), 'support.answer',
       (ARRAY['support-bot', 'support-bot', 'search', 'billing', 'onboarding'])[1 + i %% 5],
       %(start)s + make_interval(secs => i * %(step)s),
       %(start)s + make_interval(secs => i * %(step)s) + make_interval(secs => lat / 1000.0),
       lat, %(per_trace)s, 1, CASE WHEN i %% 20 = 0 THEN 1 ELSE 0 END, 400 + i %% 300, 50 + i %% 200,
       (400 + i %% 300) * 0.00000015 + (50 + i %% 200) * 0.0000006,
       (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-haiku'])[1 + i %% 3],
       jsonb_build_array((ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-haiku'])[1 + i %% 3]),
       (SELECT min(id) FROM llmops_session) + i %% %(sessions)s, (SELECT min(id) FROM llmops_enduser) + i %% %(users)s,
       NULL, now()
FROM (SELECT i, CASE WHEN i %% 4 = 0 THEN 2500 + i %% 3000 ELSE 300 + i %% 900 END AS lat
      FROM generate_series(1, %(traces)s) i) t
"""
FILL_SPANS = """
INSERT INTO llmops_span (start_time, end_time, duration_ms, trace_id, span_id, parent_span_id, name, kind, service,
                         status, operation, model, input_tokens, output_tokens, cost, input, output)
SELECT t.start_time + make_interval(secs => j * 0.01), t.start_time + make_interval(secs => j * 0.01 + 0.005),
       CASE WHEN j = 0 THEN t.latency_ms ELSE 5 END, t.trace_id, substr(md5(t.trace_id || j), 1, 16),
       CASE WHEN j = 0 THEN '' WHEN j = 1 THEN substr(md5(t.trace_id || 0), 1, 16)
            ELSE substr(md5(t.trace_id || 1), 1, 16) END,
       CASE WHEN j = 0 THEN 'support.answer' WHEN j = 1 THEN 'chat ' || t.model ELSE 'tool lookup' END,
       CASE WHEN j = 0 THEN 'server' ELSE 'internal' END, t.service,
       CASE WHEN j = 0 AND t.errors > 0 THEN 'error' ELSE 'ok' END, CASE WHEN j = 1 THEN 'chat' ELSE '' END,
       CASE WHEN j = 1 THEN t.model ELSE '' END, CASE WHEN j = 1 THEN t.input_tokens END,
       CASE WHEN j = 1 THEN t.output_tokens END, CASE WHEN j = 1 THEN t.cost END,
       CASE WHEN j = 1 THEN '[{"role": "user", "content": "Where is my parcel?"}]' ELSE '' END,
       CASE WHEN j = 1 THEN '[{"role": "assistant", "content": "It left the depot."}]' ELSE '' END
FROM llmops_trace t, generate_series(0, %(per_trace)s - 1) j
WHERE t.id BETWEEN %(low)s AND %(high)s
"""
BIG_SPANS = """
INSERT INTO llmops_span (start_time, end_time, duration_ms, trace_id, span_id, parent_span_id, name, kind, service,
                         status, operation, model, input_tokens, output_tokens, cost, input, output, attributes)
SELECT %(start)s + make_interval(secs => j * 0.002), %(start)s + make_interval(secs => j * 0.002 + 0.001),
       CASE WHEN j = 0 THEN 2000 ELSE 1 END, %(trace)s, lpad(to_hex(j + 1), 16, '0'),
       CASE WHEN j = 0 THEN '' ELSE lpad(to_hex(1 + (j - 1) / 50), 16, '0') END,
       CASE WHEN j %% 10 = 1 THEN 'chat gpt-4o-mini' ELSE 'step ' || j END, 'internal', 'support-bot', 'ok',
       CASE WHEN j %% 10 = 1 THEN 'chat' ELSE '' END, CASE WHEN j %% 10 = 1 THEN 'gpt-4o-mini' ELSE '' END,
       CASE WHEN j %% 10 = 1 THEN 500 END, CASE WHEN j %% 10 = 1 THEN 80 END, CASE WHEN j %% 10 = 1 THEN 0.0001 END,
       '[{"role": "user", "content": "Where is my parcel?"}]', '[{"role": "assistant", "content": "On its way."}]',
       jsonb_build_object('step', j, 'region', 'eu-west-1')
FROM generate_series(0, 999) j
"""


def fill() -> dict:
    """The week of traces and spans; returns the sizes and how long the fill took."""
    if connection.vendor != "postgresql":
        raise RuntimeError("bench_trace_pages needs PostgreSQL (DATABASE_URL): the span table is partitioned")
    began = time.perf_counter()
    end = timezone.now().replace(microsecond=0)
    start = end - datetime.timedelta(days=DAYS)
    traces = max(1, SPANS // SPANS_PER_TRACE)
    DayPartitions("llmops_span").ensure({(start + datetime.timedelta(days=d)).date() for d in range(DAYS + 2)})
    params = {"start": start, "end": end, "users": USERS, "sessions": SESSIONS, "traces": traces,
              "step": DAYS * 86400 / traces, "per_trace": SPANS_PER_TRACE}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(FILL_USERS, params)
        cursor.execute(FILL_SESSIONS, params)
        cursor.execute(FILL_TRACES, params)
        cursor.execute("SELECT min(id), max(id) FROM llmops_trace")
        low, high = cursor.fetchone()
        chunk = 200_000
        for first in range(low, high + 1, chunk):
            cursor.execute(FILL_SPANS, {**params, "low": first, "high": min(high, first + chunk - 1)})
        big_start = end - datetime.timedelta(hours=1)
        cursor.execute(BIG_SPANS, {"start": big_start, "trace": BIG_TRACE})
        cursor.execute(
            "INSERT INTO llmops_trace (trace_id, name, service, start_time, end_time, latency_ms, spans, generations, "
            "errors, input_tokens, output_tokens, cost, model, model_names, updated_at) VALUES "
            "(%s, 'step 0', 'support-bot', %s, %s, 2000, 1000, 100, 0, 50000, 8000, 0.01, 'gpt-4o-mini', "
            "'[\"gpt-4o-mini\"]', now())",
            [BIG_TRACE, big_start, big_start + datetime.timedelta(seconds=2)],
        )
        cursor.execute("ANALYZE llmops_span")
        cursor.execute("ANALYZE llmops_trace")
        cursor.execute("ANALYZE llmops_session")
        cursor.execute("ANALYZE llmops_enduser")
        cursor.execute("SELECT count(*) FROM llmops_span")
        spans = cursor.fetchone()[0]
    return {"spans": spans, "traces": traces + 1, "fill_seconds": time.perf_counter() - began}


def _target(result: dict, target_ms: float) -> dict:
    result["target_p50_ms"] = target_ms
    result["meets_target"] = result["p50_ms"] < target_ms
    return result


def run() -> Iterator[tuple[str, dict]]:
    admin = services.create_user(username="bench-traces", role=Role.ADMIN, actor=None, password="bench-password-123")
    _token, raw = services.create_api_token(user=admin, name="bench", actor=None)
    sizes = fill()
    local = Client()
    local.force_login(admin)
    size_note = f"{sizes['spans']:,} spans in {sizes['traces']:,} traces (filled in {sizes['fill_seconds']:.0f} s)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT trace_id, start_time, id FROM llmops_trace ORDER BY start_time DESC, id DESC OFFSET 500")
        deep = cursor.fetchone()
    cursor_param = f"{deep[1].astimezone(datetime.UTC).strftime('%Y%m%dT%H%M%S.%f')}_{deep[2]}"
    cases = [
        ("traces_list", {}, "newest first, no filter"),
        ("traces_list_service_errors", {"window": "24h", "service": "support-bot", "status": "error"},
         "last 24 h, one service, errors only"),
        ("traces_list_model_latency", {"window": "7d", "model": "gpt-4o", "min_latency": "2500"},
         "a week, one model, latency >= 2.5 s"),
        ("traces_list_user", {"window": "all", "user": "user-42"}, "one end user, any time"),
        ("traces_list_cost_range", {"window": "7d", "min_cost": "0.0002", "max_cost": "0.0003"}, "a cost range"),
        ("traces_list_deep_page", {"window": "7d", "service": "search", "before": cursor_param},
         "a keyset page 500 traces down"),
    ]  # fmt: skip
    with server.running(workers=1) as port:
        fixed = server.fixed_cost(port, raw, repeat=REPEAT * 2)
        browser = server.Http(port, cookie=server.session_cookie(admin))
        try:
            for name, params, notes in cases:
                result = server.case(browser, "/llmops/traces/", params, fixed, f"{notes}; {size_note}", local,
                                     repeat=REPEAT)  # fmt: skip
                yield name, _target({**result, **sizes}, 150)
            path = f"/llmops/traces/{BIG_TRACE}/"
            result = server.case(browser, path, None, fixed, f"a trace of 1,000 spans; {size_note}", local, REPEAT)
            yield "trace_page_1000_spans", _target({**result, **sizes}, 300)
        finally:
            browser.close()
