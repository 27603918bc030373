"""MLOps's facade: every write of the model registry goes through here.

Each change runs in one transaction that also writes the model's history
(`VersionEvent`), the portal's audit log and the outbox of registry webhooks, so
the UI, the native API and the MLflow-compatible API behave the same.

Errors are `RegistryError` subclasses whose `code` the APIs translate:
`AlreadyExists` (MLflow RESOURCE_ALREADY_EXISTS), `NotFound` (RESOURCE_DOES_NOT_EXIST),
`InvalidValue` (INVALID_PARAMETER_VALUE), `ApprovalNeeded` and `NotAllowed`
(PERMISSION_DENIED).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.urls import reverse
from django.utils import timezone

from opsportal.accounts.roles import Role, has_role
from opsportal.audit import services as audit
from opsportal.portal.summary import AppSummary, activity_stats

from .models import (
    ApprovalRequest,
    Artifact,
    ModelAlias,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
    Stage,
    VersionEvent,
    Webhook,
)

Actor = User | AnonymousUser | None

MODEL_FIELDS = ["name", "description", "owner_team", "approval_required", "protected_aliases", "archive_on_promotion"]
VERSION_EDIT_FIELDS = [
    "description", "source", "run_id", "run_link", "framework", "params", "metrics", "dataset", "code_version",
    "model_card",
]  # fmt: skip
NAME_RE = re.compile(r"^[^/\x00-\x1f]{1,256}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,255}$")
# MLflow refuses aliases that look like version references (v1, V12, latest is reserved too).
RESERVED_ALIAS_RE = re.compile(r"^(v\d+|latest)$", re.IGNORECASE)
TAG_KEY_MAX = 250
TAG_VALUE_MAX = 5000


class RegistryError(Exception):
    code = "invalid"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class AlreadyExists(RegistryError):
    code = "already_exists"


class NotFound(RegistryError):
    code = "not_found"


class InvalidValue(RegistryError):
    code = "invalid"


class NotAllowed(RegistryError):
    code = "permission_denied"


class ApprovalNeeded(RegistryError):
    """The change waits for an admin: `request` is the (new or already open) approval request."""

    code = "approval_needed"

    def __init__(self, request: ApprovalRequest) -> None:
        version = request.version
        super().__init__(
            f"Moving {version.model.name} version {version.version} to {request.target} needs an admin's "
            f"approval: approval request #{request.pk} is pending ({settings.OPSPORTAL_BASE_URL}"
            f"{reverse('mlops:approvals')}#request-{request.pk})."
        )
        self.request = request


# --- Helpers -------------------------------------------------------------------------------------------------------


def _actor_user(actor: Actor) -> User | None:
    return actor if actor is not None and actor.is_authenticated else None


def _actor_name(actor: Actor) -> str:
    user = _actor_user(actor)
    return user.get_username() if user else "system"


def _event(
    model: RegisteredModel,
    kind: str,
    message: str,
    actor: Actor,
    *,
    version: ModelVersion | None = None,
    audit_action: str | None = None,
    changes: dict | None = None,
    webhook_event: str | None = None,
    **data: object,
) -> VersionEvent:
    """History line + audit entry + webhook outbox rows, in the caller's transaction."""
    event = VersionEvent.objects.create(
        model=model,
        version=version,
        kind=kind,
        message=message[:500],
        data=audit._plain(data),
        actor=_actor_user(actor),
        actor_name=_actor_name(actor),
    )
    obj = version if version is not None else model
    audit.record(action=audit_action or kind, actor=actor, obj=obj, changes=changes, message=message)
    if webhook_event:
        from . import webhooks

        webhooks.queue(webhook_event, model, version=version, actor=actor, **data)
    return event


def validate_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue(f"Missing value for required parameter '{field}'.", field)
    name = name.strip()
    if not NAME_RE.match(name) or set(name) == {"."}:
        raise InvalidValue(
            f"Invalid value {name!r} for parameter '{field}': at most 256 characters, no '/' or control characters.",
            field,
        )
    return name


