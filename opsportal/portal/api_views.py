"""The API roots: `/api/v1/` and each app's `/api/v1/<app>/`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from opsportal.registry import portal_apps


class ApiRoot(APIView):
    """The OpsPortal REST API, version 1. Each app's endpoints live below it."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, format: str | None = None) -> Response:
        def link(name: str) -> str:
            return reverse(name, request=request, format=format)

        return Response(
            {
                "accounts": {"me": link("api:me"), "users": link("api:user-list"), "tokens": link("api:token-list")},
                "audit": {"entries": link("api:auditentry-list")},
                "system": {"status": link("api:system-status")},
                **{app.label: link(f"api:{app.label}:root") for app in portal_apps() if app.api_urls},
                "schema": link("schema"),
                "docs": link("api-docs"),
            },
            status=status.HTTP_200_OK,
        )


class AppApiRoot(APIView):
    """The endpoints of one app (`/api/v1/<app>/`)."""

    router = None
    app_namespace = ""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, format: str | None = None) -> Response:
        return Response(
            {
                prefix: reverse(f"{self.app_namespace}:{basename}-list", request=request, format=format)
                for prefix, _viewset, basename in self.router.registry
            }
        )
