"""The approval queue, and an admin's decision on a request (or its requester's cancelling it)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import NotAllowed
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.actions import PageAction, dispatch

from .. import services
from ..forms import DecisionForm
from ..models import ApprovalRequest, ModelVersion, Stage
from .common import Run, said_plainly

QUEUE_PAGE_SIZE = 50
DECIDED_SHOWN = 50


@role_required(Role.VIEWER)
def approvals(request: HttpRequest) -> HttpResponse:
    """The queue of pending promotion requests (oldest first) and the latest decisions."""
    pending = Paginator(
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
        .select_related("version__model", "requested_by")
        .order_by("requested_at", "id"),
        QUEUE_PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    model_ids = {r.version.model_id for r in pending.object_list}
    production: dict[int, list[int]] = {}
    for model_id, number in (
        ModelVersion.objects.filter(model_id__in=model_ids, stage=Stage.PRODUCTION)
        .order_by("version")
        .values_list("model_id", "version")
    ):
        production.setdefault(model_id, []).append(number)
    for approval in pending.object_list:
        approval.current_production = production.get(approval.version.model_id, [])
    decided = (
        ApprovalRequest.objects.exclude(status=ApprovalRequest.Status.PENDING)
        .select_related("version__model", "requested_by", "decided_by")
        .order_by("-decided_at", "-id")[:DECIDED_SHOWN]
    )
    return render(
        request,
        "mlops/approvals.html",
        {"page": pending, "decided": decided, "decision_form": DecisionForm(), "query": ""},
    )


def _comment(request: HttpRequest) -> str:
    """The decision's comment; one the form refuses (too long) counts as none, as it always has."""
    form = DecisionForm(request.POST)
    return form.cleaned_data["comment"] if form.is_valid() else ""


def _approve(request: HttpRequest, approval: ApprovalRequest, data: dict) -> ApprovalRequest:
    services.approve(request=approval, actor=request.user, comment=_comment(request))
    approval.version.refresh_from_db(fields=["stage"])
    return approval


def _approved(approval: ApprovalRequest, result: object, data: dict) -> str:
    version = approval.version
    what = (
        f"alias @{approval.alias} points at version {version.version}"
        if approval.alias
        else f"version {version.version} is now in {version.stage}"
    )
    return f"Approved request #{approval.pk}: {version.model.name} {what}."


def _reject(request: HttpRequest, approval: ApprovalRequest, data: dict) -> ApprovalRequest:
    return services.reject(request=approval, actor=request.user, comment=_comment(request))


def _cancel(request: HttpRequest, approval: ApprovalRequest, data: dict) -> ApprovalRequest:
    return services.cancel_request(request=approval, actor=request.user)


def _decision(run: Run) -> Run:
    """`run`, refused as the page does: not the actor's to decide is a 403, else a message naming the request."""

    def decide(request: HttpRequest, approval: ApprovalRequest, data: dict) -> object:
        try:
            return run(request, approval, data)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None

    return said_plainly(decide, prefix=lambda approval: f"Request #{approval.pk}: ")


ADMINS_DECIDE = "Approving or rejecting a promotion"
APPROVAL_ACTIONS = {
    "approve": PageAction(run=_decision(_approve), success=_approved, role=Role.ADMIN, why=ADMINS_DECIDE),
    "reject": PageAction(
        run=_decision(_reject), success=lambda approval, result, data: f"Rejected request #{approval.pk}.",
        role=Role.ADMIN, why=ADMINS_DECIDE,
    ),
    "cancel": PageAction(
        run=_decision(_cancel), success=lambda approval, result, data: f"Cancelled request #{approval.pk}."
    ),
}  # fmt: skip


@require_POST
@role_required(Role.OPERATOR)
def approval_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """approve / reject (admins; a rejection says why) / cancel (the requester or an admin)."""
    approval = get_object_or_404(ApprovalRequest.objects.select_related("version__model"), pk=pk)
    return dispatch(request, APPROVAL_ACTIONS, action, approval, default_next=reverse("mlops:approvals"))
