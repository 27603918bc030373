"""Shared API pieces: pagination and the error format (the root views are in portal/api_views.py)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from opsportal.errors import ServiceError, from_django
from opsportal.pagination import CappedPagination


class StandardPagination(CappedPagination):
    """DRF's page form {"count", "next", "previous", "results"}; page_size up to 500; big counts estimated."""


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    """Human-readable lines naming each field: 'name: This field is required.'"""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            lines += _flatten(value, f"{prefix}{name}" if not prefix or not name else f"{prefix}.{name}")
        return lines
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [f"{prefix}: {item}" if prefix else str(item) for item in detail]
        lines = []
        for index, item in enumerate(detail):
            lines += _flatten(item, f"{prefix}[{index}]")
        return lines
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every API error has the same body: {"detail": message, "code": ..., "errors": {...}}.

    `detail` is one human-readable sentence naming the problem (for validation
    errors, each field with its message); `errors` keeps DRF's per-field form.
    """
    if isinstance(exc, DjangoValidationError):
        exc = from_django(exc)
    if isinstance(exc, ServiceError):
        return service_error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": " ".join(_flatten(exc.detail)), "code": "invalid", "errors": errors}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = detail.code if hasattr(detail, "code") else exc.default_code
        response.data = {"detail": " ".join(_flatten(detail)), "code": code}
    return response


class ErrorSerializer(serializers.Serializer):
    """The body of every API error, as `exception_handler` answers it: for OpenAPI responses (4xx)."""

    detail = serializers.CharField(help_text="One sentence; for a bad request, each field named with its message.")
    code = serializers.CharField(help_text="invalid (a bad request), not_found, already_exists, permission_denied ...")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="400 only: field -> messages (DRF's per-field form; non_field_errors for the request as a whole).",
    )  # fmt: skip


def service_error_response(exc: ServiceError) -> Response:
    """The API's answer to a service's refusal: its status, and the same body as every other error."""
    set_rollback()
    body: dict[str, Any] = {"detail": str(exc), "code": exc.code}
    if exc.status == 400:
        body["errors"] = exc.errors()
    return Response(body, status=exc.status)
