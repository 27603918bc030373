"""The troubleshooting context panel of the incident page (aiops.services.incident_context), loaded with htmx."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache

from opsportal.accounts.roles import Role, role_required

from ..models import Incident
from ..services import incident_context as context_service

PARTIAL = "aiops/partials/incident_context.html"


@never_cache
@role_required(Role.VIEWER)
def incident_context_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel: the stored context, assembled again first when it is older than a minute and can have
    changed (or with `?refresh=1`, the panel's "Refresh" button)."""
    incident = get_object_or_404(Incident, pk=pk)
    context = context_service.incident_context(incident=incident, force=request.GET.get("refresh") == "1")
    return render(
        request,
        PARTIAL,
        {
            "incident": incident,
            "incident_context": context,
            "context_sections": context_service.context_sections(context),
            "context_poll_seconds": int(context_service.STALE_AFTER.total_seconds()),
        },
    )
