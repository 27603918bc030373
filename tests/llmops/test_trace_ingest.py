"""OTLP/HTTP trace ingest: the answers the OTLP specification asks for, and what the trace API then shows.

Bodies are built as senders build them: OTLP/JSON as the specification shows it (hex ids, 64-bit
integers as strings) and protobuf from the OpenTelemetry proto package the SDK exporter uses.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from llmops.models import Span, Trace
from llmops.traces import cost
from tests.conftest import api_client_for

URL = "/api/v1/llmops/otlp/v1/traces"
TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
CHILD = "eee19b7ec3c1b173"


def _now_ns() -> int:
    return time.time_ns() - 5_000_000_000


def _attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def otlp_json(spans: list[dict], service: str = "support-bot") -> bytes:
    """An ExportTraceServiceRequest in OTLP/JSON, as the specification's example writes it."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [_attr("service.name", service), _attr("deployment.environment", "test")]
                    },
                    "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def json_span(span_id: str, name: str, start: int, parent: str = "", attributes: dict | None = None, **extra) -> dict:
    span = {
        "traceId": TRACE, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": 3,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 1_500_000_000),
        "attributes": [_attr(k, v) for k, v in (attributes or {}).items()], "status": {},
    }  # fmt: skip
    span.update(extra)
    return span


def post(client, body: bytes, content_type: str = "application/json", **headers):
    return client.generic("POST", URL, body, content_type=content_type, **headers)


@pytest.fixture
def otlp(operator):
    cost.PROMPT_VERSIONS.forget()
    cost.forget_prices()
    return api_client_for(operator)


GENERATION = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300, "gen_ai.conversation.id": "conv-42", "user.id": "customer-7",
    "gen_ai.request.temperature": 0.2, "app.feature": "refunds",
}  # fmt: skip


def test_an_otlp_json_export_becomes_a_trace_with_its_tree_cost_and_session(otlp, viewer_api):
    start = _now_ns()
    body = otlp_json(
        [
            json_span(ROOT, "POST /chat", start, kind=2),
            json_span(CHILD, "chat gpt-4o-mini", start + 100_000_000, parent=ROOT, attributes=GENERATION),
        ]
    )
    response = post(otlp, body)
    assert response.status_code == 200, response.content
    assert response.json() == {"partialSuccess": {}}

    page = viewer_api.get("/api/v1/llmops/traces/", {"session": "conv-42"}).json()
    assert page["count"] == 1
    trace = page["results"][0]
    assert trace["trace_id"] == TRACE and trace["spans"] == 2 and trace["name"] == "POST /chat"
    assert trace["service"] == "support-bot" and trace["user"] == "customer-7"
    assert (trace["input_tokens"], trace["output_tokens"]) == (1200, 300)
    # gpt-4o-mini in the built-in price table: 0.15 USD in, 0.60 USD out per million tokens.
    assert float(trace["cost"]) == pytest.approx((1200 * 0.15 + 300 * 0.60) / 1e6)
    assert trace["latency_ms"] == pytest.approx(1600.0)
    assert trace["models"] == ["gpt-4o-mini-2024-07-18"]

    detail = viewer_api.get(f"/api/v1/llmops/traces/{TRACE}/").json()
    spans = {span["span_id"]: span for span in detail["spans"]}
    assert spans[ROOT]["parent_span_id"] is None and spans[ROOT]["model"] == "" and spans[ROOT]["kind"] == "server"
    generation = spans[CHILD]
    assert generation["parent_span_id"] == ROOT
    assert generation["model"] == "gpt-4o-mini-2024-07-18" and generation["request_model"] == "gpt-4o-mini"
    assert (generation["input_tokens"], generation["output_tokens"]) == (1200, 300)
    assert float(generation["cost"]) == pytest.approx(float(trace["cost"]))
    assert generation["parameters"] == {"temperature": 0.2}
    # What no column takes is kept as sent, the resource beside it.
    assert generation["attributes"] == {"app.feature": "refunds"}
    assert generation["resource"]["deployment.environment"] == "test"
    assert generation["resource"]["otel.scope.name"] == "my.library"


def test_filters_find_traces_by_service_model_user_and_attribute(otlp, viewer_api):
    start = _now_ns()
    post(otlp, otlp_json([json_span(ROOT, "answer", start, attributes=GENERATION)]))
    other = json_span("1" * 16, "answer", start, attributes={"llm.model_name": "claude-3-5-haiku"})
    other["traceId"] = "a" * 32
    post(otlp, otlp_json([other], service="search"))

    def found(**params) -> list[str]:
        return [t["trace_id"] for t in viewer_api.get("/api/v1/llmops/traces/", params).json()["results"]]

    assert found() == [TRACE, "a" * 32] or found() == ["a" * 32, TRACE]
    assert found(service="search") == ["a" * 32]
    assert found(model="gpt-4o-mini-2024-07-18") == [TRACE]
    assert found(model="claude-3-5-haiku") == ["a" * 32]
    assert found(user="customer-7") == [TRACE]
    assert found(**{"attr.app.feature": "refunds"}) == [TRACE]
    assert found(**{"attr.app.feature": "billing"}) == []
    assert viewer_api.get("/api/v1/llmops/traces/", {"status": "maybe"}).status_code == 400