def validate_tag(key: object, value: object) -> tuple[str, str]:
    if not isinstance(key, str) or not key.strip():
        raise InvalidValue("Missing value for required parameter 'key'.", "key")
    if len(key) > TAG_KEY_MAX:
        raise InvalidValue(f"Tag key is longer than {TAG_KEY_MAX} characters.", "key")
    if value is None:
        value = ""
    if not isinstance(value, str):
        value = str(value)
    if len(value) > TAG_VALUE_MAX:
        raise InvalidValue(f"Tag value for {key!r} is longer than {TAG_VALUE_MAX} characters.", "value")
    return key, value


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not alias:
        raise InvalidValue("Missing value for required parameter 'alias'.", "alias")
    if not ALIAS_RE.match(alias):
        raise InvalidValue(
            f"Invalid alias {alias!r}: use letters, digits, '_', '-' and '.', at most 255 characters.", "alias"
        )
    if RESERVED_ALIAS_RE.match(alias):
        raise InvalidValue(f"Invalid alias {alias!r}: 'latest' and v<number> are reserved.", "alias")
    return alias


def _alias_list(aliases: object) -> list[str]:
    if aliases is None:
        return []
    if isinstance(aliases, str) or not isinstance(aliases, list | tuple):
        raise InvalidValue('protected_aliases: give a list of alias names, e.g. ["champion"].', "protected_aliases")
    return [validate_alias(a) for a in aliases]


def _validate_numbers(values: object, field: str) -> dict[str, float]:
    if values in (None, ""):
        return {}
    if not isinstance(values, dict):
        raise InvalidValue(f"'{field}' must be an object of name -> number.", field)
    result = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InvalidValue(f"'{field}.{key}' must be a number, got {value!r}.", f"{field}.{key}") from None
        result[str(key)] = value
    return result


def _validate_params(values: object) -> dict[str, str]:
    if values in (None, ""):
        return {}
    if not isinstance(values, dict):
        raise InvalidValue("'params' must be an object of name -> value.", "params")
    return {str(k): v if isinstance(v, str) else str(v) for k, v in values.items()}


def _clean_version_fields(fields: dict) -> dict:
    unknown = set(fields) - set(VERSION_EDIT_FIELDS)
    if unknown:
        raise InvalidValue(f"Unknown field(s): {', '.join(sorted(unknown))}.", sorted(unknown)[0])
    cleaned = {}
    for key, value in fields.items():
        if key == "metrics":
            cleaned[key] = _validate_numbers(value, "metrics")
        elif key == "params":
            cleaned[key] = _validate_params(value)
        else:
            cleaned[key] = "" if value is None else str(value)
    return cleaned


# --- Look-ups ------------------------------------------------------------------------------------------------------


def get_model(name: object) -> RegisteredModel:
    name = validate_name(name)
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise NotFound(f"Registered Model with name={name} not found")
    return model


def get_version(model: RegisteredModel | str, version: object) -> ModelVersion:
    if isinstance(model, str):
        model = get_model(model)
    try:
        number = int(str(version).strip())
        if number < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidValue(f"Parameter 'version' must be a positive integer, got {version!r}.", "version") from None
    found = ModelVersion.objects.filter(model=model, version=number).select_related("model").first()
    if found is None:
        raise NotFound(f"Model Version (name={model.name}, version={number}) not found")
    return found


def get_version_by_alias(model: RegisteredModel | str, alias: object) -> ModelVersion:
    if isinstance(model, str):
        model = get_model(model)
    if not isinstance(alias, str) or not alias:
        raise InvalidValue("Missing value for required parameter 'alias'.", "alias")
    row = ModelAlias.objects.filter(model=model, alias=alias).select_related("version__model").first()
    if row is None:
        raise NotFound(f"Registered model alias {alias} not found.")
    return row.version


def latest_versions(model: RegisteredModel, stages: Iterable[str] | None = None) -> list[ModelVersion]:
    """The newest version in each stage (each of `stages`, or every stage that has one), as MLflow does."""
    try:
        wanted = [Stage.parse(s).value for s in stages] if stages else [s.value for s in Stage]
    except ValueError as exc:
        raise InvalidValue(str(exc), "stages") from None
    newest = (
        ModelVersion.objects.filter(model=model, stage__in=wanted)
        .values("stage")
        .annotate(newest=Max("version"))
        .values_list("newest", flat=True)
    )
    return list(
        ModelVersion.objects.filter(model=model, version__in=list(newest)).select_related("model").order_by("version")
    )


