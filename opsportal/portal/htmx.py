"""One view serves a whole page or, for an htmx request, only its partial."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def wants_partial(request: HttpRequest) -> bool:
    """An htmx request for part of a page; a history restore after a cache miss needs the whole page."""
    return bool(getattr(request, "htmx", False)) and not request.htmx.history_restore_request


def render_page_or_partial(request: HttpRequest, page: str, partial: str, context: dict) -> HttpResponse:
    response = render(request, partial if wants_partial(request) else page, context)
    # The same URL answers with a whole page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response
