"""Health, readiness, metrics and the system page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.htmx import render_page_or_partial

from . import services
from .metrics import render_metrics
from .models import TaskCounter, TaskProbe


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 only when the database and the broker both answer."""
    checks = {
        "database": services.run_check(services.check_database),
        "broker": services.run_check(services.check_broker),
    }
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@never_cache
@require_GET
@role_required(Role.VIEWER)
def metrics(request: HttpRequest) -> HttpResponse:
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)


def _status_context() -> dict:
    return {
        "workers": services.workers(),
        "queues": services.queue_depths(),
        "periodic_tasks": services.periodic_tasks(),
        "now": timezone.now(),
        "task_counters": TaskCounter.objects.order_by("name", "state"),
        "probes": TaskProbe.objects.select_related("requested_by")[:5],
        "database_error": services.check_database(),
        "broker_error": services.check_broker(),
    }


@role_required(Role.VIEWER)
def system_page(request: HttpRequest) -> HttpResponse:
    """Workers' heartbeats, queue depths, periodic tasks; the HTMX poll gets only the panels."""
    return render_page_or_partial(request, "system/system.html", "system/partials/status.html", _status_context())


@require_POST
@role_required(Role.OPERATOR)
def send_probe(request: HttpRequest) -> HttpResponse:
    services.request_probe(actor=request.user)
    messages.info(request, "Test task sent; it shows as done here once a worker has run it.")
    return redirect("system:page")
