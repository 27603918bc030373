"""Monitoring data API: monitors, reference uploads, schema edits, production batches, logged predictions and
their labels.

Roles: viewers read; operators send data (batches, predictions, labels); admins create, change and delete
monitors, their reference and schema. Uploads are streamed to disk and refused past their size setting with
a 413 that names it; a batch or prediction that does not fit the schema is a 400 naming the column or row,
with nothing stored. Service refusals (`opsportal.errors.ServiceError`) go to the API's exception handler.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.accounts.roles import Role
from opsportal.api import ErrorSerializer
from opsportal.parsers import FormParser, JSONParser, MultiPartParser

from .. import services
from ..models import Artifact, ModelVersion, Monitor, MonitoringBatch, RegisteredModel
from ..services.batches import Spooled, read_spooled, spool
from ..services.monitors import current_versions
from .monitoring_serializers import (
    BatchDetailSerializer,
    BatchSerializer,
    LabelsAnswerSerializer,
    LabelsSerializer,
    MonitorSerializer,
    MonitorWriteSerializer,
    PredictionsAnswerSerializer,
    PredictionsSerializer,
    ReferenceUploadSerializer,
    RowsSerializer,
    SchemaSerializer,
)

REFUSED = OpenApiResponse(ErrorSerializer, description="Nothing stored: the message names the column, row or field.")
TOO_LARGE = OpenApiResponse(ErrorSerializer, description="Over the size setting the message names.")
# Multipart framing around a file: a body this much over the limit may still hold a file within it.
MULTIPART_SLACK = 64 * 1024


def _too_large(limit: int, setting: str, what: str = "(body)") -> services.PayloadTooLarge:
    return services.PayloadTooLarge(f"{what}: over the limit of {limit:,} bytes ({setting}).", field="file")


def check_length(request: Request, limit: int, setting: str) -> None:
    """413 at once when the declared body is over the limit (nothing read); a multipart body may be over it by
    its framing (the file itself is counted as it streams, `CappedUploadHandler`)."""
    multipart = (request.content_type or "").startswith("multipart/")
    slack = MULTIPART_SLACK if multipart else 0
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + slack:
        raise _too_large(limit, setting)


class CappedUploadHandler(FileUploadHandler):
    """Counts the bytes of each uploaded file as Django streams it to disk; past the limit the upload stops
    (the rest of the body is read and dropped) and `exceeded` tells the view to answer 413."""

    def __init__(self, request: Any, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def capped_upload(request: Request, limit: int) -> CappedUploadHandler:
    """Put a CappedUploadHandler in front of the request's upload handlers (before its body is parsed)."""
    handler = CappedUploadHandler(request._request, limit)
    request._request.upload_handlers.insert(0, handler)
    return handler


class SpooledBodyParser(parsers.BaseParser):
    """A CSV or Parquet request body, written to a temporary file as it arrives (up to MLOPS_BATCH_MAX_BYTES,
    else 413). The view reads it and removes the file."""

    media_type = "*/*"
    formats = {
        "text/csv": ".csv",
        "application/csv": ".csv",
        "application/vnd.apache.parquet": ".parquet",
        "application/x-parquet": ".parquet",
        "application/parquet": ".parquet",
        "application/octet-stream": "",
    }

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> dict:
        kind = (media_type or "").split(";")[0].strip().lower()
        if kind not in self.formats:
            raise exceptions.UnsupportedMediaType(kind)
        request = (parser_context or {}).get("request")
        name = (request.query_params.get("name") if request is not None else "") or f"body{self.formats[kind]}"
        if stream is None:
            raise services.InvalidValue("the request has no body.", field="file")
        limit = settings.MLOPS_BATCH_MAX_BYTES
        spooled = spool(stream, name, limit=limit, setting="MLOPS_BATCH_MAX_BYTES")
        return {"_spooled": spooled, "_name": name}


def _monitor_queryset() -> QuerySet[Monitor]:
    return Monitor.objects.select_related("model", "reference", "reference__version")


