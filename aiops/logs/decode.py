"""Decoding of log pushes into records: OTLP/HTTP (protobuf or JSON), Loki's push API (JSON or snappy
protobuf) and JSON lines. Every decoder validates the whole batch before anything is stored: the first
problem raises `LogPayloadError` naming the record (its index in the batch) and the field.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from opsportal.otlp import (
    PayloadError,
    any_value_json,
    any_value_pb,
    attr_text,
    hex_id,
    json_list,
    json_string,
    kv_json,
    parse_json,
    uint,
)
from opsportal.otlp import (
    decompress as decompress,  # the log endpoints read it from here
)

UTC = datetime.UTC
SERVICE_MAX_LENGTH = 200
UNKNOWN_SERVICE = "unknown_service"
# Loki stream labels that name the service, in this order (CONTRACT.md).
LOKI_SERVICE_LABELS = ("service", "service_name", "job")
LEVEL_LABELS = ("level", "severity", "detected_level", "lvl", "loglevel")

SEVERITY_WORDS = {
    "trace": "debug", "debug": "debug", "dbug": "debug", "info": "info", "information": "info",
    "informational": "info", "notice": "info", "warn": "warning", "warning": "warning", "error": "error",
    "err": "error", "eror": "error", "fatal": "critical", "critical": "critical", "crit": "critical",
    "alert": "critical", "emerg": "critical", "emergency": "critical", "panic": "critical",
}  # fmt: skip


# Raised for a push that cannot be stored (the portal's OTLP receivers share it): `record` is the index of
# the offending record (None: the batch).
LogPayloadError = PayloadError


class ParsedRecord(NamedTuple):
    """One log record as stored (attributes are str to str)."""

    time: datetime.datetime
    service: str
    severity: str
    body: str
    attributes: dict[str, str]
    trace_id: str
    span_id: str


@dataclass
class Batch:
    """A decoded push: its records, and how to answer the sender (OTLP wants its own response type)."""

    records: list[ParsedRecord]
    protobuf: bool = False


def severity_from_word(word: str) -> str | None:
    return SEVERITY_WORDS.get(word.strip().lower())


# The SeverityNumber enum's names as some JSON encoders write them (SEVERITY_NUMBER_ERROR2): the range's first number.
OTLP_SEVERITY_NAMES = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}


def severity_from_otlp(number: int, text: str) -> str:
    """OTLP's SeverityNumber ranges (1-4 trace, 5-8 debug, 9-12 info, 13-16 warn, 17-20 error, 21-24 fatal)."""
    if number >= 21:
        return "critical"
    if number >= 17:
        return "error"
    if number >= 13:
        return "warning"
    if number >= 9:
        return "info"
    if number >= 1:
        return "debug"
    return severity_from_word(text) or "info" if text else "info"


def _service(value: object, record: int, field: str) -> str:
    if not isinstance(value, str):
        raise LogPayloadError(field, "must be a string.", record)
    value = value.strip() or UNKNOWN_SERVICE
    if len(value) > SERVICE_MAX_LENGTH:
        raise LogPayloadError(field, f"at most {SERVICE_MAX_LENGTH} characters.", record)
    return value


