"""The API roots: `/api/v1/` and each app's `/api/v1/<app>/`."""

from __future__ import annotations

from functools import lru_cache

from django.urls import NoReverseMatch, get_script_prefix, get_urlconf
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
        # The links never change while the process runs for one origin: built once (a dozen reverses
        # per request cost ~0.3 ms).
        origin = request.build_absolute_uri("/")[:-1]
        return Response(_root_links(origin, get_urlconf(), get_script_prefix(), format), status=status.HTTP_200_OK)


@lru_cache(maxsize=64)
def _root_links(origin: str, urlconf: str | None, prefix: str, format: str | None) -> dict:
    def link(name: str) -> str:
        return origin + _path(urlconf, prefix, name, format)

    return {
        "accounts": {"me": link("api:me"), "users": link("api:user-list"), "tokens": link("api:token-list")},
        "audit": {"entries": link("api:auditentry-list")},
        "system": {"status": link("api:system-status")},
        **{app.label: link(f"api:{app.label}:root") for app in portal_apps() if app.api_urls},
        "schema": link("schema"),
        "docs": link("api-docs"),
    }


@lru_cache(maxsize=256)
def _path(urlconf: str | None, script_prefix: str, name: str, format: str | None) -> str:
    return reverse(name, format=format, urlconf=urlconf)


class AppApiRoot(APIView):
    """The collections of one app (`/api/v1/<app>/`).

    Only top-level collections are listed: a nested one (`models/{model_name}/versions/`) is reached
    from its parent, and a viewset without a list route (artifact downloads) has no collection URL.
    """

    router = None
    app_namespace = ""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, format: str | None = None) -> Response:
        links = {}
        for prefix, _viewset, basename in self.router.registry:
            if "(?P<" in prefix:
                continue
            try:
                links[prefix] = reverse(f"{self.app_namespace}:{basename}-list", request=request, format=format)
            except NoReverseMatch:
                continue
        return Response(links)