class MonitorViewSet(viewsets.ModelViewSet):
    """Monitors of registered models. Filter with `model` (a name). Admins create, change and delete them; the
    `batches` action takes production data from operators."""

    serializer_class = MonitorSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    write_role = Role.ADMIN
    action_roles = {"add_batch": Role.OPERATOR}
    parser_classes = [JSONParser, MultiPartParser, FormParser, SpooledBodyParser]

    def get_queryset(self) -> QuerySet[Monitor]:
        queryset = _monitor_queryset().order_by("model__name", "name")
        model = self.request.query_params.get("model")
        return queryset.filter(model__name=model) if model else queryset

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "current_versions": current_versions(page)}
        return self.get_paginated_response(MonitorSerializer(page, many=True, context=context).data)

    @extend_schema(request=MonitorWriteSerializer, responses={201: MonitorSerializer, 400: REFUSED})
    def create(self, request: Request) -> Response:
        serializer = MonitorWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        model = services.get_model(data.pop("model"))
        monitor = services.create_monitor(model=model, actor=request.user, **data)
        return Response(self.get_serializer(_monitor_queryset().get(pk=monitor.pk)).data, status=201)

    @extend_schema(request=MonitorWriteSerializer, responses={200: MonitorSerializer, 400: REFUSED})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = MonitorWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "model" in data:
            raise exceptions.ValidationError({"model": ["A monitor stays with its model."]})
        monitor = services.update_monitor(monitor=self.get_object(), actor=request.user, **data)
        return Response(self.get_serializer(_monitor_queryset().get(pk=monitor.pk)).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not kwargs.get("partial"):
            raise exceptions.MethodNotAllowed("PUT", "Change a monitor with PATCH.")
        return self.partial_update(request, kwargs.get("pk"))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_monitor(monitor=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"multipart/form-data": ReferenceUploadSerializer, "application/json": ReferenceUploadSerializer},
        responses={201: MonitorSerializer, 400: REFUSED, 413: TOO_LARGE},
    )
    @action(detail=True, methods=["post"])
    def reference(self, request: Request, pk: str | None = None) -> Response:
        """Upload reference data (`file`: CSV or Parquet; optional `version`) or name a dataset artifact
        (`artifact`: its id); its schema is inferred and it becomes the monitor's reference."""
        monitor = self.get_object()
        limit = settings.MLOPS_REFERENCE_MAX_BYTES
        check_length(request, limit, "MLOPS_REFERENCE_MAX_BYTES")
        handler = capped_upload(request, limit)
        data = request.data
        if handler.exceeded:
            raise _too_large(limit, "MLOPS_REFERENCE_MAX_BYTES", "file")
        upload = request.FILES.get("file")
        artifact_id = data.get("artifact")
        if upload is None and not artifact_id:
            raise services.InvalidValue("send a CSV or Parquet `file`, or the id of an `artifact`.", field="file")
        if upload is not None:
            version = None
            if data.get("version") not in (None, ""):
                version = _version(monitor.model, data.get("version"))
            services.upload_reference(
                monitor=monitor, actor=request.user, file=upload, name=upload.name or "reference", version=version
            )
        else:
            artifact = _artifact(monitor.model, artifact_id)
            services.reference_from_artifact(monitor=monitor, artifact=artifact, actor=request.user)
        return Response(self.get_serializer(_monitor_queryset().get(pk=monitor.pk)).data, status=201)

    @extend_schema(request=SchemaSerializer, responses={200: MonitorSerializer, 400: REFUSED})
    @action(detail=True, methods=["patch"], url_path="schema")
    def column_types(self, request: Request, pk: str | None = None) -> Response:
        """Set column types (`{"types": {"zip": "categorical"}}`); the reference is profiled again with them."""
        serializer = SchemaSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        monitor = services.update_schema(
            monitor=self.get_object(), actor=request.user, types=serializer.validated_data["types"]
        )
        return Response(self.get_serializer(_monitor_queryset().get(pk=monitor.pk)).data)

    @extend_schema(
        responses=BatchSerializer(many=True),
        parameters=[
            OpenApiParameter("version", int, description="Only batches of this version."),
            OpenApiParameter("drifted", bool, description="Only batches with (or without) dataset drift."),
        ],
    )
    @action(detail=True, methods=["get"])
    def batches(self, request: Request, pk: str | None = None) -> Response:
        """The monitor's batches, newest first."""
        monitor = self.get_object()
        batches = _batch_queryset().filter(monitor=monitor).defer("drift", "quality")
        version = request.query_params.get("version")
        if version:
            if not version.isdigit():
                raise exceptions.ValidationError({"version": ["A version number."]})
            batches = batches.filter(version__version=int(version))
        drifted = request.query_params.get("drifted")
        if drifted in ("true", "false", "1", "0"):
            batches = batches.filter(dataset_drift=drifted in ("true", "1"))
        page = self.paginate_queryset(batches)
        return self.get_paginated_response(BatchSerializer(page, many=True).data)

    @extend_schema(
        request={
            "application/json": RowsSerializer,
            "multipart/form-data": ReferenceUploadSerializer,
            "text/csv": bytes,
            "application/vnd.apache.parquet": bytes,
        },
        responses={201: BatchDetailSerializer, 400: REFUSED, 413: TOO_LARGE},
        parameters=[OpenApiParameter("name", str, description="The batch's name (CSV or Parquet body).")],
    )
    @batches.mapping.post
    def add_batch(self, request: Request, pk: str | None = None) -> Response:
        """A batch of production rows as JSON `{"rows": [...]}`, a CSV or Parquet body (`Content-Type: text/csv`
        or `application/vnd.apache.parquet`), or a multipart `file`; checked against the schema (400 naming the
        column or row, nothing stored)."""
        monitor = self.get_object()
        limit = settings.MLOPS_BATCH_MAX_BYTES
        check_length(request, limit, "MLOPS_BATCH_MAX_BYTES")
        handler = capped_upload(request, limit)
        data = request.data
        if handler.exceeded:
            raise _too_large(limit, "MLOPS_BATCH_MAX_BYTES", "file")
        spooled: Spooled | None = data.get("_spooled") if isinstance(data, dict) else None
        try:
            table, source, name = self._batch_table(request, data, spooled)
        finally:
            if spooled is not None:
                spooled.remove()
        batch = services.record_batch(monitor=monitor, table=table, source=source, name=name, actor=request.user)
        return Response(BatchDetailSerializer(_batch_queryset().get(pk=batch.pk)).data, status=201)

    def _batch_table(self, request: Request, data: Any, spooled: Spooled | None) -> tuple[Any, str, str]:
        if spooled is not None:
            name = data.get("_name") or ""
            table = read_spooled(spooled, name)
            return table, _source_of(spooled.path.name, spooled.path), name
        upload = request.FILES.get("file")
        if upload is not None:
            name = data.get("name") or upload.name or ""
            table = services.table_from_upload(upload, upload.name or "upload")
            return table, _source_of(upload.name or "", None, table_from_parquet=_is_parquet_upload(upload)), name
        if "rows" not in data:
            raise services.InvalidValue(
                'send {"rows": [...]}, a CSV or Parquet body, or a multipart `file`.', field="rows"
            )
        return services.table_from_rows(data.get("rows")), MonitoringBatch.Source.ROWS, str(data.get("name") or "")


