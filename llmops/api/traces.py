"""Trace ingest (OTLP/HTTP) and the trace, session and end-user API.

`POST /api/v1/llmops/otlp/v1/traces` (the OpenTelemetry exporter's `OTEL_EXPORTER_OTLP_ENDPOINT` is
`http://HOST/api/v1/llmops/otlp`): an API token of an operator in `Authorization: Bearer` (or `Token`),
set with `OTEL_EXPORTER_OTLP_HEADERS`. Protobuf (`application/x-protobuf`) or JSON (`application/json`,
ids in hex), optionally gzip, deflate or zstd. Answers as the OTLP specification says: 200 with an
ExportTraceServiceResponse in the request's encoding (`partialSuccess` counts the spans refused and
names the first reason), 400 for a body that cannot be decoded (nothing stored), 413 past
LLMOPS_OTLP_MAX_BODY_BYTES (compressed or not), 429 past the user's API rate and 503 when the process
already stores LLMOPS_OTLP_MAX_CONCURRENT exports or the database does not answer, both with
Retry-After (exporters retry). What is accepted is committed before the answer.

Reading (viewer): `GET /api/v1/llmops/traces/` (filters in `llmops.services.traces.search_traces`),
`GET /api/v1/llmops/traces/<trace id>/` (with its spans), `GET /api/v1/llmops/sessions/`,
`GET /api/v1/llmops/users/`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from opsportal.accounts.roles import Role
from opsportal.otlp import PayloadError, declared_length, decompress, export_answer

from ..models import EndUser, Session, Span, Trace
from ..services import traces as trace_services
from ..traces import decode

BUSY_RETRY_AFTER = 1
DATABASE_RETRY_AFTER = 5
_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def _ingest_slots() -> threading.BoundedSemaphore:
    """This process's permits to store exports at once (re-made when the setting changes)."""
    global _slots
    size = settings.LLMOPS_OTLP_MAX_CONCURRENT
    with _slots_lock:
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.BoundedSemaphore(size))
        return _slots[1]


