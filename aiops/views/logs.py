"""Log pages: search with live tail, the patterns (templates) view, and one record with its neighbours.

Search takes the API's filters in the URL (`q`, `service`, `severity`, `since`, `until`, `template`,
`trace_id`, `attr.<key>=<value>`); a bad value is named on the page (400). Live tail: the results table
polls the same URL with `after=<newest id shown>` every few seconds (htmx) and prepends what is new.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput
from opsportal.portal.requests import query_without

from ..logs import charts
from ..models import LOG_SEVERITIES, LogRecord, LogTemplate
from ..services import logs as log_services

PAGE_ROWS = 100
TAIL_ROWS = 200
PATTERN_HOURS = {"1h": 1, "6h": 6, "24h": 24, "7d": 168}


@role_required(Role.VIEWER)
def log_search(request: HttpRequest) -> HttpResponse:
    params = request.GET
    problem = ""
    records: list[LogRecord] = []
    after = params.get("after", "")
    try:
        queryset = log_services.search_records(params)
        if after.isdigit():
            records = list(queryset.filter(id__gt=int(after))[:TAIL_ROWS])
        else:
            records = list(queryset[:PAGE_ROWS])
    except InvalidInput as exc:
        problem = str(exc)
    templates = {t.id: t for t in LogTemplate.objects.filter(id__in={r.template_id for r in records})}
    for record in records:
        record.template = templates.get(record.template_id)
    newest = max((r.id for r in records), default=int(after) if after.isdigit() else 0)
    context = {
        "records": records,
        "problem": problem,
        "params": params,
        "severities": LOG_SEVERITIES,
        "services": log_services.services_with_logs(),
        "newest": newest,
        "tail_query": query_without(request, "after", "tail"),
        "tailing": params.get("tail") == "1",
        "template": templates.get(int(params["template"])) if params.get("template", "").isdigit() else None,
        "attribute_filters": [(k, v) for k, v in params.items() if k.startswith("attr.")],
    }
    status = 400 if problem else 200
    if request.htmx and after.isdigit():
        return render(request, "aiops/partials/log_tail.html", context, status=status)
    if request.htmx:
        return render(request, "aiops/partials/log_results.html", context, status=status)
    return render(request, "aiops/log_search.html", context, status=status)


@role_required(Role.VIEWER)
def log_patterns(request: HttpRequest) -> HttpResponse:
    service = request.GET.get("service", "").strip()
    window = request.GET.get("window", "24h")
    hours = PATTERN_HOURS.get(window, 24)
    found = log_services.patterns(service=service, hours=hours)
    for pattern in found:
        pattern.chart = charts.sparkline(pattern.minutes, pattern.counts)
        pattern.chart_id = f"spark-{pattern.template.id}"
    return render(
        request,
        "aiops/log_patterns.html",
        {
            "patterns": found,
            "service": service,
            "services": log_services.services_with_logs(),
            "window": window if window in PATTERN_HOURS else "24h",
            "windows": list(PATTERN_HOURS),
        },
    )


@role_required(Role.VIEWER)
def log_record(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(LogRecord, pk=pk)
    before, after = log_services.neighbours(record)
    template = LogTemplate.objects.filter(pk=record.template_id).first()
    return render(
        request,
        "aiops/log_record.html",
        {"record": record, "before": before, "after": after, "template": template},
    )
