"""What the MLOps pages share: look-ups that answer 404, and how a change that waits for approval is said."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from opsportal.errors import ServiceError

from .. import services
from ..models import ApprovalRequest, ModelVersion, RegisteredModel

HISTORY_LIMIT = 50

Run = Callable[[HttpRequest, Any, dict], Any]


def model_or_404(name: str) -> RegisteredModel:
    try:
        return services.get_model(name)
    except ServiceError as exc:
        raise Http404(exc.message) from None


def version_or_404(model: RegisteredModel, number: int) -> ModelVersion:
    try:
        version = services.get_version(model, number)
    except ServiceError as exc:
        raise Http404(exc.message) from None
    version.model = model
    return version


def said_plainly(run: Run, prefix: Callable[[Any], str] | None = None) -> Run:
    """`run`, its refusal shown as the service's message alone, after `prefix(obj)` if given.

    For actions whose problems appear as a message above the page: there is no form field
    to name, so "key: ..." would only repeat what the person clicked.
    """

    def plainly(request: HttpRequest, obj: Any, data: dict) -> Any:
        try:
            return run(request, obj, data)
        except ServiceError as exc:
            raise ServiceError(f"{prefix(obj) if prefix else ''}{exc.message}", code=exc.code) from None

    return plainly


def pending_link(approval: ApprovalRequest) -> SafeString:
    """The message naming a request that now waits for an admin, linked to its row in the queue."""
    number = approval.version.version
    change = (
        f"pointing alias @{approval.alias} at version {number}"
        if approval.kind == ApprovalRequest.Kind.ALIAS
        else f"moving version {number} to {approval.target_stage}"
    )
    return format_html(
        '<a href="{}">Approval request #{}</a> is pending: {} needs an admin\'s approval.',
        approval.get_absolute_url(),
        approval.pk,
        change,
    )


def say_transition(request: HttpRequest, result: services.TransitionResult, done: str) -> None:
    """`done` (plus the versions it archived), or, when the change waits for an admin, the request's link."""
    if result.request is not None:
        messages.info(request, pending_link(result.request))
        return
    text = done
    if result.archived:
        text += f" Archived version{'s' if len(result.archived) > 1 else ''} {', '.join(map(str, result.archived))}."
    messages.success(request, text)
