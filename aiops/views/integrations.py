"""Integration pages: the senders, each with its URL, token (shown once) and sender configuration."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.portal.actions import PageAction, apply_form, dispatch

from .. import services
from ..forms import IntegrationForm
from ..models import Integration
from ..parsers import GENERIC_SCHEMA_DOC
from ..sender_config import sender_configuration


def _show_token_once(request: HttpRequest, integration: Integration, raw: str) -> None:
    """A token just created or rotated waits in the session for exactly one view of the integration."""
    request.session[f"aiops.integration-token.{integration.pk}"] = raw


@role_required(Role.VIEWER)
def integration_list(request: HttpRequest) -> HttpResponse:
    form = IntegrationForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, Role.ADMIN):
            return HttpResponse("Only admins create integrations.", status=403)
        ok, created = apply_form(form, lambda data: services.create_integration(actor=request.user, **data))
        if ok:
            integration, raw = created
            _show_token_once(request, integration, raw)
            return redirect(integration)
    integrations = Integration.objects.annotate(alert_total=Count("alerts"))
    return render(request, "aiops/integration_list.html", {"integrations": integrations, "form": form})


@never_cache  # it may show a secret
@role_required(Role.VIEWER)
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    raw = request.session.pop(f"aiops.integration-token.{integration.pk}", None)
    url = request.build_absolute_uri(integration.ingest_path())
    return render(
        request,
        "aiops/integration_detail.html",
        {
            "integration": integration,
            "token": raw,
            "url": url,
            "config": sender_configuration(integration, url, raw or "<your integration token>"),
            "deliveries": integration.deliveries.all()[:20],
            "generic_doc": GENERIC_SCHEMA_DOC
            if integration.kind == Integration.Kind.GENERIC and not integration.is_internal
            else "",
        },
    )


def _rotate(request: HttpRequest, integration: Integration, data: dict) -> None:
    raw = services.rotate_integration_token(integration=integration, actor=request.user)
    _show_token_once(request, integration, raw)


INTEGRATION_ACTIONS = {
    "rotate": PageAction(run=_rotate, success="New token issued; the old one no longer works."),
    "toggle": PageAction(
        run=lambda request, integration, data: services.update_integration(
            integration=integration, actor=request.user, enabled=not integration.enabled
        )
    ),
    "delete": PageAction(
        run=lambda request, integration, data: services.delete_integration(integration=integration, actor=request.user),
        success=lambda integration, result, data: f"Integration {integration.name} deleted.",
        next=lambda integration, result: "aiops:integrations",
    ),
}


@require_POST
@role_required(Role.ADMIN)
def integration_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """rotate (a new token, shown once) / toggle (enable or disable) / delete."""
    integration = get_object_or_404(Integration, pk=pk)
    return dispatch(request, INTEGRATION_ACTIONS, action, integration)
