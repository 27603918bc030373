"""Registered models: look-up by name, create, update, rename, delete, and their tags."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from opsportal.audit import services as audit

from ..models import Artifact, RegisteredModel, RegisteredModelTag, VersionEvent, Webhook
from . import statements
from .artifacts import delete_file_on_commit
from .errors import AlreadyExists, InvalidValue, NotFound
from .history import Actor, actor_user, record_event, touch
from .validation import alias_list, validate_name, validate_tag

MODEL_UPDATE_FIELDS = {"description", "owner_team", "approval_required", "protected_aliases", "archive_on_promotion"}


def get_model(name: object) -> RegisteredModel:
    name = validate_name(name)
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise NotFound(f"Registered Model with name={name} not found")
    return model


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
    """A new registered model with its tags; its history line, audit entry and webhook deliveries with it
    (on PostgreSQL in one statement, see `statements`)."""
    name = validate_name(name)
    aliases = alias_list(protected_aliases)
    checked_tags = [validate_tag(k, v) for k, v in (tags or {}).items()]
    now = timezone.now()
    model = RegisteredModel(
        name=name,
        description=description or "",
        owner_team=owner_team or "",
        created_by=actor_user(actor),
        created_at=now,
        updated_at=now,
        approval_required=bool(approval_required),
        protected_aliases=aliases,
        archive_on_promotion=archive_on_promotion,
    )
    message = f"Registered model {name} created."
    if connection.vendor == "postgresql":
        created = statements.create_model(model=model, tags=checked_tags, actor=actor, message=message)
        if created is None:
            raise AlreadyExists(f"Registered Model (name={name}) already exists.", field="name")
        return created
    return _create_model_in_steps(model, checked_tags, actor, message)


@transaction.atomic
def _create_model_in_steps(
    model: RegisteredModel, tags: list[tuple[str, str]], actor: Actor, message: str
) -> RegisteredModel:
    """create_model as separate queries (databases other than PostgreSQL)."""
    name = model.name
    if RegisteredModel.objects.filter(name=name).exists():
        raise AlreadyExists(f"Registered Model (name={name}) already exists.", field="name")
    try:
        with transaction.atomic():
            model.save(force_insert=True)
    except IntegrityError:
        raise AlreadyExists(f"Registered Model (name={name}) already exists.", field="name") from None
    RegisteredModelTag.objects.bulk_create([RegisteredModelTag(model=model, key=k, value=v) for k, v in tags])
    record_event(
        model,
        VersionEvent.Kind.MODEL_CREATED,
        message,
        actor,
        audit_action="create",
        webhook_event=Webhook.Event.MODEL_CREATED,
        name=name,
    )
    return model


@transaction.atomic
def update_model(*, model: RegisteredModel, actor: Actor, **fields: object) -> RegisteredModel:
    unknown = set(fields) - MODEL_UPDATE_FIELDS
    if unknown:
        raise InvalidValue(f"Unknown field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    if "protected_aliases" in fields:
        fields["protected_aliases"] = alias_list(fields["protected_aliases"])
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    before = audit.snapshot(model, fields)
    for key, value in fields.items():
        setattr(model, key, "" if value is None and key in ("description", "owner_team") else value)
    changes = audit.diff(before, audit.snapshot(model, fields))
    if not changes:
        return model
    model.updated_at = timezone.now()
    model.save()
    record_event(
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
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.", field="new_name")
    old = model.name
    model.name = new_name
    model.updated_at = timezone.now()
    try:
        with transaction.atomic():
            model.save(update_fields=["name", "updated_at"])
    except IntegrityError:
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.", field="new_name") from None
    record_event(
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
        delete_file_on_commit(artifact)
    model.delete()


@transaction.atomic
def set_model_tag(*, model: RegisteredModel, key: object, value: object, actor: Actor) -> RegisteredModelTag:
    key, value = validate_tag(key, value)
    tag, _ = RegisteredModelTag.objects.update_or_create(model=model, key=key, defaults={"value": value})
    touch(model)
    record_event(
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
        raise InvalidValue("Missing value for required parameter 'key'.", field="key")
    deleted, _ = RegisteredModelTag.objects.filter(model=model, key=key).delete()
    if not deleted:
        raise NotFound(f"No tag with name: {key} in Registered Model {model.name}.")
    touch(model)
    record_event(
        model, VersionEvent.Kind.TAG_DELETED, f"Tag {key} deleted from {model.name}.", actor, audit_action="update"
    )
