"""Log ingest endpoints and the log API.

Ingest (token of a `logs` integration, as `Authorization: Bearer` or the basic-auth password):
- `POST /api/v1/aiops/otlp/v1/logs`: OTLP/HTTP, protobuf (`application/x-protobuf`) or JSON, gzip allowed;
  answers an ExportLogsServiceResponse in the request's encoding (partial success counts refused records);
- `POST /loki/api/v1/push`: Loki's push API, snappy-compressed protobuf or JSON (gzip allowed); 204;
- `POST /api/v1/aiops/logs/ingest/`: JSON lines (`application/x-ndjson`), one record per line; 202.

Order of checks as for alerts: size (413), token (401), rate (429), then the whole batch is decoded and
validated (400 naming the record index and the field, nothing stored), then stored and committed before
the 2xx. Reading: `GET /api/v1/aiops/logs/` (records, filters as on the search page) and
`GET /api/v1/aiops/log-patterns/` (templates).
"""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from rest_framework import serializers, viewsets

from opsportal.otlp import declared_length, export_answer

from ..logs import decode
from ..models import Integration, LogRecord, LogTemplate
from ..services import logs as log_services
from .ingest import error, over_rate_limit


def raw_token(request: HttpRequest) -> str | None:
    """The integration token: `Authorization: Bearer <token>`, or the password of basic auth (Promtail, Alloy)."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() in ("bearer", "token") and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def _authenticate(request: HttpRequest) -> tuple[Integration | None, JsonResponse | None]:
    limit = settings.LOGS_MAX_BODY_BYTES
    declared = declared_length(request.META)
    if declared > limit:
        return None, error(413, "payload_too_large", f"(body): {declared} bytes is over the limit of {limit} bytes.")
    token = raw_token(request)
    if token is None:
        return None, error(401, "not_authenticated", "Send 'Authorization: Bearer <logs integration token>'.")
    integration = log_services.logs_integration(token)
    if integration is None:
        return None, error(401, "not_authenticated", "Invalid token for a logs integration, or it is disabled.")
    if request.method != "POST":
        response = error(405, "method_not_allowed", f"Method {request.method} not allowed; senders POST here.")
        response["Allow"] = "POST"
        return None, response
    wait = over_rate_limit(integration)
    if wait:
        response = error(429, "throttled", f"Over {integration.rate_limit_per_minute} deliveries per minute.")
        response["Retry-After"] = str(wait)
        return None, response
    return integration, None


def _body(request: HttpRequest) -> bytes:
    """The raw body, read past Django's in-memory upload cap (LOGS_MAX_BODY_BYTES is the limit here)."""
    limit = settings.LOGS_MAX_BODY_BYTES
    body = request.read(limit + 1)
    if len(body) > limit:
        raise decode.LogPayloadError("(body)", f"over the limit of {limit} bytes.")
    return body


def _invalid(exc: decode.LogPayloadError) -> JsonResponse:
    status = 413 if "over the limit" in str(exc) else 400
    code = "payload_too_large" if status == 413 else "invalid"
    return error(status, code, str(exc), field=exc.field, record=exc.record)


def _ingest(integration: Integration, batch: decode.Batch) -> log_services.LogIngestResult:
    return log_services.ingest_logs(integration=integration, batch=batch)


@csrf_exempt
@login_not_required
def otlp_logs(request: HttpRequest) -> HttpResponse:
    integration, refusal = _authenticate(request)
    if refusal is not None:
        return refusal
    try:
        decoder = decode.otlp_decoder(request.content_type or "")
        data = decode.decompress(
            _body(request), request.headers.get("Content-Encoding", ""), settings.LOGS_MAX_BODY_BYTES
        )
        batch = decoder(data)
    except decode.LogPayloadError as exc:
        return _invalid(exc)
    result = _ingest(integration, batch)
    return export_answer(
        ExportLogsServiceResponse, "rejected_log_records", result.rejected, result.rejected_reason, batch.protobuf
    )