# --- Registered models ---------------------------------------------------------------------------------------------


@transaction.atomic
def create_model(
    *,
    name: object,
    actor: Actor,
    description: str = "",
    tags: dict[str, str] | None = None,
    owner_team: str = "",
    approval_required: bool = False,
    protected_aliases: Iterable[str] = (),
    archive_on_promotion: bool = True,
) -> RegisteredModel:
    name = validate_name(name)
    aliases = _alias_list(protected_aliases)
    checked_tags = [validate_tag(k, v) for k, v in (tags or {}).items()]
    if RegisteredModel.objects.filter(name=name).exists():
        raise AlreadyExists(f"Registered Model (name={name}) already exists.", "name")
    now = timezone.now()
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name,
                description=description or "",
                owner_team=owner_team or "",
                created_by=_actor_user(actor),
                created_at=now,
                updated_at=now,
                approval_required=bool(approval_required),
                protected_aliases=aliases,
                archive_on_promotion=archive_on_promotion,
            )
    except IntegrityError:
        raise AlreadyExists(f"Registered Model (name={name}) already exists.", "name") from None
    RegisteredModelTag.objects.bulk_create([RegisteredModelTag(model=model, key=k, value=v) for k, v in checked_tags])
    _event(
        model,
        VersionEvent.Kind.MODEL_CREATED,
        f"Registered model {name} created.",
        actor,
        audit_action="create",
        webhook_event=Webhook.Event.MODEL_CREATED,
        name=name,
    )
    return model


@transaction.atomic
def update_model(*, model: RegisteredModel, actor: Actor, **fields: object) -> RegisteredModel:
    unknown = set(fields) - {
        "description",
        "owner_team",
        "approval_required",
        "protected_aliases",
        "archive_on_promotion",
    }
    if unknown:
        raise InvalidValue(f"Unknown field(s): {', '.join(sorted(unknown))}.", sorted(unknown)[0])
    if "protected_aliases" in fields:
        fields["protected_aliases"] = _alias_list(fields["protected_aliases"])
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    before = audit.snapshot(model, fields)
    for key, value in fields.items():
        setattr(model, key, "" if value is None and key in ("description", "owner_team") else value)
    changes = audit.diff(before, audit.snapshot(model, fields))
    if not changes:
        return model
    model.updated_at = timezone.now()
    model.save()
    _event(
        model,
        VersionEvent.Kind.MODEL_UPDATED,
        f"Model {model.name} updated ({', '.join(changes)}).",
        actor,
        audit_action="update",
        changes=changes,
    )
    return model


@transaction.atomic
def rename_model(*, model: RegisteredModel, new_name: object, actor: Actor) -> RegisteredModel:
    new_name = validate_name(new_name, "new_name")
    if new_name == model.name:
        return model
    if RegisteredModel.objects.filter(name=new_name).exists():
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.", "new_name")
    old = model.name
    model.name = new_name
    model.updated_at = timezone.now()
    try:
        with transaction.atomic():
            model.save(update_fields=["name", "updated_at"])
    except IntegrityError:
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.", "new_name") from None
    _event(
        model,
        VersionEvent.Kind.MODEL_RENAMED,
        f"Model {old} renamed to {new_name}.",
        actor,
        audit_action="update",
        changes={"name": [old, new_name]},
    )
    return model


@transaction.atomic
def delete_model(*, model: RegisteredModel, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=model, message=f"Registered model {model.name} deleted.")
    for artifact in Artifact.objects.filter(version__model=model):
        _delete_file_on_commit(artifact)
    model.delete()


def _touch(model: RegisteredModel, version: ModelVersion | None = None) -> None:
    now = timezone.now()
    RegisteredModel.objects.filter(pk=model.pk).update(updated_at=now)
    model.updated_at = now
    if version is not None:
        ModelVersion.objects.filter(pk=version.pk).update(updated_at=now)
        version.updated_at = now