def _is_parquet_upload(upload: Any) -> bool:
    name = (upload.name or "").lower()
    if name.endswith((".parquet", ".pq")):
        return True
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    return head == b"PAR1"


def _source_of(name: str, path: Any, table_from_parquet: bool | None = None) -> str:
    if table_from_parquet is None:
        with open(path, "rb") as f:
            table_from_parquet = f.read(4) == b"PAR1"
    return MonitoringBatch.Source.PARQUET if table_from_parquet else MonitoringBatch.Source.CSV


def _version(model: RegisteredModel, number: object) -> ModelVersion:
    if not re.fullmatch(r"\d+", str(number)):
        raise services.InvalidValue("must be a version number.", field="version")
    version = ModelVersion.objects.filter(model=model, version=int(str(number))).first()
    if version is None:
        raise services.InvalidValue(f"{model.name} has no version {number}.", field="version")
    return version


def _artifact(model: RegisteredModel, artifact_id: object) -> Artifact:
    if not re.fullmatch(r"\d+", str(artifact_id)):
        raise services.InvalidValue("must be an artifact id.", field="artifact")
    artifact = Artifact.objects.select_related("version__model").filter(pk=int(str(artifact_id))).first()
    if artifact is None or artifact.version.model_id != model.pk:
        raise services.InvalidValue(f"{model.name} has no artifact {artifact_id}.", field="artifact")
    return artifact