def test_spans_of_one_trace_in_two_exports_add_up(otlp, viewer_api):
    start = _now_ns()
    post(otlp, otlp_json([json_span(CHILD, "chat", start + 10, parent=ROOT, attributes=GENERATION)]))
    trace = Trace.objects.get(trace_id=TRACE)
    assert (trace.spans, trace.name) == (1, "")  # the root has not arrived yet
    post(otlp, otlp_json([json_span(ROOT, "POST /chat", start, attributes={"gen_ai.usage.input_tokens": 5})]))
    trace.refresh_from_db()
    assert (trace.spans, trace.name, trace.generations, trace.input_tokens) == (2, "POST /chat", 1, 1205)


def test_invalid_spans_are_refused_and_counted_the_others_stored(otlp):
    start = _now_ns()
    body = otlp_json(
        [
            json_span(ROOT, "ok", start),
            json_span("xyz", "bad id", start),
            json_span(CHILD, "ends before it starts", start, endTimeUnixNano=str(start - 1)),
        ]
    )
    response = post(otlp, body)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span 1: spanId" in partial["errorMessage"]
    assert list(Span.objects.filter(trace_id=TRACE).values_list("name", flat=True)) == ["ok"]


def test_protobuf_gzip_export_is_answered_in_protobuf_with_partial_success(otlp):
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bot")))
    scope = resource_spans.scope_spans.add()
    start = _now_ns()
    for span_id, trace_id in ((bytes.fromhex(ROOT), bytes.fromhex(TRACE)), (bytes.fromhex(CHILD), b"\0" * 16)):
        span = scope.spans.add(
            trace_id=trace_id, span_id=span_id, name="llm", kind=PbSpan.SPAN_KIND_CLIENT,
            start_time_unix_nano=start, end_time_unix_nano=start + 2_000_000,
        )  # fmt: skip
        span.attributes.append(KeyValue(key="llm.model_name", value=AnyValue(string_value="gpt-4o")))
        span.attributes.append(KeyValue(key="llm.token_count.prompt", value=AnyValue(int_value=10)))
    body = gzip.compress(request.SerializeToString())
    response = post(otlp, body, "application/x-protobuf", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "traceId" in answer.partial_success.error_message
    stored = Span.objects.get(trace_id=TRACE)
    assert (stored.model, stored.input_tokens, stored.service, stored.kind) == ("gpt-4o", 10, "bot", "client")


def test_deflate_and_zstd_bodies_are_read(otlp):
    import cramjam

    start = _now_ns()
    body = otlp_json([json_span(ROOT, "deflated", start)])
    assert post(otlp, zlib.compress(body), HTTP_CONTENT_ENCODING="deflate").status_code == 200
    other = json_span(CHILD, "zstd", start)
    other["traceId"] = "b" * 32
    assert post(otlp, bytes(cramjam.zstd.compress(otlp_json([other]))), HTTP_CONTENT_ENCODING="zstd").status_code == 200
    assert Span.objects.filter(name__in=["deflated", "zstd"]).count() == 2


def test_an_undecodable_body_is_a_400_and_nothing_is_stored(otlp):
    response = post(otlp, b"\xff\xfe not protobuf", "application/x-protobuf")
    assert response.status_code == 400
    assert "ExportTraceServiceRequest" in response.json()["detail"]
    response = post(otlp, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": 5}]}]}]}]}')
    assert response.status_code == 400
    assert "span 0: attributes[0].key" in response.json()["detail"]
    assert post(otlp, b"{not json").status_code == 400
    assert post(otlp, b"x", "text/plain").status_code == 400
    assert not Span.objects.exists() and not Trace.objects.exists()


def test_an_export_over_the_size_limit_is_a_413(otlp, settings):
    settings.LLMOPS_OTLP_MAX_BODY_BYTES = 2048
    big = otlp_json([json_span(ROOT, "x" * 4000, _now_ns())])
    assert post(otlp, big).status_code == 413
    # A small body that inflates past the limit too.
    response = post(otlp, gzip.compress(big), HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert "over the limit of 2048 bytes" in response.json()["detail"]


def test_the_token_decides_401_and_403(client, viewer_api):
    body = otlp_json([json_span(ROOT, "x", _now_ns())])
    assert client.generic("POST", URL, body, content_type="application/json").status_code == 401
    response = viewer_api.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]


def test_a_busy_process_sheds_load_with_503_and_retry_after(otlp, settings):
    from llmops.api.traces import _ingest_slots

    settings.LLMOPS_OTLP_MAX_CONCURRENT = 1
    slots = _ingest_slots()
    assert slots.acquire(blocking=False)  # another export is being stored
    try:
        response = post(otlp, otlp_json([json_span(ROOT, "x", _now_ns())]))
    finally:
        slots.release()
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert post(otlp, otlp_json([json_span(ROOT, "x", _now_ns())])).status_code == 200


def test_big_inputs_and_outputs_are_cut_and_marked(otlp, viewer_api, settings):
    settings.LLMOPS_TRACE_MAX_IO_CHARS = 1000
    attributes = {"llm.model_name": "gpt-4o", "input.value": "q" * 5000, "output.value": "short answer"}
    post(otlp, otlp_json([json_span(ROOT, "llm", _now_ns(), attributes=attributes)]))
    span = viewer_api.get(f"/api/v1/llmops/traces/{TRACE}/").json()["spans"][0]
    assert span["input"] == "q" * 1000 and span["input_truncated"] is True
    assert span["output"] == "short answer" and span["output_truncated"] is False


def test_spans_outside_the_retention_window_are_refused(otlp, settings):
    settings.LLMOPS_TRACES_RETENTION_DAYS = 7
    old = time.time_ns() - 8 * 86400 * 10**9
    response = post(otlp, otlp_json([json_span(ROOT, "old", old)]))
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "retention (7 days)" in response.json()["partialSuccess"]["errorMessage"]


def test_sessions_and_users_list_their_totals(otlp, viewer_api):
    start = _now_ns()
    post(otlp, otlp_json([json_span(ROOT, "turn 1", start, attributes=GENERATION)]))
    second = json_span(CHILD, "turn 2", start + 10**9, attributes=GENERATION)
    second["traceId"] = "c" * 32
    post(otlp, otlp_json([second]))
    session = viewer_api.get("/api/v1/llmops/sessions/").json()["results"][0]
    assert (session["key"], session["user"], session["traces"], session["generations"]) == (
        "conv-42",
        "customer-7",
        2,
        2,
    )
    assert session["input_tokens"] == 2400
    user = viewer_api.get("/api/v1/llmops/users/", {"q": "customer"}).json()["results"][0]
    assert (user["id"], user["traces"], user["sessions"], user["output_tokens"]) == ("customer-7", 2, 1, 600)
    assert viewer_api.get("/api/v1/llmops/sessions/conv-42/").json()["traces"] == 2


def test_the_portal_prompt_attributes_link_a_generation_to_its_prompt_version(otlp, viewer_api, capitals_prompt):
    linked = {**GENERATION, "opsportal.prompt.name": "capitals", "opsportal.prompt.version": 1}
    post(otlp, otlp_json([json_span(ROOT, "answer", _now_ns(), attributes=linked)]))
    trace = viewer_api.get(f"/api/v1/llmops/traces/{TRACE}/").json()
    assert trace["prompt"] == {"name": "capitals", "version": 1}
    assert (trace["spans"][0]["prompt_name"], trace["spans"][0]["prompt_version"]) == ("capitals", 1)
    page = viewer_api.get("/api/v1/llmops/traces/", {"prompt": "capitals", "prompt_version": 1}).json()
    assert [t["trace_id"] for t in page["results"]] == [TRACE]
    assert capitals_prompt.versions.get().traces.count() == 1


def test_every_convention_fills_the_same_columns(otlp):
    """The same LLM call as the current GenAI names, the deprecated ones and OpenInference's."""
    current = {
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cache_read.input_tokens": 20,
        "gen_ai.usage.reasoning.output_tokens": 3,
        "gen_ai.conversation.id": "c1",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}]),
    }
    deprecated = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 50,
        "gen_ai.usage.completion_tokens": 7,
        "gen_ai.usage.cache_read_input_tokens": 20,
        "gen_ai.usage.reasoning_tokens": 3,
        "session.id": "c1",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Hi",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Hello",
    }
    openinference = {
        "llm.provider": "openai",
        "llm.model_name": "gpt-4o",
        "llm.token_count.prompt": 50,
        "llm.token_count.completion": 7,
        "llm.token_count.prompt_details.cache_read": 20,
        "llm.token_count.completion_details.reasoning": 3,
        "session.id": "c1",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Hi",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Hello",
        "openinference.span.kind": "LLM",
    }
    spans = []
    for number, attributes in enumerate((current, deprecated, openinference)):
        span = json_span(f"{number + 1:016x}", "llm", _now_ns(), attributes=attributes)
        span["traceId"] = f"{number + 1:032x}"
        spans.append(span)
    assert post(otlp, otlp_json(spans)).json() == {"partialSuccess": {}}
    rows = list(Span.objects.order_by("span_id"))
    columns = [(r.provider, r.model, r.input_tokens, r.output_tokens, r.cache_read_tokens, r.reasoning_tokens,
                r.session_key) for r in rows]  # fmt: skip
    assert columns == [("openai", "gpt-4o", 50, 7, 20, 3, "c1")] * 3
    assert all(r.attributes == {} for r in rows[:2])  # every attribute was mapped
    assert rows[2].attributes == {} and rows[2].operation == "llm"
    for row in rows:
        assert "Hi" in row.input and "Hello" in row.output
    assert len({r.cost for r in rows}) == 1 and rows[0].cost is not None