def _nanos_to_time(nanos: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(nanos / 1e9, UTC)


# --- OTLP ----------------------------------------------------------------------------------------------------


def decode_otlp_protobuf(data: bytes) -> Batch:
    try:
        request = ExportLogsServiceRequest.FromString(data)
    except DecodeError as exc:
        raise LogPayloadError("(body)", f"not an OTLP ExportLogsServiceRequest: {exc}.") from exc
    records: list[ParsedRecord] = []
    now_ns = time.time_ns()
    for resource_logs in request.resource_logs:
        resource = {kv.key: attr_text(any_value_pb(kv.value)) for kv in resource_logs.resource.attributes}
        index = len(records)
        service = _service(resource.pop("service.name", UNKNOWN_SERVICE), index, "resource.service.name")
        for scope_logs in resource_logs.scope_logs:
            for log in scope_logs.log_records:
                index = len(records)
                attributes = dict(resource)
                for kv in log.attributes:
                    value = kv.value
                    if value.WhichOneof("value") == "string_value":
                        attributes[kv.key] = value.string_value
                    else:
                        attributes[kv.key] = attr_text(any_value_pb(value))
                body = log.body
                text = body.string_value if body.HasField("string_value") else attr_text(any_value_pb(body))
                trace = log.trace_id.hex() if log.trace_id else ""
                span = log.span_id.hex() if log.span_id else ""
                if severity := log.severity_number:
                    level = severity_from_otlp(severity, "")
                else:
                    level = severity_from_otlp(0, log.severity_text)
                records.append(
                    ParsedRecord(
                        _nanos_to_time(log.time_unix_nano or log.observed_time_unix_nano or now_ns),
                        service,
                        level,
                        text,
                        attributes,
                        hex_id(trace, 32, index, "traceId"),
                        hex_id(span, 16, index, "spanId"),
                    )
                )
    return Batch(records, protobuf=True)


def decode_otlp_json(data: bytes) -> Batch:
    payload = parse_json(data)
    if not isinstance(payload, Mapping):
        raise LogPayloadError("(body)", "must be an ExportLogsServiceRequest object with resourceLogs.")
    records: list[ParsedRecord] = []
    now_ns = time.time_ns()
    for r, resource_logs in enumerate(json_list(payload, "resourceLogs", None, "resourceLogs")):
        where = f"resourceLogs[{r}]"
        if not isinstance(resource_logs, Mapping):
            raise LogPayloadError(where, "must be an object.", len(records))
        resource_obj = resource_logs.get("resource") or {}
        raw = kv_json(resource_obj.get("attributes") or [], len(records), f"{where}.resource.attributes")
        resource = {key: attr_text(value) for key, value in raw.items()}
        service = _service(resource.pop("service.name", UNKNOWN_SERVICE), len(records), "resource.service.name")
        for s, scope_logs in enumerate(json_list(resource_logs, "scopeLogs", len(records), f"{where}.scopeLogs")):
            scope_where = f"{where}.scopeLogs[{s}].logRecords"
            for log in json_list(scope_logs, "logRecords", len(records), scope_where):
                index = len(records)
                if not isinstance(log, Mapping):
                    raise LogPayloadError("(record)", "must be a LogRecord object.", index)
                attributes = dict(resource)
                for key, value in kv_json(log.get("attributes") or [], index, "attributes").items():
                    attributes[key] = attr_text(value)
                body = any_value_json(log.get("body") or {}, index, "body")
                raw_number = log.get("severityNumber")
                if isinstance(raw_number, str) and raw_number.startswith("SEVERITY_NUMBER_"):
                    raw_number = OTLP_SEVERITY_NAMES.get(
                        raw_number.removeprefix("SEVERITY_NUMBER_")[:5].rstrip("0123456789"), 0
                    )
                number = uint(raw_number, index, "severityNumber")
                text = log.get("severityText") or ""
                if not isinstance(text, str):
                    raise LogPayloadError("severityText", "must be a string.", index)
                nanos = uint(log.get("timeUnixNano"), index, "timeUnixNano") or uint(
                    log.get("observedTimeUnixNano"), index, "observedTimeUnixNano"
                )
                records.append(
                    ParsedRecord(
                        _nanos_to_time(nanos or now_ns),
                        service,
                        severity_from_otlp(number, text) if number else severity_from_otlp(0, text),
                        body if isinstance(body, str) else attr_text(body),
                        attributes,
                        hex_id(json_string(log.get("traceId"), index, "traceId"), 32, index, "traceId"),
                        hex_id(json_string(log.get("spanId"), index, "spanId"), 16, index, "spanId"),
                    )
                )
    return Batch(records)


# --- Loki ----------------------------------------------------------------------------------------------------


def _loki_messages() -> tuple[type, type]:
    """Loki's push.proto (PushRequest, StreamAdapter, EntryAdapter, LabelPairAdapter), built in code (no protoc)."""
    file = descriptor_pb2.FileDescriptorProto(name="opsportal_loki_push.proto", package="logproto", syntax="proto3")
    file.dependency.append("google/protobuf/timestamp.proto")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    kinds = descriptor_pb2.FieldDescriptorProto

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            proto.field.add(name=field_name, number=number, label=label, type=kind, type_name=type_name or None)

    message(
        "LabelPairAdapter",
        [("name", 1, optional, kinds.TYPE_STRING, ""), ("value", 2, optional, kinds.TYPE_STRING, "")],
    )
    message(
        "EntryAdapter",
        [
            ("timestamp", 1, optional, kinds.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            ("line", 2, optional, kinds.TYPE_STRING, ""),
            ("structuredMetadata", 3, repeated, kinds.TYPE_MESSAGE, ".logproto.LabelPairAdapter"),
        ],
    )
    message(
        "StreamAdapter",
        [
            ("labels", 1, optional, kinds.TYPE_STRING, ""),
            ("entries", 2, repeated, kinds.TYPE_MESSAGE, ".logproto.EntryAdapter"),
            ("hash", 3, optional, kinds.TYPE_UINT64, ""),
        ],
    )
    message("PushRequest", [("streams", 1, repeated, kinds.TYPE_MESSAGE, ".logproto.StreamAdapter")])
    pool = descriptor_pool.DescriptorPool()
    from google.protobuf import timestamp_pb2

    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    push = message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))
    stream = message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.StreamAdapter"))
    return push, stream