def _batch_queryset() -> QuerySet[MonitoringBatch]:
    return MonitoringBatch.objects.select_related("version", "reference", "monitor__model").defer("profile")


class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Production batches with their report. Filter the list with `monitor` (an id) or `model` (a name)."""

    def get_serializer_class(self) -> type:
        return BatchSerializer if self.action == "list" else BatchDetailSerializer

    def get_queryset(self) -> QuerySet[MonitoringBatch]:
        queryset = _batch_queryset()
        if self.action == "list":
            queryset = queryset.defer("drift", "quality")
            monitor = self.request.query_params.get("monitor")
            if monitor:
                if not monitor.isdigit():
                    raise exceptions.ValidationError({"monitor": ["A monitor id."]})
                queryset = queryset.filter(monitor_id=int(monitor))
            model = self.request.query_params.get("model")
            if model:
                queryset = queryset.filter(monitor__model__name=model)
        return queryset

    @extend_schema(responses={200: OpenApiResponse(description="The `drift_report` JSON document of the batch.")})
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        """The batch's drift against its reference, in the form `manage.py drift_report` prints, with its data
        quality and performance."""
        batch = self.get_object()
        return Response(
            {
                **batch.drift,
                "quality": batch.quality,
                "performance": batch.performance,
                "reference_performance": batch.reference.performance if batch.reference else {},
            }
        )


class ModelDataView(APIView):
    """Base of the prediction-logging and label endpoints: operators write, the body is JSON within
    MLOPS_BATCH_MAX_BYTES, the model is named in the path."""

    write_role = Role.OPERATOR
    parser_classes = [JSONParser]

    def model(self, name: str) -> RegisteredModel:
        return get_object_or_404(RegisteredModel.objects.prefetch_related("monitors"), name=name)

    def items(self, request: Request, key: str) -> Any:
        check_length(request, settings.MLOPS_BATCH_MAX_BYTES, "MLOPS_BATCH_MAX_BYTES")
        data = request.data
        if isinstance(data, dict):
            if key not in data:
                raise services.InvalidValue(f'send {{"{key}": [...]}} or a JSON list.', field=key)
            return data[key]
        return data


class PredictionsView(ModelDataView):
    """Log production predictions (`[{"id", "timestamp", "features": {...}, "prediction"}]` or `{"rows": [...]}`):
    idempotent on the id; a bad row is a 400 naming `rows[i].field`, with nothing stored."""

    @extend_schema(request=PredictionsSerializer, responses={201: PredictionsAnswerSerializer, 400: REFUSED})
    def post(self, request: Request, name: str) -> Response:
        model = self.model(name)
        result = services.log_predictions(model=model, rows=self.items(request, "rows"), actor=request.user)
        return Response(result.to_dict(), status=status.HTTP_201_CREATED if result.accepted else status.HTTP_200_OK)


class LabelsView(ModelDataView):
    """Join delayed ground truth to logged predictions by id (`[{"id", "label"}]` or `{"labels": [...]}`); ids
    with no logged prediction are answered in `unknown`."""

    @extend_schema(request=LabelsSerializer, responses={200: LabelsAnswerSerializer, 400: REFUSED})
    def post(self, request: Request, name: str) -> Response:
        model = self.model(name)
        result = services.log_labels(model=model, labels=self.items(request, "labels"), actor=request.user)
        return Response(result.to_dict())