_gc_lock = threading.Lock()
_gc_paused = 0
_gc_was_enabled = False


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while an export is decoded and stored.

    An export of 512 spans makes some 100,000 short-lived objects (messages, dicts, rows); reference
    counting frees them, but their allocation keeps triggering collections that walk the whole process
    (Django, DRF, the schema), for nothing. The exports of the threads storing at once share one pause;
    the collector runs again when the last one is done.
    """
    global _gc_paused, _gc_was_enabled
    with _gc_lock:
        if _gc_paused == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_paused += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_paused -= 1
            if _gc_paused == 0 and _gc_was_enabled:
                gc.enable()


def _error(status: int, code: str, detail: str, retry_after: int | None = None, **extra: object) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code, **extra}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _refused(exc: PayloadError) -> JsonResponse:
    if "over the limit" in exc.message:
        return _error(413, "payload_too_large", str(exc), field=exc.field)
    return _error(400, "invalid", str(exc), field=exc.field, span=exc.record)


class OtlpTracesView(APIView):
    """OTLP/HTTP trace export (ExportTraceServiceRequest, protobuf or JSON); see the module."""

    required_role = Role.OPERATOR

    @extend_schema(
        request={"application/x-protobuf": OpenApiTypes.BINARY, "application/json": OpenApiTypes.OBJECT},
        responses={
            200: OpenApiResponse(description="ExportTraceServiceResponse (partialSuccess when spans were refused)"),
            400: OpenApiResponse(description="Not an export: nothing stored"),
            413: OpenApiResponse(description="Over LLMOPS_OTLP_MAX_BODY_BYTES"),
            503: OpenApiResponse(description="Busy or the database is unavailable: retry after Retry-After"),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        limit = settings.LLMOPS_OTLP_MAX_BODY_BYTES
        declared = declared_length(request.META)
        if declared > limit:
            return _error(413, "payload_too_large", f"(body): {declared} bytes is over the limit of {limit} bytes.")
        slots = _ingest_slots()
        if not slots.acquire(blocking=False):
            return _error(503, "busy", "The portal is storing other exports; retry later.", BUSY_RETRY_AFTER)
        try:
            stream = request.stream
            body = stream.read(limit + 1) if stream is not None else b""
            if len(body) > limit:
                return _error(413, "payload_too_large", f"(body): over the limit of {limit} bytes.")
            with _collector_paused():
                try:
                    decoder = decode.decoder(request.content_type or "")
                    data = decompress(body, request.headers.get("Content-Encoding", ""), limit)
                    # Lazy: the spans are decoded a chunk at a time while PostgreSQL stores the one before.
                    batch = decoder(data, lazy=True)
                except PayloadError as exc:
                    return _refused(exc)
                protobuf = batch.protobuf
                try:
                    result = trace_services.ingest_traces(batch=batch)
                except PayloadError as exc:  # met while decoding lazily: rolled back, nothing stored
                    return _refused(exc)
                # Freed before the collector is back: else its first run walks (and keeps) the export's objects.
                del batch
        except (OperationalError, InterfaceError):
            return _error(503, "unavailable", "The database is unavailable; retry later.", DATABASE_RETRY_AFTER)
        finally:
            slots.release()
        return export_answer(
            ExportTraceServiceResponse, "rejected_spans", result.rejected, result.rejected_reason, protobuf
        )


class PromptRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


def _prompt(version) -> dict | None:
    return {"name": version.prompt.name, "version": version.version} if version is not None else None


class TraceSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="error when a span has status ERROR, else ok.")
    models = serializers.ListField(source="model_names", child=serializers.CharField(), read_only=True)
    session = serializers.CharField(source="session.key", read_only=True, default=None)
    user = serializers.CharField(source="end_user.external_id", read_only=True, default=None)
    prompt = serializers.SerializerMethodField()

    class Meta:
        model = Trace
        fields = [
            "trace_id", "name", "service", "start_time", "end_time", "latency_ms", "spans", "generations", "errors",
            "status", "input_tokens", "output_tokens", "cost", "model", "models", "session", "user", "prompt",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(PromptRefSerializer(allow_null=True))
    def get_prompt(self, trace: Trace) -> dict | None:
        return _prompt(trace.prompt_version)


def _io(text: str) -> object:
    """A stored input/output: the messages (JSON) when they parse, else the text as sent."""
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class SpanSerializer(serializers.ModelSerializer):
    parent_span_id = serializers.SerializerMethodField()
    session = serializers.CharField(source="session_key", read_only=True)
    user = serializers.CharField(source="user_key", read_only=True)
    prompt_version = serializers.IntegerField(source="prompt_version_number", read_only=True, allow_null=True)
    input = serializers.SerializerMethodField()
    output = serializers.SerializerMethodField()

    class Meta:
        model = Span
        fields = [
            "span_id", "parent_span_id", "name", "kind", "service", "start_time", "end_time", "duration_ms", "status",
            "status_message", "operation", "provider", "model", "request_model", "input_tokens", "output_tokens",
            "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost", "time_to_first_token_ms", "session",
            "user", "prompt_name", "prompt_version", "input", "output", "input_truncated", "output_truncated",
            "parameters", "attributes", "events", "resource",
        ]  # fmt: skip
        read_only_fields = fields

    def get_parent_span_id(self, span: Span) -> str | None:
        return span.parent_span_id or None

    @extend_schema_field(OpenApiTypes.ANY)
    def get_input(self, span: Span) -> object:
        return _io(span.input)

    @extend_schema_field(OpenApiTypes.ANY)
    def get_output(self, span: Span) -> object:
        return _io(span.output)


class TraceDetailSerializer(TraceSerializer):
    spans = serializers.SerializerMethodField()

    class Meta(TraceSerializer.Meta):
        fields = [*TraceSerializer.Meta.fields, "spans"]
        read_only_fields = fields

    @extend_schema_field(SpanSerializer(many=True))
    def get_spans(self, trace: Trace) -> list[dict]:
        return SpanSerializer(trace_services.trace_spans(trace=trace), many=True).data


TRACE_FILTERS = [
    OpenApiParameter("service", str, description="The root span's service.name."),
    OpenApiParameter("model", str, description="A model any generation of the trace used."),
    OpenApiParameter("session", str, description="The conversation / session id as sent."),
    OpenApiParameter("user", str, description="The end user's id as sent."),
    OpenApiParameter("prompt", str, description="The linked prompt's name."),
    OpenApiParameter("prompt_version", int),
    OpenApiParameter("status", str, enum=["ok", "error"]),
    OpenApiParameter("since", str, description="ISO 8601 or Unix seconds (start time)."),
    OpenApiParameter("until", str),
    OpenApiParameter("min_latency_ms", float),
    OpenApiParameter("max_latency_ms", float),
    OpenApiParameter("min_cost", float),
    OpenApiParameter("max_cost", float),
    OpenApiParameter("attr.<key>", str, description="A kept span attribute's value, e.g. attr.app.feature=refunds."),
]


@extend_schema(parameters=TRACE_FILTERS)
class TraceViewSet(viewsets.ReadOnlyModelViewSet):
    """Traces, newest first, with their totals; one trace with its spans (ids in hex; null parent: a root)."""

    queryset = Trace.objects.none()
    lookup_field = "trace_id"
    lookup_value_regex = "[0-9a-fA-F]{32}"
    filter_backends: list = []

    def get_serializer_class(self):
        return TraceDetailSerializer if self.action == "retrieve" else TraceSerializer

    def get_queryset(self):
        return trace_services.search_traces(self.request.query_params)

    def get_object(self) -> Trace:
        return trace_services.get_trace(trace_id=self.kwargs["trace_id"])


class SessionSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="end_user.external_id", read_only=True, default=None)
    traces = serializers.IntegerField(source="trace_count", read_only=True)

    class Meta:
        model = Session
        fields = ["key", "service", "user", "first_seen", "last_seen", "traces", "generations", "input_tokens",
                  "output_tokens", "cost"]  # fmt: skip
        read_only_fields = fields


class EndUserSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="external_id", read_only=True)
    traces = serializers.IntegerField(source="trace_count", read_only=True)
    sessions = serializers.IntegerField(source="session_count", read_only=True)

    class Meta:
        model = EndUser
        fields = ["id", "first_seen", "last_seen", "traces", "sessions", "generations", "input_tokens",
                  "output_tokens", "cost"]  # fmt: skip
        read_only_fields = fields


def _count(model, field: str) -> Subquery:
    """The rows of `model` pointing at each listed row: a sub-select per row of the page (not a GROUP BY of all)."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field)
    return Subquery(rows.annotate(n=Count("*")).values("n"), output_field=IntegerField())


@extend_schema(parameters=[OpenApiParameter("user", str), OpenApiParameter("service", str)])
class SessionViewSet(viewsets.ReadOnlyModelViewSet):
    """Conversations (gen_ai.conversation.id, session.id), most recent first, with their totals."""

    serializer_class = SessionSerializer
    queryset = Session.objects.none()
    lookup_field = "key"
    lookup_value_regex = "[^/]+"
    filter_backends: list = []

    def get_queryset(self):
        return trace_services.search_sessions(self.request.query_params).annotate(trace_count=_count(Trace, "session"))


@extend_schema(parameters=[OpenApiParameter("q", str, description="Part of the id.")])
class EndUserViewSet(viewsets.ReadOnlyModelViewSet):
    """End users (user.id, enduser.id), most recent first, with their totals."""

    serializer_class = EndUserSerializer
    queryset = EndUser.objects.none()
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"
    filter_backends: list = []

    def get_queryset(self):
        return trace_services.search_end_users(self.request.query_params).annotate(
            trace_count=_count(Trace, "end_user"), session_count=_count(Session, "end_user")
        )