@transaction.atomic
def set_model_tag(*, model: RegisteredModel, key: object, value: object, actor: Actor) -> RegisteredModelTag:
    key, value = validate_tag(key, value)
    tag, _ = RegisteredModelTag.objects.update_or_create(model=model, key=key, defaults={"value": value})
    _touch(model)
    _event(
        model,
        VersionEvent.Kind.TAG_SET,
        f"Tag {key}={value[:80]} set on {model.name}.",
        actor,
        audit_action="update",
        webhook_event=Webhook.Event.TAG_SET,
        key=key,
        value=value,
    )
    return tag


@transaction.atomic
def delete_model_tag(*, model: RegisteredModel, key: object, actor: Actor) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidValue("Missing value for required parameter 'key'.", "key")
    deleted, _ = RegisteredModelTag.objects.filter(model=model, key=key).delete()
    if not deleted:
        raise NotFound(f"No tag with name: {key} in Registered Model {model.name}.")
    _touch(model)
    _event(model, VersionEvent.Kind.TAG_DELETED, f"Tag {key} deleted from {model.name}.", actor, audit_action="update")


# --- Versions ------------------------------------------------------------------------------------------------------


@transaction.atomic
def create_version(
    *,
    model: RegisteredModel | str,
    actor: Actor,
    source: str = "",
    tags: dict[str, str] | None = None,
    **fields: object,
) -> ModelVersion:
    """A new READY version numbered after the model's highest one (the model row lock serialises numbering)."""
    name = validate_name(model) if isinstance(model, str) else model.name
    model = RegisteredModel.objects.select_for_update().filter(name=name).first()
    if model is None:
        raise NotFound(f"Registered Model with name={name} not found")
    cleaned = _clean_version_fields({**fields, "source": source})
    checked_tags = [validate_tag(k, v) for k, v in (tags or {}).items()]
    number = (ModelVersion.objects.filter(model=model).aggregate(top=Max("version"))["top"] or 0) + 1
    now = timezone.now()
    version = ModelVersion.objects.create(
        model=model,
        version=number,
        created_by=_actor_user(actor),
        created_at=now,
        updated_at=now,
        **cleaned,
    )
    ModelVersionTag.objects.bulk_create([ModelVersionTag(version=version, key=k, value=v) for k, v in checked_tags])
    _touch(model)
    _event(
        model,
        VersionEvent.Kind.VERSION_CREATED,
        f"Version {number} of {model.name} created from {source or 'no source'}.",
        actor,
        version=version,
        audit_action="create",
        webhook_event=Webhook.Event.VERSION_CREATED,
        source=source,
        run_id=cleaned.get("run_id", ""),
    )
    return version


@transaction.atomic
def update_version(*, version: ModelVersion, actor: Actor, **fields: object) -> ModelVersion:
    cleaned = _clean_version_fields(fields)
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    before = audit.snapshot(version, cleaned)
    for key, value in cleaned.items():
        setattr(version, key, value)
    changes = audit.diff(before, audit.snapshot(version, cleaned))
    if not changes:
        return version
    version.updated_at = timezone.now()
    version.save()
    _touch(version.model)
    _event(
        version.model,
        VersionEvent.Kind.VERSION_UPDATED,
        f"Version {version.version} of {version.model.name} updated ({', '.join(changes)}).",
        actor,
        version=version,
        audit_action="update",
        changes=changes,
    )
    return version


@transaction.atomic
def delete_version(*, version: ModelVersion, actor: Actor) -> None:
    audit.record(
        action="delete", actor=actor, obj=version, message=f"Version {version.version} of {version.model.name} deleted."
    )
    for artifact in version.artifacts.all():
        _delete_file_on_commit(artifact)
    model = version.model
    version.delete()
    _touch(model)


@transaction.atomic
def set_version_tag(*, version: ModelVersion, key: object, value: object, actor: Actor) -> ModelVersionTag:
    key, value = validate_tag(key, value)
    tag, _ = ModelVersionTag.objects.update_or_create(version=version, key=key, defaults={"value": value})
    _touch(version.model, version)
    _event(
        version.model,
        VersionEvent.Kind.TAG_SET,
        f"Tag {key}={value[:80]} set on version {version.version}.",
        actor,
        version=version,
        audit_action="update",
        webhook_event=Webhook.Event.TAG_SET,
        key=key,
        value=value,
    )
    return tag


