"""Approvals and rollback: asking for a promotion, an admin's decision, cancelling, rolling back Production."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from opsportal.accounts.roles import Role, has_role

from ..models import ApprovalRequest, ModelVersion, RegisteredModel, Stage, VersionEvent
from .errors import InvalidValue, NotAllowed
from .history import Actor, actor_name, actor_user, record_event
from .stages import TransitionResult, apply_alias, apply_stage, needs_approval, open_approval_request
from .validation import validate_alias


@transaction.atomic
def request_promotion(
    *, version: ModelVersion, actor: Actor, stage: str = Stage.PRODUCTION, alias: str = "", reason: str = "",
    archive_existing: bool | None = None,
) -> ApprovalRequest:  # fmt: skip
    """Ask for approval explicitly (the UI's "request promotion"), whatever the model's policy."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    archive = model.archive_on_promotion if archive_existing is None else bool(archive_existing)
    if alias:
        return open_approval_request(version, actor, alias=validate_alias(alias), reason=reason)
    try:
        target = Stage.parse(stage)
    except ValueError as exc:
        raise InvalidValue(str(exc), field="stage") from None
    if version.stage == target:
        raise InvalidValue(f"Version {version.version} is already in {target}.", field="stage")
    return open_approval_request(version, actor, stage=target, archive=archive, reason=reason)


def _decidable(request: ApprovalRequest, actor: Actor) -> ApprovalRequest:
    if not has_role(actor, Role.ADMIN):
        raise NotAllowed("Only admins approve or reject promotion requests.")
    request = ApprovalRequest.objects.select_for_update().select_related("version__model").get(pk=request.pk)
    if request.status != ApprovalRequest.Status.PENDING:
        raise InvalidValue(f"Approval request #{request.pk} is already {request.status}.", field="status")
    return request


@transaction.atomic
def approve(*, request: ApprovalRequest, actor: Actor, comment: str = "") -> ApprovalRequest:
    request = _decidable(request, actor)
    RegisteredModel.objects.select_for_update().get(pk=request.version.model_id)
    request.status = ApprovalRequest.Status.APPROVED
    request.decided_by = actor_user(actor)
    request.decided_at = timezone.now()
    request.comment = comment or ""
    request.save()
    version = request.version
    record_event(
        version.model,
        VersionEvent.Kind.APPROVED,
        f"Approval request #{request.pk} approved by {actor_name(actor)}" + (f": {comment}" if comment else "."),
        actor,
        version=version,
        audit_action="approve",
        approval_request=request.pk,
        comment=comment,
    )
    if request.kind == ApprovalRequest.Kind.ALIAS:
        apply_alias(version, request.alias, actor, via=request)
    else:
        apply_stage(version, request.target_stage, request.archive_existing, actor, via=request,
                     rollback=request.rollback)  # fmt: skip
    return request


@transaction.atomic
def reject(*, request: ApprovalRequest, actor: Actor, comment: str = "") -> ApprovalRequest:
    request = _decidable(request, actor)
    if not comment.strip():
        raise InvalidValue("Say why the request is rejected.", field="comment")
    request.status = ApprovalRequest.Status.REJECTED
    request.decided_by = actor_user(actor)
    request.decided_at = timezone.now()
    request.comment = comment
    request.save()
    record_event(
        request.version.model,
        VersionEvent.Kind.REJECTED,
        f"Approval request #{request.pk} rejected by {actor_name(actor)}: {comment}",
        actor,
        version=request.version,
        audit_action="reject",
        approval_request=request.pk,
        comment=comment,
    )
    return request


@transaction.atomic
def cancel_request(*, request: ApprovalRequest, actor: Actor) -> ApprovalRequest:
    request = ApprovalRequest.objects.select_for_update().select_related("version__model").get(pk=request.pk)
    user = actor_user(actor)
    if request.requested_by_id != (user.pk if user else None) and not has_role(actor, Role.ADMIN):
        raise NotAllowed("Only the requester or an admin can cancel a request.")
    if request.status != ApprovalRequest.Status.PENDING:
        raise InvalidValue(f"Approval request #{request.pk} is already {request.status}.", field="status")
    request.status = ApprovalRequest.Status.CANCELLED
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save()
    record_event(
        request.version.model,
        VersionEvent.Kind.CANCELLED,
        f"Approval request #{request.pk} cancelled.",
        actor,
        version=request.version,
        audit_action="cancel",
        approval_request=request.pk,
    )
    return request


@transaction.atomic
def rollback(*, model: RegisteredModel, to_version: ModelVersion, actor: Actor, reason: str = "") -> TransitionResult:
    """Make a previous version Production again, archiving the current one, in one action.

    Under an approval policy an admin's rollback applies at once (admins are the approvers; it is
    audited like any approval); anyone else's opens an approval request marked as a rollback.
    """
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if to_version.model_id != model.pk:
        raise InvalidValue("That version belongs to another model.", field="version")
    if to_version.stage == Stage.PRODUCTION:
        raise InvalidValue(f"Version {to_version.version} is already in Production.", field="version")
    to_version = ModelVersion.objects.select_related("model").get(pk=to_version.pk)
    if needs_approval(model, stage=Stage.PRODUCTION) and not has_role(actor, Role.ADMIN):
        request = open_approval_request(
            to_version, actor, stage=Stage.PRODUCTION, archive=True, reason=reason or "Rollback", rollback=True
        )
        return TransitionResult(to_version, request=request)
    archived = apply_stage(to_version, Stage.PRODUCTION, True, actor, rollback=True)
    return TransitionResult(to_version, archived=archived)


def rollback_candidates(model: RegisteredModel) -> list[ModelVersion]:
    """Versions that were in Production before and are not now, newest first."""
    was_production = (
        VersionEvent.objects.filter(model=model, kind=VersionEvent.Kind.STAGE_CHANGED, data__to_stage="Production")
        .values_list("version_id", flat=True)
        .distinct()
    )
    return list(
        ModelVersion.objects.filter(model=model, pk__in=was_production)
        .exclude(stage=Stage.PRODUCTION)
        .order_by("-version")
    )
