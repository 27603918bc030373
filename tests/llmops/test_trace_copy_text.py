"""Span texts through the COPY that stores them: what a sender sends comes back as sent.

COPY's text format escapes backslashes, tabs, newlines and carriage returns, and PostgreSQL cannot
store the NUL character (it is dropped). The ingest checks a row's texts for those at once and
escapes only rows that have them, so a row with one odd character among plain ones, and rows of
plain text next to it in the same export, must all come back unchanged. Times come back to the
microsecond, and the trace row's times are its spans'.
"""

from __future__ import annotations

import datetime
import json
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from llmops.models import Span, Trace
from tests.conftest import api_client_for

URL = "/api/v1/llmops/otlp/v1/traces"
TRACE = "0af7651916cd43dd8448eb211c80319c"
MESSAGES = [{"role": "user", "parts": [{"type": "text", "content": 'Say "hi"\nthen\tstop \\ ü ✓'}]}]


def _export(start: int) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("service.name", "bot\tone"), ("host.name", "C:\\hosts\\bot")):
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "lib"
    plain = scope.spans.add(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex("00f067aa0ba902b7"), name="POST /chat",
        kind=PbSpan.SPAN_KIND_SERVER, start_time_unix_nano=start, end_time_unix_nano=start + 1_234_567_891,
    )  # fmt: skip
    plain.attributes.add(key="http.route").value.string_value = "/chat"
    odd = scope.spans.add(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex("00f067aa0ba902b8"), parent_span_id=plain.span_id,
        name="tool\tcall\nlookup", start_time_unix_nano=start + 1_001, end_time_unix_nano=start + 999_999,
    )  # fmt: skip
    for key, value in (
        ("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "model\\x"), ("gen_ai.conversation.id", "c\r1"),
        ("user.id", "nul\x00user"), ("app.path", "C:\\temp\\new"), ("app.note", "line one\nline two\x00"),
        ("gen_ai.input.messages", json.dumps(MESSAGES)), ("output.value", "done\r\n"),
    ):  # fmt: skip
        odd.attributes.add(key=key).value.string_value = value
    odd.status.code = 2
    odd.status.message = "failed:\n\ttimeout"
    return request.SerializeToString()


def test_odd_characters_come_back_as_sent_and_the_plain_rows_beside_them_too(operator, viewer_api):
    start = (time.time_ns() - 60 * 10**9) // 1000 * 1000 + 123  # some nanoseconds below the microsecond
    response = api_client_for(operator).generic("POST", URL, _export(start), content_type="application/x-protobuf")
    assert response.status_code == 200, response.content

    detail = viewer_api.get(f"/api/v1/llmops/traces/{TRACE}/").json()
    spans = {span["span_id"]: span for span in detail["spans"]}
    plain, odd = spans["00f067aa0ba902b7"], spans["00f067aa0ba902b8"]
    assert plain["name"] == "POST /chat" and plain["attributes"] == {"http.route": "/chat"}
    assert plain["service"] == "bot\tone"
    assert plain["resource"] == {"host.name": "C:\\hosts\\bot", "otel.scope.name": "lib"}
    assert odd["name"] == "tool\tcall\nlookup"
    assert odd["status"] == "error" and odd["status_message"] == "failed:\n\ttimeout"
    assert odd["request_model"] == "model\\x" and odd["model"] == "model\\x"
    assert odd["session"] == "c\r1" and odd["user"] == "nuluser"
    assert odd["attributes"] == {"app.path": "C:\\temp\\new", "app.note": "line one\nline two"}
    assert odd["input"] == MESSAGES and odd["output"] == "done\r\n"
    assert odd["resource"] == plain["resource"]

    # Times to the microsecond (the nanoseconds below it cut), the trace's the same as its spans'.
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    first = Span.objects.get(span_id="00f067aa0ba902b7")
    assert first.start_time == epoch + datetime.timedelta(microseconds=start // 1000)
    assert first.end_time == epoch + datetime.timedelta(microseconds=(start + 1_234_567_891) // 1000)
    assert first.duration_ms == 1234.567891
    trace = Trace.objects.get(trace_id=TRACE)
    assert (trace.start_time, trace.end_time) == (first.start_time, first.end_time)
    assert trace.session.key == "c\r1" and trace.end_user.external_id == "nuluser"
    assert trace.name == "POST /chat" and trace.service == "bot\tone" and trace.errors == 1
