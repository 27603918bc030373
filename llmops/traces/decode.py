"""OTLP/HTTP trace exports (ExportTraceServiceRequest, protobuf or JSON) decoded into span records.

A body that cannot be read as an export at all raises `opsportal.otlp.PayloadError` (400, nothing
stored). A span that can be read but not stored (ids of the wrong size, no start time, ends before it
starts, no name, outside the accepted time window) is counted in `rejected` with the first reason, and
the others are stored: OTLP's partial success. Attribute conventions are mapped by `conventions`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from opsportal.otlp import (
    HEX,
    PayloadError,
    any_value_pb,
    is_protobuf,
    json_list,
    kv_json,
    parse_json,
    uint,
)

from .conventions import Mapped, first_token_ns, map_span

UTC = datetime.UTC
UNKNOWN_SERVICE = "unknown_service"
# The column sizes of llmops_span: longer values are cut.
LIMITS = {"name": 500, "service": 200, "model": 200, "key": 200, "provider": 100, "operation": 50}
NAME_MAX, MODEL_MAX, KEY_MAX, PROVIDER_MAX, OPERATION_MAX = (
    LIMITS[k] for k in ("name", "model", "key", "provider", "operation")
)
KINDS = ("internal", "internal", "server", "client", "producer", "consumer")
KIND_NAMES = {f"SPAN_KIND_{kind.upper()}": number for number, kind in enumerate(KINDS) if number}
STATUSES = ("unset", "ok", "error")
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
FUTURE_NS = 3600 * 10**9


class SpanPayloadError(PayloadError):
    """A trace export that cannot be read; `record` is the span's index in the export."""

    unit = "span"


@dataclass(slots=True)
class SpanRecord:
    """One span ready to store: the columns of `llmops.models.Span` (times in ns since the epoch)."""

    start_ns: int
    end_ns: int
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    status: str
    status_message: str
    mapped: Mapped
    resource_json: str
    input: str = ""
    output: str = ""
    input_truncated: bool = False
    output_truncated: bool = False
    cost: float | None = None
    prompt_version_id: int | None = None

    @property
    def start_time(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.start_ns / 1e9, UTC)

    @property
    def end_time(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.end_ns / 1e9, UTC)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class TraceBatch:
    """A decoded export: the spans to store, and those refused (count and the first reason)."""

    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""
    protobuf: bool = False
    # A lazy batch (`decode_protobuf(..., lazy=True)`): decodes the spans still to come, one a step, and
    # the days (since the epoch) of the start times in the accepted window, known before decoding.
    pending: Iterator[None] | None = None
    start_days: set[int] | None = None

    def reject(self, index: int, message: str) -> None:
        self.rejected += 1
        if not self.reason:
            self.reason = f"span {index}: {message}"

    def chunks(self, size: int) -> Iterator[list[SpanRecord]]:
        """The spans, `size` at a time, from the first; a lazy batch decodes them as they are asked for
        (so the caller stores a chunk while the next is decoded). Once exhausted, `spans`, `rejected`
        and `reason` are complete."""
        spans = self.spans
        start = 0
        while True:
            pending = self.pending
            while pending is not None and len(spans) < start + size:
                if next(pending, _DONE) is _DONE:
                    self.pending = pending = None
            chunk = spans[start : start + size]
            if not chunk:
                return
            yield chunk
            start += size

    def finish(self) -> TraceBatch:
        """Decode whatever a lazy batch still holds (then `spans`, `rejected` and `reason` are complete)."""
        if self.pending is not None:
            for _ in self.pending:
                pass
            self.pending = None
        return self


_DONE = object()


