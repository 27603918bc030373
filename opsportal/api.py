"""Shared API pieces: pagination, the error format, and the v1 root."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler


class StandardPagination(PageNumberPagination):
    """DRF's page form: {"count", "next", "previous", "results"}; `page_size` up to 500."""

    page_size_query_param = "page_size"
    max_page_size = 500


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


class ApiRoot(APIView):
    """The OpsPortal REST API, version 1. Each app's endpoints live below it."""

    def get(self, request: Request, format: str | None = None) -> Response:
        def link(name: str) -> str:
            return reverse(name, request=request, format=format)

        return Response(
            {
                "accounts": {"me": link("api:me"), "users": link("api:user-list"), "tokens": link("api:token-list")},
                "audit": {"entries": link("api:auditentry-list")},
                "system": {"status": link("api:system-status")},
                "aiops": link("api:aiops:root"),
                "mlops": link("api:mlops:root"),
                "llmops": link("api:llmops:root"),
                "schema": link("schema"),
                "docs": link("api-docs"),
            },
            status=status.HTTP_200_OK,
        )


class AppApiRoot(APIView):
    """The endpoints of one app (`/api/v1/<app>/`)."""

    router = None
    app_namespace = ""

    def get(self, request: Request, format: str | None = None) -> Response:
        return Response(
            {
                prefix: reverse(f"{self.app_namespace}:{basename}-list", request=request, format=format)
                for prefix, _viewset, basename in self.router.registry
            }
        )
