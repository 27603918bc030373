"""Small request helpers shared by the apps' page views."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def query_without(request: HttpRequest, *names: str) -> str:
    """The page's query string without `names` (e.g. "page"), to build links that keep the filters."""
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def on_site(request: HttpRequest, url: str) -> bool:
    """Whether redirecting to `url` stays on this site."""
    return url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=False)


def safe_next(request: HttpRequest, default: str) -> str:
    """The POSTed `next` URL when it stays on this site, else `default` (never an open redirect)."""
    target = request.POST.get("next", "")
    return target if target and on_site(request, target) else default


def form_problem(form: forms.Form) -> str:
    """The form's errors as one message naming each field by its label."""
    parts = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label or name.replace("_", " ").capitalize()) if field else ""
        parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
    return " ".join(parts)
