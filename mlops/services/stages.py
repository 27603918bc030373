"""Stages and aliases: moving a version, pointing an alias, or opening an approval request when the policy says so."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from opsportal.accounts.roles import Role, has_role

from ..models import ApprovalRequest, ModelAlias, ModelVersion, RegisteredModel, Stage, VersionEvent, Webhook
from .errors import InvalidValue, NotFound
from .history import Actor, actor_user, record_event, touch
from .validation import validate_alias


def needs_approval(model: RegisteredModel, *, stage: str | None = None, alias: str | None = None) -> bool:
    """Whether the model's policy makes this stage (Production) or alias (a protected one) wait for an admin."""
    if stage is not None:
        return model.approval_required and stage == Stage.PRODUCTION
    return alias is not None and alias in (model.protected_aliases or [])


@dataclass
class TransitionResult:
    """What a stage or alias change did: applied (with the versions it archived) or now waiting (`request`)."""

    version: ModelVersion
    request: ApprovalRequest | None = None  # set when the change now waits for approval
    archived: list[int] | None = None


@transaction.atomic
def transition_stage(
    *,
    version: ModelVersion,
    stage: object,
    actor: Actor,
    archive_existing: bool | None = None,
    reason: str = "",
) -> TransitionResult:
    """Move a version to a stage, or open an approval request when the model's policy says so."""
    try:
        target = Stage.parse(str(stage))
    except ValueError as exc:
        raise InvalidValue(str(exc), field="stage") from None
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_related("model").get(pk=version.pk)
    archive = model.archive_on_promotion if archive_existing is None else bool(archive_existing)
    # Admins are the approvers: their own changes apply at once (and say so in the history).
    if needs_approval(model, stage=target) and not has_role(actor, Role.ADMIN):
        request = open_approval_request(version, actor, stage=target, archive=archive, reason=reason)
        return TransitionResult(version, request=request)
    archived = apply_stage(version, target, archive, actor, by_approver=needs_approval(model, stage=target))
    return TransitionResult(version, archived=archived)


def apply_stage(
    version: ModelVersion, target: str, archive: bool, actor: Actor, *, via: ApprovalRequest | None = None,
    rollback: bool = False, by_approver: bool = False,
) -> list[int]:  # fmt: skip
    """Set the stage; with `archive`, the other versions in that stage move to Archived.

    (MLflow's archive_existing_versions.)
    """
    previous = version.stage
    archived: list[int] = []
    now = timezone.now()
    if archive and target in (Stage.STAGING, Stage.PRODUCTION):
        others = list(
            ModelVersion.objects.select_for_update()
            .filter(model_id=version.model_id, stage=target)
            .exclude(pk=version.pk)
            .order_by("version")
        )
        for other in others:
            old = other.stage
            other.stage = Stage.ARCHIVED
            other.updated_at = now
            other.save(update_fields=["stage", "updated_at"])
            archived.append(other.version)
            record_event(
                version.model,
                VersionEvent.Kind.STAGE_CHANGED,
                f"Version {other.version} archived: version {version.version} moved to {target}.",
                actor,
                version=other,
                audit_action="transition",
                changes={"stage": [old, Stage.ARCHIVED.value]},
                webhook_event=Webhook.Event.STAGE_CHANGED,
                from_stage=old,
                to_stage=Stage.ARCHIVED.value,
            )
    if previous != target:
        version.stage = target
        version.updated_at = now
        version.save(update_fields=["stage", "updated_at"])
        what = "Rolled back to" if rollback else "Moved to"
        how = f" (approval request #{via.pk} approved)" if via else (" (by an admin, who approves)" if by_approver
                                                                   else "")  # fmt: skip
        record_event(
            version.model,
            VersionEvent.Kind.STAGE_CHANGED,
            f"{what} {target} from {previous}{how}.",
            actor,
            version=version,
            audit_action="transition",
            changes={"stage": [previous, str(target)]},
            webhook_event=Webhook.Event.STAGE_CHANGED,
            from_stage=previous,
            to_stage=str(target),
            archived_versions=archived,
            rollback=rollback,
            approval_request=via.pk if via else None,
        )
    touch(version.model)
    return archived


