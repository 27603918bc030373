"""Monitors: create, update, delete; their schema's column roles and their drift options.

A monitor belongs to a registered model and follows an alias or a stage (`Monitor.current_version`), so a
promotion moves monitoring to the new version without anyone touching the monitor. Every change writes a
line on the model's history and an audit entry in the same transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from opsportal.audit import services as audit

from ..drift import METHODS, TYPES
from ..drift.select import DRIFT_SHARE
from ..models import ModelAlias, ModelVersion, Monitor, RegisteredModel, Stage, TaskType, VersionEvent
from .errors import AlreadyExists, InvalidValue
from .history import Actor, actor_user, record_event
from .validation import validate_alias

COLUMN_ROLE_FIELDS = ("id_column", "timestamp_column", "prediction_column", "target_column", "score_column")
MONITOR_FIELDS = (
    "name",
    "description",
    "follow_alias",
    "follow_stage",
    "task",
    *COLUMN_ROLE_FIELDS,
    "batch_minutes",
    "window_hours",
    "schedule_minutes",
    "enabled",
    "options",
)
# Column types that role columns are forced to (the others keep their inferred or chosen type).
ROLE_TYPES = {"id_column": "id", "timestamp_column": "datetime"}
ROLE_NAMES = {
    "id_column": "id",
    "timestamp_column": "timestamp",
    "prediction_column": "prediction",
    "target_column": "target",
    "score_column": "score",
}
MAX_MINUTES = 7 * 24 * 60
MAX_WINDOW_HOURS = 90 * 24


def _text(value: object, field: str, *, max_length: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidValue("must be a string.", field=field)
    value = value.strip()
    if required and not value:
        raise InvalidValue("must not be empty.", field=field)
    if len(value) > max_length:
        raise InvalidValue(f"must be at most {max_length} characters.", field=field)
    return value


def _whole(value: object, field: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidValue("must be a whole number.", field=field)
    try:
        number = int(value)
    except ValueError:
        raise InvalidValue("must be a whole number.", field=field) from None
    if not 1 <= number <= maximum:
        raise InvalidValue(f"must be between 1 and {maximum:,}.", field=field)
    return number


def clean_options(options: object) -> dict[str, Any]:
    """Drift options as stored: {"method", "threshold", "drift_share", "columns": {col: {"method", "threshold"}}};
    InvalidValue naming the bad part."""
    if options in (None, ""):
        return {}
    if not isinstance(options, dict):
        raise InvalidValue("must be an object.", field="options")
    unknown = set(options) - {"method", "threshold", "drift_share", "columns", "types"}
    if unknown:
        raise InvalidValue(
            f"unknown key(s) {', '.join(sorted(unknown))}; use method, threshold, drift_share, columns, types.",
            field="options",
        )
    cleaned: dict[str, Any] = {}
    types = options.get("types") or {}
    if not isinstance(types, dict) or any(kind not in TYPES for kind in types.values()):
        raise InvalidValue(
            f"must be an object of column: type, a type one of {', '.join(TYPES)}.", field="options.types"
        )
    if types:
        cleaned["types"] = {str(name): kind for name, kind in types.items()}
    cleaned.update(_method_options(options, "options"))
    if options.get("drift_share") is not None:
        share = _number(options["drift_share"], "options.drift_share")
        if not 0 < share <= 1:
            raise InvalidValue("must be above 0 and at most 1.", field="options.drift_share")
        cleaned["drift_share"] = share
    columns = options.get("columns") or {}
    if not isinstance(columns, dict):
        raise InvalidValue("must be an object of column: {method, threshold}.", field="options.columns")
    cleaned_columns = {}
    for name, column in columns.items():
        where = f"options.columns.{name}"
        if not isinstance(column, dict):
            raise InvalidValue("must be an object with method and/or threshold.", field=where)
        extra = set(column) - {"method", "threshold"}
        if extra:
            raise InvalidValue(f"unknown key(s) {', '.join(sorted(extra))}; use method, threshold.", field=where)
        chosen = _method_options(column, where)
        if chosen:
            cleaned_columns[str(name)] = chosen
    if cleaned_columns:
        cleaned["columns"] = cleaned_columns
    return cleaned


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue("must be a number.", field=field)
    try:
        return float(value)
    except ValueError:
        raise InvalidValue("must be a number.", field=field) from None


def _method_options(data: dict, where: str) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    method = data.get("method")
    if method:
        if method not in METHODS:
            raise InvalidValue(f"unknown method {method!r}; choose from {', '.join(sorted(METHODS))}.", field=where)
        chosen["method"] = method
    if data.get("threshold") is not None:
        threshold = _number(data["threshold"], f"{where}.threshold")
        if threshold <= 0:
            raise InvalidValue("must be above 0.", field=f"{where}.threshold")
        chosen["threshold"] = threshold
    return chosen


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """The monitor fields in `fields`, validated; InvalidValue naming the first bad one."""
    unknown = set(fields) - set(MONITOR_FIELDS)
    if unknown:
        raise InvalidValue(f"cannot be changed: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "name":
            cleaned[name] = _text(value, name, max_length=100)
        elif name == "description":
            cleaned[name] = _text(value, name, max_length=10_000, required=False)
        elif name == "follow_alias":
            alias = _text(value, name, max_length=255, required=False)
            try:
                cleaned[name] = validate_alias(alias) if alias else ""
            except InvalidValue as error:
                raise InvalidValue(error.message, field=name) from None
        elif name == "follow_stage":
            if value not in Stage.values:
                raise InvalidValue(f"must be one of {', '.join(Stage.values)}.", field=name)
            cleaned[name] = value
        elif name == "task":
            if value not in TaskType.values:
                raise InvalidValue(f"must be one of {', '.join(TaskType.values)}.", field=name)
            cleaned[name] = value
        elif name in COLUMN_ROLE_FIELDS:
            cleaned[name] = _text(value, name, max_length=200, required=name != "score_column")
        elif name in ("batch_minutes", "schedule_minutes"):
            cleaned[name] = _whole(value, name, maximum=MAX_MINUTES)
        elif name == "window_hours":
            cleaned[name] = _whole(value, name, maximum=MAX_WINDOW_HOURS)
        elif name == "enabled":
            if not isinstance(value, bool):
                raise InvalidValue("must be true or false.", field=name)
            cleaned[name] = value
        elif name == "options":
            cleaned[name] = clean_options(value)
    return cleaned


def _check_roles(monitor: Monitor) -> None:
    """Two roles may not name one column (the id cannot also be the target)."""
    named: dict[str, str] = {}
    for field in COLUMN_ROLE_FIELDS:
        column = getattr(monitor, field)
        if not column:
            continue
        if column in named:
            raise InvalidValue(f"{column!r} is already the {ROLE_NAMES[named[column]]} column.", field=field)
        named[column] = field


def schema_with_roles(schema: dict[str, dict], monitor: Monitor) -> dict[str, dict]:
    """`schema` ({column: {"type", "role"}}) with the monitor's role columns marked (and typed: the id column
    as `id`, the timestamp as `datetime`); the other columns are features, prediction-like names included."""
    roles = {getattr(monitor, field): field for field in COLUMN_ROLE_FIELDS if getattr(monitor, field)}
    result = {}
    for name, column in schema.items():
        field = roles.get(name)
        kind = ROLE_TYPES.get(field, column["type"]) if field else column["type"]
        result[name] = {"type": kind, "role": ROLE_NAMES[field] if field else "feature"}
    return result


def _describe(monitor: Monitor) -> str:
    return f"monitor {monitor.name!r} (follows {monitor.follows})"


def create_monitor(
    *,
    model: RegisteredModel,
    actor: Actor,
    name: str = "production",
    description: str = "",
    follow_alias: str = "",
    follow_stage: str = Stage.PRODUCTION,
    task: str = TaskType.CLASSIFICATION,
    id_column: str = "id",
    timestamp_column: str = "timestamp",
    prediction_column: str = "prediction",
    target_column: str = "target",
    score_column: str = "",
    batch_minutes: int = 60,
    window_hours: int = 24,
    schedule_minutes: int = 60,
    enabled: bool = True,
    options: dict | None = None,
) -> Monitor:
    """A new monitor of `model`; it has no reference until one is uploaded (`upload_reference`)."""
    fields = _clean(
        {
            "name": name, "description": description, "follow_alias": follow_alias, "follow_stage": follow_stage,
            "task": task, "id_column": id_column, "timestamp_column": timestamp_column,
            "prediction_column": prediction_column, "target_column": target_column, "score_column": score_column,
            "batch_minutes": batch_minutes, "window_hours": window_hours, "schedule_minutes": schedule_minutes,
            "enabled": enabled, "options": options or {},
        }
    )  # fmt: skip
    now = timezone.now()
    monitor = Monitor(model=model, created_by=actor_user(actor), created_at=now, updated_at=now, **fields)
    _check_roles(monitor)
    with transaction.atomic():
        try:
            with transaction.atomic():
                monitor.save(force_insert=True)
        except IntegrityError:
            raise AlreadyExists(f"{model.name} already has a monitor named {monitor.name!r}.", field="name") from None
        record_event(
            model,
            VersionEvent.Kind.MODEL_UPDATED,
            f"Monitoring: {_describe(monitor)} created.",
            actor,
            audit_action=audit.Action.CREATE,
            monitor=monitor.pk,
        )
    return monitor


def update_monitor(*, monitor: Monitor, actor: Actor, **fields: Any) -> Monitor:
    """Change the monitor's settings (MONITOR_FIELDS); column roles re-mark the schema, drift options are
    checked against the reference's columns."""
    cleaned = _clean(fields)
    before = audit.snapshot(monitor, cleaned)
    for name, value in cleaned.items():
        setattr(monitor, name, value)
    _check_roles(monitor)
    if "options" in cleaned:
        check_options_columns(monitor)
    changes = audit.diff(before, audit.snapshot(monitor, cleaned))
    if not changes:
        return monitor
    if set(changes) & set(COLUMN_ROLE_FIELDS) and monitor.schema:
        monitor.schema = schema_with_roles(monitor.schema, monitor)
    monitor.updated_at = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                monitor.save()
        except IntegrityError:
            raise AlreadyExists(
                f"{monitor.model.name} already has a monitor named {monitor.name!r}.", field="name"
            ) from None
        record_event(
            monitor.model,
            VersionEvent.Kind.MODEL_UPDATED,
            f"Monitoring: {_describe(monitor)} changed: {', '.join(changes)}.",
            actor,
            audit_action=audit.Action.UPDATE,
            changes=changes,
            monitor=monitor.pk,
        )
    return monitor


