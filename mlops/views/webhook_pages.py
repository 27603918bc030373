"""Registry webhooks (admins): the list with the latest deliveries, a new webhook's secret shown once."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput
from opsportal.portal.actions import PageAction, apply_form, dispatch

from .. import services
from ..forms import WebhookForm
from ..models import RegisteredModel, Webhook, WebhookDelivery

RECENT_DELIVERIES = 10
SECRET_KEY = "mlops.webhook-secret"


def _create(request: HttpRequest, data: dict) -> tuple[Webhook, str]:
    model = None
    if data["model"]:
        model = RegisteredModel.objects.filter(name=data["model"].strip()).first()
        if model is None:
            raise InvalidInput(f"There is no model named {data['model']}.", field="model")
    return services.create_webhook(
        name=data["name"], url=data["url"], events=data["events"], model=model, actor=request.user
    )


@never_cache  # it may show a secret
@role_required(Role.ADMIN)
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Registry webhooks with their latest deliveries; a new webhook's secret is shown once."""
    form = WebhookForm(request.POST or None)
    if request.method == "POST":
        done, created = apply_form(form, lambda data: _create(request, data))
        if done:
            hook, secret = created
            request.session[SECRET_KEY] = [hook.pk, secret]
            messages.success(request, f"Webhook {hook.name} created.")
            return redirect(reverse("mlops:webhooks") + f"#webhook-{hook.pk}")
    hooks = list(
        Webhook.objects.select_related("model").prefetch_related(
            Prefetch(
                "deliveries",
                queryset=WebhookDelivery.objects.order_by("-created_at", "-id")[:RECENT_DELIVERIES],
                to_attr="recent_deliveries",
            )
        )
    )
    labels = dict(Webhook.Event.choices)
    for hook in hooks:
        hook.event_labels = [labels.get(event, event) for event in hook.events]
    secret = request.session.pop(SECRET_KEY, None)
    return render(
        request,
        "mlops/webhooks.html",
        {
            "form": form,
            "hooks": hooks,
            "new_secret": {"pk": secret[0], "secret": secret[1]} if secret else None,
        },
        status=400 if form.errors else 200,
    )


WEBHOOK_ACTIONS = {
    "toggle": PageAction(
        run=lambda request, hook, data: services.update_webhook(
            webhook=hook, actor=request.user, enabled=not hook.enabled
        ),
        success=lambda hook, result, data: f"Webhook {hook.name} {'enabled' if hook.enabled else 'disabled'}.",
        next=lambda hook, result: reverse("mlops:webhooks"),
    ),
    "delete": PageAction(
        run=lambda request, hook, data: services.delete_webhook(webhook=hook, actor=request.user),
        success=lambda hook, result, data: f"Webhook {hook.name} deleted.",
        next=lambda hook, result: reverse("mlops:webhooks"),
    ),
}


@require_POST
@role_required(Role.ADMIN)
def webhook_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Enable or disable (toggle), or delete, a webhook."""
    return dispatch(request, WEBHOOK_ACTIONS, action, get_object_or_404(Webhook, pk=pk))
