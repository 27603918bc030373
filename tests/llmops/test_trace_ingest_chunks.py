"""A protobuf export bigger than one COPY chunk: decoded a chunk at a time while the one before is stored.

What a sender sees must not depend on where the chunks fall: every span stored or counted as refused
(the first reason named), the prompt version a late span names linked (the COPY is ended to look it
up and resumed), spans of another day in their own partition, and a refused export stores nothing.
"""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from llmops.models import Span
from llmops.traces import cost, store
from tests.conftest import api_client_for

URL = "/api/v1/llmops/otlp/v1/traces"
SPANS = store.COPY_CHUNK * 2 + 60
LINKED, MISSING, BAD_ID, YESTERDAY = store.COPY_CHUNK + 40, store.COPY_CHUNK + 50, SPANS - 20, SPANS - 10
DAY_NS = 86400 * 10**9


@pytest.fixture
def otlp(operator):
    cost.PROMPT_VERSIONS.forget()
    cost.forget_prices()
    return api_client_for(operator)


def _attr(span, key: str, value: object) -> None:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    span.attributes.append(KeyValue(key=key, value=any_value))


def _export(start: int) -> bytes:
    """SPANS spans of 10-span traces: a generation of gpt-4o-mini each; one late span names capitals v1,
    another a version that does not exist, one has a bad trace id, one started a day earlier."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bot")))
    scope = resource_spans.scope_spans.add()
    for n in range(SPANS):
        trace_id = b"\0" * 16 if n == BAD_ID else (n // 10 + 1).to_bytes(16, "big")
        at = start - DAY_NS if n == YESTERDAY else start + n * 1000
        span = scope.spans.add(
            trace_id=trace_id, span_id=(n + 1).to_bytes(8, "big"), name=f"step {n}", kind=PbSpan.SPAN_KIND_CLIENT,
            start_time_unix_nano=at, end_time_unix_nano=at + 2_000_000,
        )  # fmt: skip
        _attr(span, "gen_ai.request.model", "gpt-4o-mini")
        _attr(span, "gen_ai.usage.input_tokens", 1000)
        _attr(span, "gen_ai.usage.output_tokens", 100)
        if n in (LINKED, MISSING):
            _attr(span, "opsportal.prompt.name", "capitals")
            _attr(span, "opsportal.prompt.version", 1 if n == LINKED else 9)
    return request.SerializeToString()


def _trace_id(n: int) -> str:
    return (n // 10 + 1).to_bytes(16, "big").hex()


def test_an_export_of_several_chunks_is_stored_whole_with_late_prompt_links(otlp, viewer_api, capitals_prompt):
    start = time.time_ns() - 60 * 10**9
    response = otlp.generic("POST", URL, _export(start), content_type="application/x-protobuf")
    assert response.status_code == 200, response.content
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message.startswith(f"span {BAD_ID}: traceId")
    assert Span.objects.count() == SPANS - 1

    linked = viewer_api.get(f"/api/v1/llmops/traces/{_trace_id(LINKED)}/").json()
    assert linked["prompt"] == {"name": "capitals", "version": 1}
    assert len(linked["spans"]) == 10
    missing = viewer_api.get(f"/api/v1/llmops/traces/{_trace_id(MISSING)}/").json()
    assert missing["prompt"] is None
    assert [s["prompt_version"] for s in missing["spans"] if s["name"] == f"step {MISSING}"] == [9]
    # Every generation priced (gpt-4o-mini: 0.15 USD in, 0.60 USD out per million), late chunks too.
    last = viewer_api.get(f"/api/v1/llmops/traces/{_trace_id(2 * store.COPY_CHUNK + 30)}/").json()  # the third chunk
    assert float(last["cost"]) == pytest.approx(10 * (1000 * 0.15 + 100 * 0.60) / 1e6)
    # The span of the day before is in its trace (its own partition), which now starts a day earlier.
    early = viewer_api.get(f"/api/v1/llmops/traces/{_trace_id(YESTERDAY)}/").json()
    assert f"step {YESTERDAY}" in [s["name"] for s in early["spans"]] and len(early["spans"]) == 10
    assert capitals_prompt.versions.get().traces.count() == 1


def test_a_trace_whose_spans_straddle_two_chunks_is_totalled_once(otlp, viewer_api):
    body = _export(time.time_ns() - 60 * 10**9)
    assert otlp.generic("POST", URL, body, content_type="application/x-protobuf").status_code == 200
    straddling = store.COPY_CHUNK - 5  # its trace's spans are in the first and the second chunk
    trace = viewer_api.get(f"/api/v1/llmops/traces/{_trace_id(straddling)}/").json()
    assert (trace["spans"].__len__(), trace["input_tokens"], trace["output_tokens"]) == (10, 10 * 1000, 10 * 100)
    assert viewer_api.get("/api/v1/llmops/traces/").json()["count"] == len({n // 10 for n in range(SPANS)})