LokiPushRequest, LokiStream = _loki_messages()
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_loki_labels(text: str, record: int) -> dict[str, str]:
    """`{job="api", level="error"}` as a dict (Prometheus label syntax, as Loki's protobuf streams carry it)."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise LogPayloadError("labels", f'must look like {{name="value", ...}}, not {text[:80]!r}.', record)
    inner = inner[1:-1].strip()
    labels: dict[str, str] = {}
    position = 0
    while position < len(inner):
        match = LABEL.match(inner, position)
        if match is None:
            raise LogPayloadError("labels", f"cannot read a label at {inner[position : position + 40]!r}.", record)
        labels[match.group(1)] = json.loads(f'"{match.group(2)}"') if "\\" in match.group(2) else match.group(2)
        position = match.end()
    return labels


class _LokiStream:
    """What a stream's labels say about each of its entries: service, default severity and attributes."""

    def __init__(self, labels: Mapping[str, str], record: int) -> None:
        used = next((key for key in LOKI_SERVICE_LABELS if labels.get(key)), "")
        self.service = _service(labels[used] if used else UNKNOWN_SERVICE, record, f"stream.{used or 'service'}")
        self.level = next((s for key in LEVEL_LABELS if (s := severity_from_word(labels.get(key, "")))), "info")
        self.attributes = {key: value for key, value in labels.items() if key != used}

    def record(self, nanos: int, line: str, metadata: Mapping[str, str], index: int) -> ParsedRecord:
        attributes = self.attributes
        level = self.level
        trace = span = ""
        if metadata:
            attributes = {**attributes, **metadata}
            level = next((s for key in LEVEL_LABELS if (s := severity_from_word(metadata.get(key, "")))), level)
            trace = hex_id(metadata.get("trace_id") or metadata.get("traceID") or "", 32, index, "trace_id")
            span = hex_id(metadata.get("span_id") or metadata.get("spanID") or "", 16, index, "span_id")
        return ParsedRecord(_nanos_to_time(nanos), self.service, level, line, attributes, trace, span)


def decode_loki_protobuf(data: bytes) -> Batch:
    try:
        request = LokiPushRequest.FromString(data)
    except DecodeError as exc:
        raise LogPayloadError("(body)", f"not a Loki PushRequest (snappy-compressed protobuf): {exc}.") from exc
    records: list[ParsedRecord] = []
    for stream in request.streams:
        meta = _LokiStream(parse_loki_labels(stream.labels, len(records)), len(records))
        for entry in stream.entries:
            index = len(records)
            nanos = entry.timestamp.seconds * 1_000_000_000 + entry.timestamp.nanos
            if nanos <= 0:
                raise LogPayloadError("timestamp", "required.", index)
            metadata = {pair.name: pair.value for pair in entry.structuredMetadata}
            records.append(meta.record(nanos, entry.line, metadata, index))
    return Batch(records, protobuf=True)


