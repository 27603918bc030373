"""Alert pages: the list (with filters) and one alert with its deliveries and raw payload."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without

from ..api.filters import AlertFilter
from ..forms import pretty_json
from ..models import Alert
from ..parsers import is_web_url
from .display import page_of, web_links

REPORTED = {"trigger": "firing", "resolve": "resolved", "acknowledge": "acknowledged"}


@role_required(Role.VIEWER)
def alert_list(request: HttpRequest) -> HttpResponse:
    # `all` means no filter; a value a filter does not know is dropped and named in a message, never an empty list.
    data, problems = checked_filters(
        request.GET, AlertFilter().form.fields, bind=lambda d: AlertFilter(d, queryset=Alert.objects.none()).form
    )
    filterset = AlertFilter(data or None, queryset=Alert.objects.select_related("integration", "incident"))
    if filterset.is_bound and filterset.is_valid():
        alerts = filterset.qs
    else:
        alerts = Alert.objects.select_related("integration")
    context = {
        "filter": filterset,
        "filter_problems": problems,
        "page": page_of(request, alerts),
        "query": query_without(request, "page"),
    }
    return render_page_or_partial(request, "aiops/alert_list.html", "aiops/partials/alert_table.html", context)


@role_required(Role.VIEWER)
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.select_related("integration", "incident", "suppressed_by"), pk=pk)
    source_url = alert.generator_url if is_web_url(alert.generator_url) else ""
    links = web_links(alert.links)
    if source_url and not any(link["href"] == source_url for link in links):
        links.insert(0, {"href": source_url, "text": "Source"})
    deliveries = list(alert.delivery_history.all()[:100])
    for row in deliveries:
        # New alerts record the status, later deliveries the sender's action: show one vocabulary.
        row.reported = REPORTED.get(row.status, row.status)
    return render(
        request,
        "aiops/alert_detail.html",
        {
            "alert": alert,
            "links": links,
            "deliveries": deliveries,
            "raw": pretty_json(alert.raw),
            "occurrences": Alert.objects.filter(integration=alert.integration_id, fingerprint=alert.fingerprint)
            .exclude(pk=alert.pk)
            .order_by("-first_seen_at")[:20],
        },
    )