@transaction.atomic
def delete_version_tag(*, version: ModelVersion, key: object, actor: Actor) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidValue("Missing value for required parameter 'key'.", "key")
    deleted, _ = ModelVersionTag.objects.filter(version=version, key=key).delete()
    if not deleted:
        raise NotFound(f"No tag with name: {key} in Model Version {version.model.name} {version.version}.")
    _touch(version.model, version)
    _event(
        version.model,
        VersionEvent.Kind.TAG_DELETED,
        f"Tag {key} deleted from version {version.version}.",
        actor,
        version=version,
        audit_action="update",
    )


# --- Stages, aliases and approvals ---------------------------------------------------------------------------------


def needs_approval(model: RegisteredModel, *, stage: str | None = None, alias: str | None = None) -> bool:
    if stage is not None:
        return model.approval_required and stage == Stage.PRODUCTION
    return alias is not None and alias in (model.protected_aliases or [])


@dataclass
class TransitionResult:
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
        raise InvalidValue(str(exc), "stage") from None
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_related("model").get(pk=version.pk)
    archive = model.archive_on_promotion if archive_existing is None else bool(archive_existing)
    # Admins are the approvers: their own changes apply at once (and say so in the history).
    if needs_approval(model, stage=target) and not has_role(actor, Role.ADMIN):
        request = _request_approval(version, actor, stage=target, archive=archive, reason=reason)
        return TransitionResult(version, request=request)
    archived = _apply_stage(version, target, archive, actor, by_approver=needs_approval(model, stage=target))
    return TransitionResult(version, archived=archived)


