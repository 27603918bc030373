"""Datasets with their items; import (all rows or none, or a preview) and export as JSONL or CSV."""

from __future__ import annotations

import json

from django.db.models import Count
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.parsers import FormParser, MultiPartParser

from ... import importers, services
from ...models import Dataset, DatasetItem
from ..filters import DatasetItemFilter
from ..serializers import (
    BadImportSerializer,
    DatasetItemSerializer,
    DatasetSerializer,
    ImportResultSerializer,
    ImportSerializer,
    file_error_response,
)

PREVIEW_ROWS = 20


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()


class JSONLRenderer(CSVRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


EXPORT_FORMATS = {"jsonl": (importers.export_jsonl, "application/x-ndjson"), "csv": (importers.export_csv, "text/csv")}


class DatasetViewSet(viewsets.ModelViewSet):
    """Datasets of test cases, by id or name. `import` takes a CSV/JSONL file whole (or nothing, naming each bad
    row; `preview=true` only validates); `export` gives the items as `?format=jsonl` (default) or `csv`."""

    serializer_class = DatasetSerializer
    lookup_value_regex = "[^/]+"
    ordering_fields = ["name", "updated_at", "created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return Dataset.objects.select_related("created_by").annotate(item_count=Count("items")).order_by("name")

    def get_object(self) -> Dataset:
        dataset = services.get_dataset(reference=self.kwargs["pk"])
        return self.get_queryset().get(pk=dataset.pk)

    def create(self, request: Request) -> Response:
        serializer = DatasetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dataset = services.create_dataset(
            name=data["name"], description=data.get("description", ""), actor=request.user
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=dataset.pk)).data, status=201)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = DatasetSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dataset = services.update_dataset(dataset=self.get_object(), actor=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=dataset.pk)).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_dataset(dataset=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"multipart/form-data": ImportSerializer},
        responses={
            200: ImportResultSerializer,
            201: ImportResultSerializer,
            400: file_error_response(BadImportSerializer, "ImportBadRequest"),
        },
    )
    @action(detail=True, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_items(self, request: Request, pk: str | None = None) -> Response:
        """Add the rows of a CSV or JSONL file as items, all or none. 201 when stored, 200 for a good preview,
        400 with `errors: [{row, message}]` for a bad file (nothing stored)."""
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dataset = self.get_object()
        upload = data["file"]
        content, filename = upload.read(), upload.name or ""
        if data["preview"]:
            result = services.preview_import(data=content, filename=filename)
        else:
            result = services.import_items(dataset=dataset, data=content, filename=filename, actor=request.user)
        body = {
            "ok": result.ok,
            "preview": data["preview"],
            "format": result.format,
            "count": len(result.rows),
            "imported": len(result.rows) if result.ok and not data["preview"] else 0,
            "rows": [_row(row) for row in result.rows[:PREVIEW_ROWS]],
            "errors": [{"row": number, "message": message} for number, message in result.errors],
        }
        if not result.ok:
            first = result.errors[0] if result.errors else (0, "no rows")
            more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
            body = {
                "detail": f"Row {first[0]}: {first[1]}{more}; nothing was imported.",
                "code": "invalid_file",
                **body,
            }
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_200_OK if data["preview"] else status.HTTP_201_CREATED)

    def perform_content_negotiation(self, request: Request, force: bool = False):
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            raise serializers.ValidationError({"format": ["use jsonl or csv"]}) from None

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["jsonl", "csv"], description="Default jsonl.")],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, JSONLRenderer, CSVRenderer])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The items as a file that `import` takes back."""
        kind = request.query_params.get("format") or "jsonl"
        if kind not in EXPORT_FORMATS:
            raise serializers.ValidationError({"format": ["use jsonl or csv"]})
        dataset = self.get_object()
        render, content_type = EXPORT_FORMATS[kind]
        response = HttpResponse(
            render(dataset.items.order_by("id").iterator(chunk_size=2000)), content_type=content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{dataset.name.replace("/", "_")}.{kind}"'
        return response


def _row(row: importers.Row) -> dict:
    data = {"input": row.input, "expected_output": row.expected_output, "context": row.context,
            "metadata": row.metadata, "tags": row.tags}  # fmt: skip
    if row.output is not None:
        data["output"] = row.output
    return data


@extend_schema(parameters=[OpenApiParameter("dataset_pk", str, OpenApiParameter.PATH, description="Id or name.")])
class DatasetItemViewSet(viewsets.ModelViewSet):
    """A dataset's items: `input` variables, `expected_output`, `context`, `metadata`, `tags`."""

    serializer_class = DatasetItemSerializer
    filterset_class = DatasetItemFilter
    ordering_fields = ["id", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def dataset(self) -> Dataset:
        if not hasattr(self, "_dataset"):
            self._dataset = services.get_dataset(reference=self.kwargs["dataset_pk"])
        return self._dataset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DatasetItem.objects.none()
        return DatasetItem.objects.filter(dataset=self.dataset()).order_by("id")

    def create(self, request: Request, dataset_pk: str = "") -> Response:
        serializer = DatasetItemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = services.add_item(dataset=self.dataset(), actor=request.user, **data)
        return Response(DatasetItemSerializer(item).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, dataset_pk: str = "", pk: str | None = None) -> Response:
        serializer = DatasetItemSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = services.update_item(item=self.get_object(), actor=request.user, **data)
        return Response(DatasetItemSerializer(item).data)

    def destroy(self, request: Request, dataset_pk: str = "", pk: str | None = None) -> Response:
        services.delete_item(item=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
