"""Integration pages: the senders, each with its URL, token (shown once), sender configuration and test alert."""

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
from ..models import Alert, Integration
from ..parsers import GENERIC_SCHEMA_DOC
from ..sender_config import sender_configuration


def _show_token_once(request: HttpRequest, integration: Integration, raw: str) -> None:
    """A token just created or rotated waits in the session for exactly one view of the integration."""
    request.session[f"aiops.integration-token.{integration.pk}"] = raw


def _test_alert(request: HttpRequest, integration: Integration) -> Alert | None:
    """The test alert to report on: the one just sent (once), or the one the pending panel polls for."""
    alert_id = request.session.pop(f"aiops.integration-test.{integration.pk}", None)
    if alert_id is None and request.htmx:
        alert_id = request.GET.get("test_alert", "")
    if not str(alert_id).isdigit():
        return None
    alert = (
        Alert.objects.select_related("incident", "suppressed_by").filter(pk=alert_id, integration=integration).first()
    )
    if alert is not None and alert.incident is not None:
        alert.opened = alert.incident.created_at >= alert.first_seen_at
    return alert


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
    test_alert = _test_alert(request, integration)
    if request.htmx and test_alert is not None:
        # The pending test alert's panel polls here until correlation has linked its incident.
        return render(request, "aiops/partials/test_alert_result.html", {"test_alert": test_alert})
    raw = request.session.pop(f"aiops.integration-token.{integration.pk}", None)
    url = request.build_absolute_uri(integration.ingest_path())
    return render(
        request,
        "aiops/integration_detail.html",
        {
            "integration": integration,
            "test_alert": test_alert,
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


def _send_test_alert(request: HttpRequest, integration: Integration, data: dict) -> services.SentTestAlert:
    sent = services.send_test_alert(
        integration=integration,
        actor=request.user,
        source_url=request.build_absolute_uri(integration.get_absolute_url()),
    )
    request.session[f"aiops.integration-test.{integration.pk}"] = sent.alert.pk
    return sent


INTEGRATION_ACTIONS = {
    "test": PageAction(run=_send_test_alert),  # the page reports on it in its own panel
    "rotate": PageAction(
        run=_rotate, success="New token issued; the old one no longer works.", role=Role.ADMIN, why="Rotating a token"
    ),
    "toggle": PageAction(
        run=lambda request, integration, data: services.update_integration(
            integration=integration, actor=request.user, enabled=not integration.enabled
        ),
        role=Role.ADMIN,
        why="Enabling or disabling an integration",
    ),
    "delete": PageAction(
        run=lambda request, integration, data: services.delete_integration(integration=integration, actor=request.user),
        success=lambda integration, result, data: f"Integration {integration.name} deleted.",
        next=lambda integration, result: "aiops:integrations",
        role=Role.ADMIN,
        why="Deleting an integration",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def integration_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """test (operators: a sample delivery through the pipeline) / rotate (a new token, shown once) / toggle / delete."""
    integration = get_object_or_404(Integration, pk=pk)
    return dispatch(request, INTEGRATION_ACTIONS, action, integration)