def _apply_stage(
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
            _event(
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
        _event(
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
    _touch(version.model)
    return archived


def _request_approval(
    version: ModelVersion,
    actor: Actor,
    *,
    stage: str = "",
    alias: str = "",
    archive: bool = True,
    reason: str = "",
    rollback: bool = False,
) -> ApprovalRequest:
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
        requested_by=_actor_user(actor),
    )
    _event(
        version.model,
        VersionEvent.Kind.APPROVAL_REQUESTED,
        f"Approval requested (#{request.pk}) to move version {version.version} to {request.target}.",
        actor,
        version=version,
        audit_action="request_approval",
        approval_request=request.pk,
    )
    return request


@transaction.atomic
def request_promotion(
    *, version: ModelVersion, actor: Actor, stage: str = Stage.PRODUCTION, alias: str = "", reason: str = "",
    archive_existing: bool | None = None,
) -> ApprovalRequest:  # fmt: skip
    """Ask for approval explicitly (the UI's "request promotion"), whatever the model's policy."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    archive = model.archive_on_promotion if archive_existing is None else bool(archive_existing)
    if alias:
        return _request_approval(version, actor, alias=validate_alias(alias), reason=reason)
    try:
        target = Stage.parse(stage)
    except ValueError as exc:
        raise InvalidValue(str(exc), "stage") from None
    if version.stage == target:
        raise InvalidValue(f"Version {version.version} is already in {target}.", "stage")
    return _request_approval(version, actor, stage=target, archive=archive, reason=reason)


def _decidable(request: ApprovalRequest, actor: Actor) -> ApprovalRequest:
    if not has_role(actor, Role.ADMIN):
        raise NotAllowed("Only admins approve or reject promotion requests.")
    request = ApprovalRequest.objects.select_for_update().select_related("version__model").get(pk=request.pk)
    if request.status != ApprovalRequest.Status.PENDING:
        raise InvalidValue(f"Approval request #{request.pk} is already {request.status}.", "status")
    return request


@transaction.atomic
def approve(*, request: ApprovalRequest, actor: Actor, comment: str = "") -> ApprovalRequest:
    request = _decidable(request, actor)
    RegisteredModel.objects.select_for_update().get(pk=request.version.model_id)
    request.status = ApprovalRequest.Status.APPROVED
    request.decided_by = _actor_user(actor)
    request.decided_at = timezone.now()
    request.comment = comment or ""
    request.save()
    version = request.version
    _event(
        version.model,
        VersionEvent.Kind.APPROVED,
        f"Approval request #{request.pk} approved by {_actor_name(actor)}" + (f": {comment}" if comment else "."),
        actor,
        version=version,
        audit_action="approve",
        approval_request=request.pk,
        comment=comment,
    )
    if request.kind == ApprovalRequest.Kind.ALIAS:
        _apply_alias(version, request.alias, actor, via=request)
    else:
        _apply_stage(version, request.target_stage, request.archive_existing, actor, via=request,
                     rollback=request.rollback)  # fmt: skip
    return request


@transaction.atomic
def reject(*, request: ApprovalRequest, actor: Actor, comment: str = "") -> ApprovalRequest:
    request = _decidable(request, actor)
    if not comment.strip():
        raise InvalidValue("Say why the request is rejected.", "comment")
    request.status = ApprovalRequest.Status.REJECTED
    request.decided_by = _actor_user(actor)
    request.decided_at = timezone.now()
    request.comment = comment
    request.save()
    _event(
        request.version.model,
        VersionEvent.Kind.REJECTED,
        f"Approval request #{request.pk} rejected by {_actor_name(actor)}: {comment}",
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
    user = _actor_user(actor)
    if request.requested_by_id != (user.pk if user else None) and not has_role(actor, Role.ADMIN):
        raise NotAllowed("Only the requester or an admin can cancel a request.")
    if request.status != ApprovalRequest.Status.PENDING:
        raise InvalidValue(f"Approval request #{request.pk} is already {request.status}.", "status")
    request.status = ApprovalRequest.Status.CANCELLED
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save()
    _event(
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
        raise InvalidValue("That version belongs to another model.", "version")
    if to_version.stage == Stage.PRODUCTION:
        raise InvalidValue(f"Version {to_version.version} is already in Production.", "version")
    to_version = ModelVersion.objects.select_related("model").get(pk=to_version.pk)
    if needs_approval(model, stage=Stage.PRODUCTION) and not has_role(actor, Role.ADMIN):
        request = _request_approval(
            to_version, actor, stage=Stage.PRODUCTION, archive=True, reason=reason or "Rollback", rollback=True
        )
        return TransitionResult(to_version, request=request)
    archived = _apply_stage(to_version, Stage.PRODUCTION, True, actor, rollback=True)
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


def _apply_alias(version: ModelVersion, alias: str, actor: Actor, *, via: ApprovalRequest | None = None) -> ModelAlias:
    existing = ModelAlias.objects.select_for_update().filter(model_id=version.model_id, alias=alias).first()
    previous = existing.version.version if existing else None
    row, _ = ModelAlias.objects.update_or_create(
        model_id=version.model_id, alias=alias, defaults={"version": version, "updated_at": timezone.now()}
    )
    _touch(version.model)
    how = f" (approval request #{via.pk} approved)" if via else ""
    moved = f", moved from version {previous}" if previous and previous != version.version else ""
    _event(
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
        raise InvalidValue("That version belongs to another model.", "version")
    version = ModelVersion.objects.select_related("model").get(pk=version.pk)
    current = ModelAlias.objects.filter(model=model, alias=alias).values_list("version_id", flat=True).first()
    if current == version.pk:
        return TransitionResult(version)
    if needs_approval(model, alias=alias) and not has_role(actor, Role.ADMIN):
        return TransitionResult(version, request=_request_approval(version, actor, alias=alias))
    _apply_alias(version, alias, actor)
    return TransitionResult(version)


@transaction.atomic
def delete_alias(*, model: RegisteredModel, alias: object, actor: Actor) -> None:
    if not isinstance(alias, str) or not alias:
        raise InvalidValue("Missing value for required parameter 'alias'.", "alias")
    row = ModelAlias.objects.select_related("version").filter(model=model, alias=alias).first()
    if row is None:
        raise NotFound(f"Registered model alias {alias} not found.")
    version = row.version
    row.delete()
    _touch(model)
    _event(
        model,
        VersionEvent.Kind.ALIAS_DELETED,
        f"Alias @{alias} removed (it pointed at version {version.version}).",
        actor,
        version=version,
        audit_action="delete_alias",
        webhook_event=Webhook.Event.ALIAS_DELETED,
        alias=alias,
    )


# --- Artifacts -----------------------------------------------------------------------------------------------------

ARTIFACT_PATH_RE = re.compile(r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\-/]{0,499}$")


def _delete_file_on_commit(artifact: Artifact) -> None:
    name, storage = artifact.file.name, artifact.file.storage
    transaction.on_commit(lambda: storage.delete(name))


def upload_artifact(*, version: ModelVersion, upload: UploadedFile, actor: Actor, path: str = "") -> Artifact:
    """Store a file for a version (Django's storage API), with size and SHA-256; over the limit: InvalidValue."""
    limit = settings.MLOPS_MAX_ARTIFACT_BYTES
    if upload.size is not None and upload.size > limit:
        raise InvalidValue(
            f"{upload.name}: {upload.size:,} bytes is over the artifact limit of {limit:,} bytes.", "file"
        )
    path = (path or upload.name or "").strip().lstrip("/")
    if not ARTIFACT_PATH_RE.match(path) or ".." in path.split("/"):
        raise InvalidValue(f"Invalid artifact path {path!r}: letters, digits, '_', '-', '.', '/'; no '..'.", "path")
    digest = hashlib.sha256()
    size = 0
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
    if size > limit:
        raise InvalidValue(f"{upload.name}: {size:,} bytes is over the artifact limit of {limit:,} bytes.", "file")
    upload.seek(0)
    with transaction.atomic():
        if Artifact.objects.filter(version=version, path=path).exists():
            raise AlreadyExists(f"Version {version.version} already has an artifact {path!r}.", "path")
        artifact = Artifact(
            version=version,
            path=path,
            size=size,
            sha256=digest.hexdigest(),
            content_type=getattr(upload, "content_type", "") or "",
            uploaded_by=_actor_user(actor),
        )
        artifact.file.save(path, upload, save=False)
        # If the transaction fails after the file was written, remove the orphan.
        stored = artifact.file.name
        try:
            artifact.save()
            _touch(version.model, version)
            _event(
                version.model,
                VersionEvent.Kind.ARTIFACT_UPLOADED,
                f"Artifact {path} ({size:,} bytes) uploaded to version {version.version}.",
                actor,
                version=version,
                audit_action="upload",
                path=path,
                size=size,
                sha256=artifact.sha256,
            )
        except Exception:
            artifact.file.storage.delete(stored)
            raise
    return artifact


# --- Overview ------------------------------------------------------------------------------------------------------


def registry_counts() -> dict[str, int]:
    counts = RegisteredModel.objects.aggregate(models=Count("id"))
    counts["versions"] = ModelVersion.objects.count()
    counts["production"] = ModelVersion.objects.filter(stage=Stage.PRODUCTION).count()
    counts["pending_approvals"] = ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).count()
    return counts


def recent_transitions(limit: int = 8) -> list[VersionEvent]:
    return list(
        VersionEvent.objects.filter(kind=VersionEvent.Kind.STAGE_CHANGED)
        .select_related("model", "version")
        .order_by("-created_at", "-id")[:limit]
    )


def overview(*, with_charts: bool = False) -> AppSummary:
    """MLOps's card on the combined overview: models in Production, pending approvals, recent transitions."""
    counts = registry_counts()
    since = timezone.now() - datetime.timedelta(days=30)
    transitions = VersionEvent.objects.filter(kind=VersionEvent.Kind.STAGE_CHANGED, created_at__gte=since).count()
    stats = [
        ("Registered models", counts["models"]),
        ("Versions in Production", counts["production"]),
        ("Pending approvals", counts["pending_approvals"]),
        ("Stage transitions (30 days)", transitions),
        *activity_stats("mlops"),
    ]
    charts = []
    if with_charts and counts["versions"]:
        from opsportal.portal.charts import figure_data

        from . import charts as mlops_charts

        charts.append(("mlops-stages", "Model versions by stage", figure_data(mlops_charts.versions_by_stage())))
    return AppSummary(
        label="mlops",
        title="MLOps",
        description="The model registry: versions, stages, aliases, lineage, artifacts and approvals.",
        url=reverse("mlops:index"),
        stats=stats,
        charts=charts,
        recent=[
            (
                f"{e.model.name} v{e.version.version if e.version else '?'}: {e.data.get('to_stage', '')}",
                e.version.get_absolute_url() if e.version else e.model.get_absolute_url(),
                e.created_at,
            )
            for e in recent_transitions(5)
        ],
        recent_title="Recent transitions",
    )
