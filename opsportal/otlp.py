"""What every OTLP/HTTP receiver of the portal shares (logs in `aiops.logs.decode`, traces in `llmops.traces.decode`).

The body's Content-Encoding (bounded: a small body must not inflate into gigabytes), OTLP's AnyValue in
protobuf and in JSON (64-bit integers as decimal strings, ids in hex), and the error a receiver raises
for a payload it cannot store: `PayloadError` names the field and, when it is one item's fault, the
item's index in the batch (a log record, a span).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

import cramjam
from django.http import HttpResponse, JsonResponse

HEX = re.compile(r"[0-9a-fA-F]*")
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf", "application/octet-stream", "")


class PayloadError(ValueError):
    """A push that cannot be stored: `record` is the index of the offending item (None: the batch)."""

    unit = "record"

    def __init__(self, field: str, message: str, record: int | None = None) -> None:
        self.field = field
        self.message = message
        self.record = record
        super().__init__(field, message, record)

    def __str__(self) -> str:
        where = f"{self.unit} {self.record}: " if self.record is not None else ""
        return f"{where}{self.field}: {self.message}"


def declared_length(meta: Mapping[str, str]) -> int:
    """The request's Content-Length (0 when absent or not a number): a body over the limit is refused unread."""
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip, deflate, snappy, zstd or none); over `limit` bytes is an error."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            data = body
        elif encoding in ("gzip", "x-gzip"):
            data = _bounded_gzip(body, limit)
        elif encoding == "deflate":
            data = zlib.decompressobj().decompress(body, limit + 1)
        elif encoding == "snappy":
            data = bytes(cramjam.snappy.decompress_raw(body))
        elif encoding == "zstd":
            data = bytes(cramjam.zstd.decompress(body))
        else:
            raise PayloadError("Content-Encoding", f"{encoding!r} is not supported (gzip, deflate, snappy, zstd).")
    except (OSError, EOFError, zlib.error, cramjam.DecompressionError) as exc:
        raise PayloadError("(body)", f"cannot be decompressed as {encoding}: {exc}.") from exc
    if len(data) > limit:
        raise PayloadError("(body)", f"over the limit of {limit} bytes once decompressed.")
    return data


def _bounded_gzip(body: bytes, limit: int) -> bytes:
    """gunzip, stopping past `limit` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = inflater.decompress(body, limit + 1)
    if not inflater.eof and len(data) <= limit:
        raise EOFError("truncated gzip stream")
    return data


def export_answer(
    response_class: type, rejected_field: str, rejected: int, reason: str, protobuf: bool
) -> HttpResponse:
    """An Export*ServiceResponse in the request's encoding; `partialSuccess` names what was refused.

    `rejected_field` is the protobuf field (`rejected_spans`, `rejected_log_records`); OTLP/JSON spells it in
    lowerCamelCase with the 64-bit count as a string.
    """
    if protobuf:
        answer = response_class()
        if rejected:
            setattr(answer.partial_success, rejected_field, rejected)
            answer.partial_success.error_message = reason
        return HttpResponse(answer.SerializeToString(), content_type="application/x-protobuf")
    head, *rest = rejected_field.split("_")
    partial = {head + "".join(word.title() for word in rest): str(rejected), "errorMessage": reason}
    return JsonResponse({"partialSuccess": partial if rejected else {}})


def is_protobuf(content_type: str) -> bool:
    """True for a protobuf body, False for JSON; any other media type is refused, naming both."""
    media = content_type.split(";")[0].strip().lower()
    if media in PROTOBUF_TYPES:
        return True
    if media == "application/json":
        return False
    raise PayloadError("Content-Type", f"{media!r}: send application/x-protobuf or application/json.")


def any_value_pb(value: Any) -> object:
    """An OTLP AnyValue (protobuf) as a Python value (bytes as hex)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "array_value":
        return [any_value_pb(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value_pb(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def any_value_json(value: object, record: int | None, field: str) -> object:
    """An OTLP/JSON AnyValue ({"stringValue": ...}, {"intValue": "5"}, ...) as a Python value."""
    if not isinstance(value, Mapping):
        raise PayloadError(field, 'must be an AnyValue object such as {"stringValue": "..."}.', record)
    if not value:
        return ""
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            raise PayloadError(f"{field}.intValue", "must be an integer.", record) from None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            raise PayloadError(f"{field}.doubleValue", "must be a number.", record) from None
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [any_value_json(item, record, f"{field}.arrayValue") for item in items]
    if "kvlistValue" in value:
        return kv_json((value["kvlistValue"] or {}).get("values") or [], record, f"{field}.kvlistValue")
    if "bytesValue" in value:
        return str(value["bytesValue"])
    raise PayloadError(field, f"unknown AnyValue kind {next(iter(value))!r}.", record)


def kv_json(items: object, record: int | None, field: str) -> dict[str, object]:
    """An OTLP/JSON list of {"key", "value"} as a dict."""
    if not isinstance(items, list):
        raise PayloadError(field, 'must be a list of {"key", "value"}.', record)
    found: dict[str, object] = {}
    for position, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise PayloadError(f"{field}[{position}].key", "must be a string.", record)
        found[item["key"]] = any_value_json(item.get("value") or {}, record, f"{field}[{position}].value")
    return found


def attr_text(value: object) -> str:
    """An attribute value as text: strings as they are, numbers and booleans as JSON writes them, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def uint(value: object, record: int | None, field: str) -> int:
    """OTLP/JSON 64-bit integers come as decimal strings (or numbers)."""
    if value is None or value == "":
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PayloadError(field, f"must be an integer (a decimal string), not {value!r}.", record) from None
    if number < 0:
        raise PayloadError(field, "must not be negative.", record)
    return number


def json_list(container: Mapping, key: str, record: int | None, field: str) -> list:
    value = container.get(key) or []
    if not isinstance(value, list):
        raise PayloadError(field, "must be a list.", record)
    return value


def json_string(value: object, record: int | None, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(field, "must be a string.", record)
    return value


def parse_json(data: bytes) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("(body)", f"not valid JSON: {exc}.") from exc


def hex_id(value: str, size: int, record: int | None, field: str) -> str:
    """A trace (32) or span (16) id in lower-case hex; all zeros (OTLP's "no id") as ""."""
    if not value:
        return ""
    if len(value) != size or not HEX.fullmatch(value):
        raise PayloadError(field, f"must be {size} hexadecimal digits, not {value[:40]!r}.", record)
    value = value.lower()
    return "" if value.strip("0") == "" else value
