"""Merge suggestions on the incident page: the panel, and one-click accept or reject (operators)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput

from .. import services
from ..models import Incident, MergeSuggestion

PARTIAL = "aiops/partials/merge_suggestions.html"


def suggestion_context(incident: Incident) -> dict:
    """What the merge-suggestions partial needs, for the incident page's context too."""
    return {"incident": incident, "merge_suggestions": services.pending_suggestions(incident=incident)}


@role_required(Role.VIEWER)
def suggestion_panel(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, PARTIAL, suggestion_context(get_object_or_404(Incident, pk=pk)))


@require_POST
@role_required(Role.OPERATOR)
def suggestion_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """accept / reject. From htmx, a rejection answers with the refreshed panel of the incident the
    page shows; an acceptance sends the page to the incident that remains (its alerts and timeline
    changed)."""
    suggestion = get_object_or_404(MergeSuggestion.objects.select_related("incident", "other"), pk=pk)
    shown_id = request.POST.get("incident", "")
    shown = suggestion.other if shown_id == str(suggestion.other_id) else suggestion.incident
    if action not in ("accept", "reject"):
        return HttpResponse("The action is accept or reject.", status=404)
    try:
        if action == "accept":
            remaining = services.accept_merge_suggestion(suggestion=suggestion, actor=request.user)
            note = f"Merged #{suggestion.incident_id} into #{remaining.pk}."
        else:
            services.reject_merge_suggestion(suggestion=suggestion, actor=request.user)
            remaining, note = (
                shown,
                f"Suggestion rejected: #{suggestion.incident_id} stays apart from #{suggestion.other_id}.",
            )
    except InvalidInput as exc:
        if request.htmx:
            return HttpResponse(str(exc), status=409)
        messages.error(request, str(exc))
        return redirect(shown)
    if not request.htmx:
        messages.success(request, note)
        return redirect(remaining)
    if action == "accept":
        # The page's alerts and timeline changed too: htmx loads the remaining incident's page whole.
        messages.success(request, note)
        response = HttpResponse(status=204)
        response["HX-Redirect"] = remaining.get_absolute_url()
        return response
    shown.refresh_from_db()
    return render(request, PARTIAL, {**suggestion_context(shown), "suggestion_note": note})