def open_approval_request(
    version: ModelVersion,
    actor: Actor,
    *,
    stage: str = "",
    alias: str = "",
    archive: bool = True,
    reason: str = "",
    rollback: bool = False,
) -> ApprovalRequest:
    """The pending request for this change: the open one if there is one, else a new one."""
    kind = ApprovalRequest.Kind.ALIAS if alias else ApprovalRequest.Kind.STAGE
    existing = ApprovalRequest.objects.filter(
        version=version, kind=kind, target_stage=stage, alias=alias, status=ApprovalRequest.Status.PENDING
    ).first()
    if existing is not None:
        if kind == ApprovalRequest.Kind.STAGE and existing.archive_existing != archive:
            existing.archive_existing = archive  # the latest ask says what approving it should do
            existing.save(update_fields=["archive_existing"])
        return existing
    request = ApprovalRequest.objects.create(
        version=version,
        kind=kind,
        target_stage=stage,
        alias=alias,
        archive_existing=archive,
        rollback=rollback,
        reason=reason or "",
        requested_by=actor_user(actor),
    )
    record_event(
        version.model,
        VersionEvent.Kind.APPROVAL_REQUESTED,
        f"Approval requested (#{request.pk}) to move version {version.version} to {request.target}.",
        actor,
        version=version,
        audit_action="request_approval",
        approval_request=request.pk,
    )
    return request


def apply_alias(version: ModelVersion, alias: str, actor: Actor, *, via: ApprovalRequest | None = None) -> ModelAlias:
    existing = ModelAlias.objects.select_for_update().filter(model_id=version.model_id, alias=alias).first()
    previous = existing.version.version if existing else None
    row, _ = ModelAlias.objects.update_or_create(
        model_id=version.model_id, alias=alias, defaults={"version": version, "updated_at": timezone.now()}
    )
    touch(version.model)
    how = f" (approval request #{via.pk} approved)" if via else ""
    moved = f", moved from version {previous}" if previous and previous != version.version else ""
    record_event(
        version.model,
        VersionEvent.Kind.ALIAS_SET,
        f"Alias @{alias} points at version {version.version}{moved}{how}.",
        actor,
        version=version,
        audit_action="set_alias",
        changes={"alias": [f"{alias}->{previous}" if previous else "", f"{alias}->{version.version}"]},
        webhook_event=Webhook.Event.ALIAS_SET,
        alias=alias,
        previous_version=previous,
    )
    return row


@transaction.atomic
def set_alias(*, model: RegisteredModel, alias: object, version: ModelVersion, actor: Actor) -> TransitionResult:
    alias = validate_alias(alias)
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if version.model_id != model.pk:
        raise InvalidValue("That version belongs to another model.", field="version")
    version = ModelVersion.objects.select_related("model").get(pk=version.pk)
    current = ModelAlias.objects.filter(model=model, alias=alias).values_list("version_id", flat=True).first()
    if current == version.pk:
        return TransitionResult(version)
    if needs_approval(model, alias=alias) and not has_role(actor, Role.ADMIN):
        return TransitionResult(version, request=open_approval_request(version, actor, alias=alias))
    apply_alias(version, alias, actor)
    return TransitionResult(version)


@transaction.atomic
def delete_alias(*, model: RegisteredModel, alias: object, actor: Actor) -> None:
    if not isinstance(alias, str) or not alias:
        raise InvalidValue("Missing value for required parameter 'alias'.", field="alias")
    row = ModelAlias.objects.select_related("version").filter(model=model, alias=alias).first()
    if row is None:
        raise NotFound(f"Registered model alias {alias} not found.")
    version = row.version
    row.delete()
    touch(model)
    record_event(
        model,
        VersionEvent.Kind.ALIAS_DELETED,
        f"Alias @{alias} removed (it pointed at version {version.version}).",
        actor,
        version=version,
        audit_action="delete_alias",
        webhook_event=Webhook.Event.ALIAS_DELETED,
        alias=alias,
    )
