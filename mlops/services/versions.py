"""Model versions: look-ups (by number, alias, latest per stage), register, edit, delete, and their tags."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from opsportal.audit import services as audit

from ..models import ModelAlias, ModelVersion, ModelVersionTag, RegisteredModel, Stage, VersionEvent, Webhook
from . import statements
from .artifacts import delete_file_on_commit
from .errors import InvalidValue, NotFound
from .history import Actor, actor_user, record_event, touch
from .registered_models import get_model
from .retraining import BREACH_TAG, link_retrained_version
from .validation import clean_version_fields, validate_name, validate_tag


def get_version(model: RegisteredModel | str, version: object) -> ModelVersion:
    if isinstance(model, str):
        model = get_model(model)
    try:
        number = int(str(version).strip())
        if number < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidValue(
            f"Parameter 'version' must be a positive integer, got {version!r}.", field="version"
        ) from None
    found = ModelVersion.objects.filter(model=model, version=number).select_related("model").first()
    if found is None:
        raise NotFound(f"Model Version (name={model.name}, version={number}) not found")
    return found


def get_version_by_alias(model: RegisteredModel | str, alias: object) -> ModelVersion:
    if isinstance(model, str):
        model = get_model(model)
    if not isinstance(alias, str) or not alias:
        raise InvalidValue("Missing value for required parameter 'alias'.", field="alias")
    row = ModelAlias.objects.filter(model=model, alias=alias).select_related("version__model").first()
    if row is None:
        raise NotFound(f"Registered model alias {alias} not found.")
    return row.version


def latest_versions(model: RegisteredModel, stages: Iterable[str] | None = None) -> list[ModelVersion]:
    """The newest version in each stage (each of `stages`, or every stage that has one), as MLflow does."""
    try:
        wanted = [Stage.parse(s).value for s in stages] if stages else [s.value for s in Stage]
    except ValueError as exc:
        raise InvalidValue(str(exc), field="stages") from None
    newest = (
        ModelVersion.objects.filter(model=model, stage__in=wanted)
        .values("stage")
        .annotate(newest=Max("version"))
        .values_list("newest", flat=True)
    )
    return list(
        ModelVersion.objects.filter(model=model, version__in=list(newest)).select_related("model").order_by("version")
    )


def create_version(
    *,
    model: RegisteredModel | str,
    actor: Actor,
    source: str = "",
    tags: dict[str, str] | None = None,
    **fields: object,
) -> ModelVersion:
    """A new READY version numbered after the model's highest one (the model row lock serialises numbering);
    on PostgreSQL in one round trip with its history, audit entry and webhook deliveries (see `statements`)."""
    name = validate_name(model) if isinstance(model, str) else model.name
    cleaned = clean_version_fields({**fields, "source": source})
    checked_tags = [validate_tag(k, v) for k, v in (tags or {}).items()]
    now = timezone.now()
    version = ModelVersion(created_by=actor_user(actor), created_at=now, updated_at=now, **cleaned)
    # "Version <number> of <model> created from <source>.", split where the number goes.
    message_parts = ["Version ", f" of {name} created from {source or 'no source'}."]
    data = {"source": source, "run_id": cleaned.get("run_id", "")}
    if connection.vendor == "postgresql":
        created = statements.create_version(
            name=name, version=version, tags=checked_tags, actor=actor, message_parts=message_parts, data=data
        )
        if created is None:
            raise NotFound(f"Registered Model with name={name} not found")
    else:
        created = _create_version_in_steps(name, version, checked_tags, actor, message_parts, data)
    if any(key == BREACH_TAG for key, _ in checked_tags):  # registered by a retraining a breach asked for
        link_retrained_version(version=created, tags=dict(checked_tags))
    return created


@transaction.atomic
def _create_version_in_steps(
    name: str, version: ModelVersion, tags: list[tuple[str, str]], actor: Actor, message_parts: list[str], data: dict
) -> ModelVersion:
    """create_version as separate queries (databases other than PostgreSQL)."""
    model = RegisteredModel.objects.select_for_update().filter(name=name).first()
    if model is None:
        raise NotFound(f"Registered Model with name={name} not found")
    version.model = model
    version.version = (ModelVersion.objects.filter(model=model).aggregate(top=Max("version"))["top"] or 0) + 1
    version.save(force_insert=True)
    ModelVersionTag.objects.bulk_create([ModelVersionTag(version=version, key=k, value=v) for k, v in tags])
    # The model is marked updated at the version's time, as the one statement does.
    RegisteredModel.objects.filter(pk=model.pk).update(updated_at=version.created_at)
    model.updated_at = version.created_at
    record_event(
        model,
        VersionEvent.Kind.VERSION_CREATED,
        str(version.version).join(message_parts),
        actor,
        version=version,
        audit_action="create",
        webhook_event=Webhook.Event.VERSION_CREATED,
        **data,
    )
    return version


@transaction.atomic
def update_version(*, version: ModelVersion, actor: Actor, **fields: object) -> ModelVersion:
    cleaned = clean_version_fields(fields)
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    before = audit.snapshot(version, cleaned)
    for key, value in cleaned.items():
        setattr(version, key, value)
    changes = audit.diff(before, audit.snapshot(version, cleaned))
    if not changes:
        return version
    version.updated_at = timezone.now()
    version.save()
    touch(version.model)
    record_event(
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
        delete_file_on_commit(artifact)
    model = version.model
    version.delete()
    touch(model)


@transaction.atomic
def set_version_tag(*, version: ModelVersion, key: object, value: object, actor: Actor) -> ModelVersionTag:
    key, value = validate_tag(key, value)
    tag, _ = ModelVersionTag.objects.update_or_create(version=version, key=key, defaults={"value": value})
    touch(version.model, version)
    if key == BREACH_TAG:
        link_retrained_version(version=version, tags={key: value})
    record_event(
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
        raise InvalidValue("Missing value for required parameter 'key'.", field="key")
    deleted, _ = ModelVersionTag.objects.filter(version=version, key=key).delete()
    if not deleted:
        raise NotFound(f"No tag with name: {key} in Model Version {version.model.name} {version.version}.")
    touch(version.model, version)
    record_event(
        version.model,
        VersionEvent.Kind.TAG_DELETED,
        f"Tag {key} deleted from version {version.version}.",
        actor,
        version=version,
        audit_action="update",
    )
