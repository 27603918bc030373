"""What every AIOps page shares: paging of long lists, and care with sender-controlled links."""

from __future__ import annotations

import datetime

from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import QuerySet
from django.http import HttpRequest

from opsportal.pagination import CappedCountPaginator as Paginator

from ..parsers import is_web_url

PAGE_SIZE = 50


def page_of(request: HttpRequest, queryset: QuerySet, size: int = PAGE_SIZE):
    """The page of `queryset` the request asks for (`?page=`)."""
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def web_links(links: list) -> list[dict]:
    """Ingest already drops other links; pages check again, as these are sender-controlled."""
    return [link for link in links if isinstance(link, dict) and is_web_url(link.get("href"))]


def minutes(delta: datetime.timedelta | None) -> float | None:
    return delta.total_seconds() / 60 if delta is not None else None


def field_problem(form) -> str:
    """The form's errors as one message naming each field as the API does ("assignee: ...")."""
    return " ".join(
        " ".join(errors) if name == NON_FIELD_ERRORS else f"{name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    )
