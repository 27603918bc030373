from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from opsportal.accounts.roles import Role, role_required
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.htmx import render_page_or_partial

from .filters import AuditEntryFilter
from .models import AuditEntry


@role_required(Role.VIEWER)
def entry_list(request: HttpRequest) -> HttpResponse:
    """The audit log, filterable; an HTMX request gets only the table."""
    filterset = AuditEntryFilter(request.GET or None, queryset=AuditEntry.objects.all())
    entries = filterset.qs if filterset.is_bound and filterset.is_valid() else AuditEntry.objects.all()
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode()}
    return render_page_or_partial(request, "audit/entry_list.html", "audit/partials/entries.html", context)


@role_required(Role.VIEWER)
def object_history(request: HttpRequest, app_label: str, model: str, object_id: str) -> HttpResponse:
    """Every recorded change of one object, newest first."""
    entries = AuditEntry.objects.for_object(app_label, model, object_id)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    latest = entries.first()
    return render(
        request,
        "audit/object_history.html",
        {
            "page": page,
            "app_label": app_label,
            "model": model,
            "object_id": object_id,
            "object_repr": latest.object_repr if latest else f"{model} {object_id}",
            "query": "",
        },
    )