def check_options_columns(monitor: Monitor) -> None:
    """InvalidValue naming a column of the drift options that the schema does not have or does not compare."""
    columns = (monitor.options or {}).get("columns") or {}
    if not columns or not monitor.schema:
        return
    for name in columns:
        column = monitor.schema.get(name)
        if column is None:
            raise InvalidValue(f"the schema has no column {name!r}.", field=f"options.columns.{name}")
        if column["type"] not in ("numerical", "categorical", "boolean"):
            raise InvalidValue(
                f"{name!r} is a {column['type']} column: drift is compared for numerical, categorical and "
                "boolean columns.",
                field=f"options.columns.{name}",
            )


def drift_share_of(monitor: Monitor) -> float:
    """The share of drifted columns at which the monitor calls the dataset drifted."""
    return float((monitor.options or {}).get("drift_share") or DRIFT_SHARE)


def delete_monitor(*, monitor: Monitor, actor: Actor) -> None:
    """Delete the monitor with its references, batches, checks and breaches (their files once committed)."""
    model = monitor.model
    files = [(ref.file.storage, ref.file.name) for ref in monitor.references.all() if ref.file]
    files += [(batch.file.storage, batch.file.name) for batch in monitor.batches.exclude(file="").only("file")]
    description = _describe(monitor)
    with transaction.atomic():
        record_event(
            model,
            VersionEvent.Kind.MODEL_UPDATED,
            f"Monitoring: {description} deleted.",
            actor,
            audit_action=audit.Action.DELETE,
            changes={"monitor": [monitor.name, None]},
            monitor=monitor.pk,
        )
        monitor.delete()
        for storage, name in files:
            transaction.on_commit(lambda storage=storage, name=name: storage.delete(name))


def current_versions(monitors: list[Monitor]) -> dict[int, int | None]:
    """The version number each monitor follows now (as `Monitor.current_version`), in two queries for any
    number of monitors (for lists)."""
    model_ids = {m.model_id for m in monitors}
    aliases = {m.follow_alias for m in monitors if m.follow_alias}
    stages = {m.follow_stage for m in monitors if not m.follow_alias}
    by_alias = {}
    if aliases:
        by_alias = {
            (model_id, alias): number
            for model_id, alias, number in ModelAlias.objects.filter(
                model_id__in=model_ids, alias__in=aliases
            ).values_list("model_id", "alias", "version__version")
        }
    by_stage = {}
    if stages:
        by_stage = {
            (row["model_id"], row["stage"]): row["newest"]
            for row in ModelVersion.objects.filter(model_id__in=model_ids, stage__in=stages)
            .values("model_id", "stage")
            .annotate(newest=Max("version"))
        }
    return {
        m.pk: by_alias.get((m.model_id, m.follow_alias))
        if m.follow_alias
        else by_stage.get((m.model_id, m.follow_stage))
        for m in monitors
    }
