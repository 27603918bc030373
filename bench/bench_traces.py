"""Trace ingest: OTLP/HTTP protobuf exports of spans through gunicorn, beside a raw COPY of the same rows.

gunicorn with one sync worker (one web process) receives `BATCHES` exports of `BATCH` spans (512, the
OpenTelemetry SDK's default export size) from one keep-alive client, sequentially. The spans are those of
a support bot: per trace a server root span (`POST /chat`, HTTP attributes), a retrieval span, an LLM
generation (GenAI conventions: operation, provider, request and response model, tokens, cached
tokens, conversation and user ids, temperature and max tokens, input and output messages of some
hundred characters) and a tool call; 128 traces, 32 conversations and 16 users per export. Every span
is decoded, validated, mapped, priced, written with COPY into its day partition and folded into its
trace, conversation and user before the 200. Reported: spans/s over all exports after a warm-up one,
and the rate of a raw COPY of the same rows (already COPY text: only psycopg and PostgreSQL work) into
the same table in the same run, and the ratio.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Iterator

from django.db import connection, transaction
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from llmops.traces import decode, store
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

from . import server

BATCH = int(os.environ.get("BENCH_TRACE_BATCH", "512"))
BATCHES = int(os.environ.get("BENCH_TRACE_BATCHES", "40"))
SPANS_PER_TRACE = 4
QUESTIONS = (
    "Where is my order {n}? It was supposed to arrive on Monday and the tracking page shows nothing.",
    "Can I get a refund for order {n}? The jacket is too small and I would like the money back.",
    "How do I change the delivery address of order {n} before it ships to my old flat?",
    "My discount code SPRING{n} is refused at checkout although the e-mail says it is valid until May.",
)


def _set(span, key: str, value: object) -> None:
    attribute = span.attributes.add(key=key)
    if isinstance(value, bool):
        attribute.value.bool_value = value
    elif isinstance(value, int):
        attribute.value.int_value = value
    elif isinstance(value, float):
        attribute.value.double_value = value
    else:
        attribute.value.string_value = value


def _export(rng: random.Random, at_ns: int, first_trace: int) -> bytes:
    """One ExportTraceServiceRequest of BATCH spans (BATCH / 4 support-bot traces)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("service.name", "support-bot"), ("service.version", "2.3.1"), ("host.name", "bot-1"),
                       ("deployment.environment", "production")):  # fmt: skip
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "support_bot"
    for t in range(BATCH // SPANS_PER_TRACE):
        number = first_trace + t
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        root_id, retrieve_id, llm_id, tool_id = (rng.getrandbits(64).to_bytes(8, "big") for _ in range(4))
        start = at_ns + t * 1_000_000
        question = rng.choice(QUESTIONS).format(n=rng.randrange(10**5, 10**6))
        root = scope.spans.add(trace_id=trace_id, span_id=root_id, name="POST /chat", kind=PbSpan.SPAN_KIND_SERVER,
                               start_time_unix_nano=start, end_time_unix_nano=start + 1_900_000_000)  # fmt: skip
        for key, value in (("http.request.method", "POST"), ("http.route", "/chat"), ("http.response.status_code", 200),
                           ("url.path", "/chat"), ("user_agent.original", "support-widget/4.1")):  # fmt: skip
            _set(root, key, value)
        retrieve = scope.spans.add(trace_id=trace_id, span_id=retrieve_id, parent_span_id=root_id,
                                   name="retrieve documents", start_time_unix_nano=start + 5_000_000,
                                   end_time_unix_nano=start + 85_000_000)  # fmt: skip
        _set(retrieve, "openinference.span.kind", "RETRIEVER")
        _set(retrieve, "retrieval.top_k", 5)
        _set(retrieve, "db.system", "postgresql")
        llm = scope.spans.add(trace_id=trace_id, span_id=llm_id, parent_span_id=root_id, name="chat gpt-4o-mini",
                              kind=PbSpan.SPAN_KIND_CLIENT, start_time_unix_nano=start + 90_000_000,
                              end_time_unix_nano=start + 1_800_000_000)  # fmt: skip
        input_tokens, output_tokens = rng.randrange(800, 2400), rng.randrange(60, 400)
        messages = [
            {"role": "system", "parts": [{"type": "text", "content": "You are the shop's support assistant."}]},
            {"role": "user", "parts": [{"type": "text", "content": question}]},
        ]
        answer = [{"role": "assistant", "parts": [{"type": "text", "content": "I checked: " + question[::-1]}],
                   "finish_reason": "stop"}]  # fmt: skip
        for key, value in (
            ("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o-mini"), ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            ("gen_ai.response.id", f"chatcmpl-{number}"), ("gen_ai.usage.input_tokens", input_tokens),
            ("gen_ai.usage.output_tokens", output_tokens), ("gen_ai.usage.cache_read.input_tokens", 512),
            ("gen_ai.conversation.id", f"conv-{number % 32}"), ("user.id", f"customer-{number % 16}"),
            ("gen_ai.request.temperature", 0.2), ("gen_ai.request.max_tokens", 512),
            ("gen_ai.input.messages", json.dumps(messages)), ("gen_ai.output.messages", json.dumps(answer)),
            ("opsportal.prompt.name", "support"), ("opsportal.prompt.version", 3),
        ):  # fmt: skip
            _set(llm, key, value)
        llm.status.code = 1
        tool = scope.spans.add(trace_id=trace_id, span_id=tool_id, parent_span_id=root_id,
                               name="execute_tool lookup_order", start_time_unix_nano=start + 1_810_000_000,
                               end_time_unix_nano=start + 1_880_000_000)  # fmt: skip
        _set(tool, "gen_ai.operation.name", "execute_tool")
        _set(tool, "gen_ai.tool.name", "lookup_order")
        _set(tool, "gen_ai.tool.call.id", f"call_{number}")
    return request.SerializeToString()


def bench_ingest(port: int, token: str) -> dict:
    rng = random.Random(15)
    now_ns = time.time_ns() - 600 * 10**9
    traces_per_export = BATCH // SPANS_PER_TRACE
    exports = [_export(rng, now_ns + n * 10**9, n * traces_per_export) for n in range(BATCHES + 1)]
    client = server.Http(port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}

    def send(body: bytes) -> None:
        client.conn.request("POST", "/api/v1/llmops/otlp/v1/traces", body=body, headers=headers)
        response = client.conn.getresponse()
        answer = response.read()
        if response.status != 200 or answer:  # an empty ExportTraceServiceResponse: nothing refused
            raise RuntimeError(f"OTLP trace ingest answered {response.status}: {answer[:300]!r}")

    pg = connection.vendor == "postgresql"
    columns = ", ".join(store.COLUMNS)
    # The raw COPY's rows, already COPY text: only psycopg and PostgreSQL work while it is timed.
    copy_data = ["".join([store._copy_row(span) for span in decode.decode_protobuf(body).spans]).encode()
                 for body in exports[1:]] if pg else []  # fmt: skip

    def raw_copy(data: bytes) -> float:
        start = time.perf_counter()
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {store.TABLE} ({columns}) FROM STDIN") as copy,
        ):
            copy.write(data)
        return time.perf_counter() - start

    send(exports[0])  # warm-up: the worker's imports, prepared statements, the partition
    timings = []
    # Back to back, as an exporter with a queue sends (the worker stays warm), then the raw COPYs.
    for body in exports[1:]:
        start = time.perf_counter()
        send(body)
        timings.append(time.perf_counter() - start)
    client.close()
    copy_timings = [raw_copy(data) for data in copy_data]
    spans = BATCH * BATCHES
    rate = spans / sum(timings)
    result = {
        "p50_ms": statistics.median(timings) * 1000,
        "p95_ms": sorted(timings)[max(0, int(len(timings) * 0.95) - 1)] * 1000,
        "per_second": len(timings) / sum(timings),
        "queries": 0,
        "spans_per_second": rate,
        "batch": BATCH,
        "batches": BATCHES,
        "body_bytes": len(exports[1]),
    }
    notes = (
        f"OTLP protobuf, {BATCH} spans an export ({len(exports[1]):,} bytes), 1 gunicorn worker: {rate:,.0f} spans/s"
    )
    if pg:
        copy_rate = spans / sum(copy_timings)
        result["copy_rows_per_second"] = copy_rate
        result["copy_p50_ms"] = statistics.median(copy_timings) * 1000
        result["ratio_to_copy"] = rate / copy_rate
        notes += f"; raw COPY of the same rows {copy_rate:,.0f} rows/s, ratio {result['ratio_to_copy']:.2f}"
    result["notes"] = notes
    return result


def run() -> Iterator[tuple[str, dict]]:
    operator = accounts.create_user(username="bench-traces", role=Role.OPERATOR, actor=None,
                                    password="bench-password-12")  # fmt: skip
    _token, raw = accounts.create_api_token(user=operator, name="bench", actor=None)
    with server.running(workers=1) as port:
        yield "llmops_trace_ingest_otlp", bench_ingest(port, raw)