class _Window:
    """The accepted start times (within retention, at most an hour ahead), and the size kept of inputs/outputs."""

    def __init__(self, now_ns: int) -> None:
        self.io_limit = settings.LLMOPS_TRACE_MAX_IO_CHARS
        self.oldest = now_ns - settings.LLMOPS_TRACES_RETENTION_DAYS * 86400 * 10**9
        self.newest = now_ns + FUTURE_NS

    def problem(self, start_ns: int, end_ns: int) -> str:
        if start_ns <= 0:
            return "startTimeUnixNano: required."
        if end_ns < start_ns:
            return "endTimeUnixNano: before startTimeUnixNano."
        if start_ns < self.oldest:
            return f"startTimeUnixNano: older than the retention ({settings.LLMOPS_TRACES_RETENTION_DAYS} days)."
        if start_ns > self.newest:
            return "startTimeUnixNano: more than an hour in the future."
        return ""


def _io_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def without_nul(value: object) -> object:
    """`value` without NUL characters in its texts (PostgreSQL cannot store them, in text or in jsonb)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(item) for item in value]
    return value


def _resource_json(resource: dict[str, object], scope_name: str, scope_version: str) -> str:
    if scope_name:
        resource = {**resource, "otel.scope.name": scope_name}
        if scope_version:
            resource["otel.scope.version"] = scope_version
    if not resource:
        return "{}"
    text = json.dumps(resource, ensure_ascii=False, default=str)
    return json.dumps(without_nul(resource), ensure_ascii=False, default=str) if "\\u0000" in text else text


def _record(
    batch: TraceBatch,
    index: int,
    ids: tuple[str, str, str],
    times: tuple[int, int],
    name: str,
    kind: int,
    status: tuple[int, str],
    mapped: Mapped,
    service: str,
    resource_json: str,
    window: _Window,
) -> None:
    """Validate one span and add it to the batch (or count it as rejected)."""
    trace_id, span_id, parent_id = ids
    start_ns, end_ns = times
    if (
        len(trace_id) != 32 or len(span_id) != 16 or (parent_id and len(parent_id) != 16) or not name
        or not window.oldest <= start_ns <= window.newest or start_ns <= 0 or (end_ns and end_ns < start_ns)
    ):  # fmt: skip
        problem = (
            ("traceId: must be 16 bytes (32 hex digits), not all zero." if len(trace_id) != 32 else "")
            or ("spanId: must be 8 bytes (16 hex digits), not all zero." if len(span_id) != 16 else "")
            or ("parentSpanId: must be empty or 8 bytes (16 hex digits)." if parent_id and len(parent_id) != 16 else "")
            or ("name: required." if not name else "")
            or window.problem(start_ns, end_ns or start_ns)
        )
        batch.reject(index, problem)
        return
    end_ns = end_ns or start_ns
    code, message = status
    m = mapped
    if code == 2 and not message:
        message = next(
            (str(e["attributes"].get("exception.message", "")) for e in m.events if e["name"] == "exception"), ""
        ) or str(m.attributes.get("error.type", ""))
    if m.events and m.time_to_first_token_ms is None and (first := first_token_ns(m.events)):
        m.time_to_first_token_ms = max(0.0, (first - start_ns) / 1e6)
    limit = window.io_limit
    text_in = m.input if m.input.__class__ is str else _io_text(m.input)
    text_out = m.output if m.output.__class__ is str else _io_text(m.output)
    cut_in = len(text_in) > limit
    if cut_in:
        text_in = text_in[:limit]
    cut_out = len(text_out) > limit
    if cut_out:
        text_out = text_out[:limit]
    if (
        len(m.operation) > OPERATION_MAX or len(m.provider) > PROVIDER_MAX or len(m.model) > MODEL_MAX
        or len(m.request_model) > MODEL_MAX or len(m.session_key) > KEY_MAX or len(m.user_key) > KEY_MAX
        or len(m.prompt_name) > KEY_MAX
    ):  # fmt: skip
        _cut_columns(m)
    if "\x00" in m.session_key or "\x00" in m.user_key:
        # Keys of the session and end-user rows: stored without it (PostgreSQL cannot), so grouped without it.
        m.session_key, m.user_key = m.session_key.replace("\x00", ""), m.user_key.replace("\x00", "")
    batch.spans.append(
        SpanRecord(
            start_ns, end_ns, trace_id, span_id, parent_id, name if len(name) <= NAME_MAX else name[:NAME_MAX],
            KINDS[kind] if 0 <= kind < len(KINDS) else "internal", service,
            STATUSES[code] if 0 <= code < len(STATUSES) else "unset", message, m, resource_json,
            text_in, text_out, cut_in, cut_out, m.cost,
        )
    )  # fmt: skip


def _cut_columns(m: Mapped) -> None:
    """Values longer than their columns (LIMITS) cut."""
    m.operation = m.operation[: LIMITS["operation"]]
    m.provider = m.provider[: LIMITS["provider"]]
    m.model = m.model[: LIMITS["model"]]
    m.request_model = m.request_model[: LIMITS["model"]]
    m.session_key = m.session_key[: LIMITS["key"]]
    m.user_key = m.user_key[: LIMITS["key"]]
    m.prompt_name = m.prompt_name[: LIMITS["key"]]


def _service(resource: dict[str, object]) -> str:
    value = resource.pop("service.name", UNKNOWN_SERVICE)
    text = value.strip() if isinstance(value, str) else str(value)
    return (text or UNKNOWN_SERVICE)[: LIMITS["service"]]


def _pb_value(value) -> object:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    return any_value_pb(value)


def _pb_attributes(attributes) -> list[tuple[str, object]]:
    """A protobuf KeyValue list as (key, value) pairs: a non-empty string (most values) read first, then an integer."""
    return [
        (kv.key, text if (text := (value := kv.value).string_value)
         else value.int_value if value.WhichOneof("value") == "int_value" else any_value_pb(value))
        for kv in attributes
    ]  # fmt: skip


def _pb_id(raw: bytes) -> str:
    """An id in hex; all zeros (OTLP's "no id") as "" (a wrong size stays visible to the checks)."""
    return raw.hex() if raw.strip(b"\0") else ""


def decode_protobuf(data: bytes, now_ns: int | None = None, *, lazy: bool = False) -> TraceBatch:
    """Decode a protobuf export: the upb message's fields read directly (no conversion to dicts first).

    `lazy`: the message is parsed (a body that is not an export raises here), the spans are decoded as
    `TraceBatch.chunks` asks for them."""
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        raise SpanPayloadError("(body)", f"not an OTLP ExportTraceServiceRequest: {exc}.") from exc
    batch = TraceBatch(protobuf=True)
    window = _Window(now_ns or _now_ns())
    batch.pending = _protobuf_spans(request, batch, window)
    if not lazy:
        return batch.finish()
    oldest, newest = max(window.oldest, 1), window.newest
    batch.start_days = {
        start // DAY_NS
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        if oldest <= (start := span.start_time_unix_nano) <= newest
    }
    return batch


DAY_NS = 86400 * 10**9


def _protobuf_spans(request: ExportTraceServiceRequest, batch: TraceBatch, window: _Window) -> Iterator[None]:
    """Decode the export's spans into `batch`, yielding after each."""
    index = 0
    for resource_spans in request.resource_spans:
        resource = {kv.key: _pb_value(kv.value) for kv in resource_spans.resource.attributes}
        service = _service(resource)
        for scope_spans in resource_spans.scope_spans:
            resource_json = _resource_json(resource, scope_spans.scope.name, scope_spans.scope.version)
            for span in scope_spans.spans:
                span_events = span.events
                events = [
                    (event.name, event.time_unix_nano, dict(_pb_attributes(event.attributes)))
                    for event in span_events
                ] if span_events else ()  # fmt: skip
                mapped = map_span(_pb_attributes(span.attributes), events)
                status = span.status
                _record(
                    batch, index, (_pb_id(span.trace_id), _pb_id(span.span_id), _pb_id(span.parent_span_id)),
                    (span.start_time_unix_nano, span.end_time_unix_nano), span.name, span.kind,
                    (status.code, status.message), mapped, service, resource_json, window,
                )  # fmt: skip
                index += 1
                yield


def _json_id(value: object, size: int) -> str:
    """A JSON id in hex (the OTLP/JSON form); anything else is "" (and the span is rejected)."""
    if not isinstance(value, str) or len(value) != size or not HEX.fullmatch(value) or value.strip("0") == "":
        return "" if not value else "!"
    return value.lower()


def _json_enum(value: object, names: Mapping[str, int]) -> int:
    if isinstance(value, str):
        return names.get(value, int(value) if value.isdigit() else 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def decode_json(data: bytes, now_ns: int | None = None, *, lazy: bool = False) -> TraceBatch:
    """Decode an OTLP/JSON export (always whole: `lazy` is accepted for the decoders' common signature)."""
    payload = parse_json(data)
    if not isinstance(payload, Mapping):
        raise SpanPayloadError("(body)", "must be an ExportTraceServiceRequest object with resourceSpans.")
    batch = TraceBatch()
    window = _Window(now_ns or _now_ns())
    index = 0
    try:
        for r, resource_spans in enumerate(json_list(payload, "resourceSpans", None, "resourceSpans")):
            where = f"resourceSpans[{r}]"
            if not isinstance(resource_spans, Mapping):
                raise SpanPayloadError(where, "must be an object.", index)
            resource = kv_json((resource_spans.get("resource") or {}).get("attributes") or [], index, where)
            service = _service(resource)
            for s, scope_spans in enumerate(json_list(resource_spans, "scopeSpans", index, f"{where}.scopeSpans")):
                if not isinstance(scope_spans, Mapping):
                    raise SpanPayloadError(f"{where}.scopeSpans[{s}]", "must be an object.", index)
                scope = scope_spans.get("scope") or {}
                resource_json = _resource_json(resource, str(scope.get("name") or ""), str(scope.get("version") or ""))
                for span in json_list(scope_spans, "spans", index, f"{where}.scopeSpans[{s}].spans"):
                    _json_span(batch, index, span, service, resource_json, window)
                    index += 1
    except PayloadError as exc:
        raise SpanPayloadError(exc.field, exc.message, exc.record) from exc
    return batch


def _json_span(batch: TraceBatch, index: int, span: object, service: str, resource_json: str, window: _Window) -> None:
    if not isinstance(span, Mapping):
        raise SpanPayloadError("(span)", "must be a Span object.", index)
    events = []
    for e, event in enumerate(json_list(span, "events", index, "events")):
        if not isinstance(event, Mapping):
            raise SpanPayloadError(f"events[{e}]", "must be an object.", index)
        attributes = kv_json(event.get("attributes") or [], index, f"events[{e}].attributes")
        events.append(
            (str(event.get("name") or ""), uint(event.get("timeUnixNano"), index, "timeUnixNano"), attributes)
        )
    attributes = kv_json(span.get("attributes") or [], index, "attributes")
    mapped = map_span(attributes.items(), events)
    status = span.get("status") or {}
    if not isinstance(status, Mapping):
        raise SpanPayloadError("status", "must be an object.", index)
    name = span.get("name")
    _record(
        batch, index,
        (_json_id(span.get("traceId"), 32), _json_id(span.get("spanId"), 16),
         _json_id(span.get("parentSpanId"), 16)),
        (uint(span.get("startTimeUnixNano"), index, "startTimeUnixNano"),
         uint(span.get("endTimeUnixNano"), index, "endTimeUnixNano")),
        name if isinstance(name, str) else "", _json_enum(span.get("kind"), KIND_NAMES),
        (_json_enum(status.get("code"), STATUS_NAMES), str(status.get("message") or "")),
        mapped, service, resource_json, window,
    )  # fmt: skip


def _now_ns() -> int:
    return int(datetime.datetime.now(UTC).timestamp() * 1e9)


def decoder(content_type: str) -> Callable[..., TraceBatch]:
    """The decoder for a Content-Type (protobuf or JSON); any other type raises PayloadError."""
    return decode_protobuf if is_protobuf(content_type) else decode_json