@csrf_exempt
@login_not_required
def loki_push(request: HttpRequest) -> HttpResponse:
    integration, refusal = _authenticate(request)
    if refusal is not None:
        return refusal
    try:
        decoder = decode.loki_decoder(request.content_type or "")
        encoding = request.headers.get("Content-Encoding", "")
        if decoder is decode.decode_loki_protobuf and not encoding:
            encoding = "snappy"  # Loki's protobuf pushes are snappy blocks without a Content-Encoding header
        data = decode.decompress(_body(request), encoding, settings.LOGS_MAX_BODY_BYTES)
        batch = decoder(data)
    except decode.LogPayloadError as exc:
        return _invalid(exc)
    _ingest(integration, batch)
    return HttpResponse(status=204)


@csrf_exempt
@login_not_required
def json_lines(request: HttpRequest) -> HttpResponse:
    integration, refusal = _authenticate(request)
    if refusal is not None:
        return refusal
    try:
        data = decode.decompress(
            _body(request), request.headers.get("Content-Encoding", ""), settings.LOGS_MAX_BODY_BYTES
        )
        batch = decode.decode_json_lines(data)
    except decode.LogPayloadError as exc:
        return _invalid(exc)
    result = _ingest(integration, batch)
    return JsonResponse(
        {"status": "accepted", "accepted": result.accepted, "rejected": result.rejected,
         "new_templates": result.new_templates, "detail": result.rejected_reason},
        status=202,
    )  # fmt: skip


class LogRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogRecord
        fields = ["id", "time", "service", "severity", "body", "attributes", "trace_id", "span_id", "template_id"]
        read_only_fields = fields


class LogTemplateSerializer(serializers.ModelSerializer):
    records_url = serializers.SerializerMethodField(help_text="The log search page for this template's records.")

    class Meta:
        model = LogTemplate
        fields = ["id", "service", "template", "severity", "count", "first_seen", "last_seen", "bursting_since",
                  "records_url"]  # fmt: skip
        read_only_fields = fields

    def get_records_url(self, obj: LogTemplate) -> str:
        return log_services.records_url(template_id=obj.id)


LOG_FILTERS = [
    OpenApiParameter("q", str, description="Words the body must contain (full-text search)."),
    OpenApiParameter("service", str),
    OpenApiParameter("severity", str, description="debug, info, warning, error or critical (any case; comma list)."),
    OpenApiParameter("since", str, description="ISO 8601, Unix seconds, or a duration back from now (15m, 2h, 7d)."),
    OpenApiParameter("until", str),
    OpenApiParameter("template", int, description="A template id (log-patterns)."),
    OpenApiParameter("trace_id", str),
    OpenApiParameter("attr.<key>", str, description="An attribute's value, e.g. attr.http.route=/pay."),
]


@extend_schema(parameters=LOG_FILTERS)
class LogRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """Log records, newest first: `q` (words in the body), `service`, `severity`, `since`, `until`,
    `template`, `trace_id`, `attr.<key>=<value>`."""

    serializer_class = LogRecordSerializer
    queryset = LogRecord.objects.none()
    filter_backends: list = []

    def get_queryset(self):
        if self.action == "retrieve":
            return LogRecord.objects.all()
        return log_services.search_records(self.request.query_params)


@extend_schema(parameters=[OpenApiParameter("service", str)])
class LogPatternViewSet(viewsets.ReadOnlyModelViewSet):
    """Log templates (patterns mined by drain3), busiest first: `service` filters."""

    serializer_class = LogTemplateSerializer
    queryset = LogTemplate.objects.none()
    filter_backends: list = []

    def get_queryset(self):
        queryset = LogTemplate.objects.order_by("-count", "id")
        if service := self.request.query_params.get("service", "").strip():
            queryset = queryset.filter(service=service)
        return queryset