def decode_loki_json(data: bytes) -> Batch:
    payload = parse_json(data)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("streams"), list):
        raise LogPayloadError("streams", 'required: {"streams": [{"stream": {...}, "values": [[ns, line]]}]}.')
    records: list[ParsedRecord] = []
    for s, stream in enumerate(payload["streams"]):
        if not isinstance(stream, Mapping):
            raise LogPayloadError(f"streams[{s}]", "must be an object.", len(records))
        labels = stream.get("stream") or stream.get("labels") or {}
        if isinstance(labels, str):
            labels = parse_loki_labels(labels, len(records))
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise LogPayloadError(f"streams[{s}].stream", "must map label names to strings.", len(records))
        meta = _LokiStream(labels, len(records))
        for v, value in enumerate(json_list(stream, "values", len(records), f"streams[{s}].values")):
            index = len(records)
            field = f"streams[{s}].values[{v}]"
            if not isinstance(value, list) or len(value) not in (2, 3):
                raise LogPayloadError(field, "must be [timestamp in ns, line] or [ns, line, {metadata}].", index)
            nanos = uint(value[0], index, f"{field}[0]")
            if nanos <= 0:
                raise LogPayloadError(f"{field}[0]", "a timestamp in nanoseconds is required.", index)
            if not isinstance(value[1], str):
                raise LogPayloadError(f"{field}[1]", "the log line must be a string.", index)
            metadata = value[2] if len(value) == 3 else {}
            if not isinstance(metadata, Mapping) or not all(isinstance(m, str) for m in metadata.values()):
                raise LogPayloadError(f"{field}[2]", "structured metadata must map names to strings.", index)
            records.append(meta.record(nanos, value[1], metadata, index))
    return Batch(records)


# --- JSON lines ----------------------------------------------------------------------------------------------

JSONL_FIELDS = ("time", "service", "severity", "body", "attributes", "trace_id", "span_id")


def _jsonl_time(value: object, index: int) -> datetime.datetime:
    """An RFC 3339 string, or a Unix time in seconds, milliseconds or nanoseconds (by its size)."""
    if value is None:
        return datetime.datetime.now(UTC)
    if isinstance(value, bool):
        raise LogPayloadError("time", "must be an RFC 3339 string or a Unix time.", index)
    if isinstance(value, (int, float)):
        seconds = value / 1e9 if value > 1e14 else value / 1e3 if value > 1e11 else value
        try:
            return datetime.datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise LogPayloadError("time", f"{value!r} is out of range.", index) from None
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise LogPayloadError("time", f"{value[:40]!r} is not an RFC 3339 time.", index) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise LogPayloadError("time", "must be an RFC 3339 string or a Unix time.", index)


def decode_json_lines(data: bytes) -> Batch:
    """One JSON object per line: {"time", "service", "severity" (or "level"), "body" (or "message"),
    "attributes", "trace_id", "span_id"}; only the body is required."""
    records: list[ParsedRecord] = []
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise LogPayloadError("(body)", f"not UTF-8: {exc}.") from exc
    for line in text.splitlines():
        if not line.strip():
            continue
        index = len(records)
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogPayloadError("(line)", f"not valid JSON: {exc}.", index) from exc
        if not isinstance(item, Mapping):
            raise LogPayloadError("(line)", "must be a JSON object.", index)
        body = item.get("body", item.get("message", item.get("msg")))
        if not isinstance(body, str):
            raise LogPayloadError("body", "required, a string.", index)
        level = item.get("severity", item.get("level", "info"))
        if not isinstance(level, str) or (severity := severity_from_word(level)) is None:
            raise LogPayloadError("severity", f"one of debug, info, warning, error, critical, not {level!r}.", index)
        attributes = item.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise LogPayloadError("attributes", "must be an object.", index)
        records.append(
            ParsedRecord(
                _jsonl_time(item.get("time", item.get("timestamp")), index),
                _service(item.get("service", UNKNOWN_SERVICE), index, "service"),
                severity,
                body,
                {str(key): attr_text(value) for key, value in attributes.items()},
                hex_id(json_string(item.get("trace_id"), index, "trace_id"), 32, index, "trace_id"),
                hex_id(json_string(item.get("span_id"), index, "span_id"), 16, index, "span_id"),
            )
        )
    return Batch(records)


Decoder = Callable[[bytes], Batch]


def otlp_decoder(content_type: str) -> Decoder:
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf", "application/octet-stream", ""):
        return decode_otlp_protobuf
    if media == "application/json":
        return decode_otlp_json
    raise LogPayloadError("Content-Type", f"{media!r}: send application/x-protobuf or application/json.")


def loki_decoder(content_type: str) -> Decoder:
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf", "application/octet-stream", ""):
        return decode_loki_protobuf
    if media == "application/json":
        return decode_loki_json
    raise LogPayloadError("Content-Type", f"{media!r}: send application/x-protobuf (snappy) or application/json.")


def iter_attributes_filters(params: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """The `attr.<key>=<value>` filters of a query string."""
    for key, value in params.items():
        if key.startswith("attr.") and len(key) > 5:
            yield key[5:], value
