"""Recording audit entries. Services of every app call `record` (or write the row that `entry` builds in
their own statement); nothing else writes here."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, models

from opsportal.bulk import copy_rows, fast_bulk_create

from .context import current_ip
from .models import AuditEntry

Action = AuditEntry.Action


def _plain(value: Any) -> Any:
    """A JSON-safe form of a field value."""
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The current values of `fields`, JSON-safe, to compare later with `diff`."""
    return {name: _plain(getattr(obj, name)) for name in fields}


def _blank(value: Any) -> Any:
    return None if value == "" else value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} for the fields whose value changed ("" and None count as the same)."""
    keys = list(dict.fromkeys([*before, *after]))
    return {k: [before.get(k), after.get(k)] for k in keys if _blank(before.get(k)) != _blank(after.get(k))}


def record(
    *,
    action: str,
    actor: User | AnonymousUser | None,
    obj: models.Model | None = None,
    changes: dict[str, list[Any]] | None = None,
    message: str = "",
    app_label: str | None = None,
    model: str | None = None,
    object_id: str | None = None,
    object_repr: str | None = None,
    actor_name: str | None = None,
) -> AuditEntry:
    """Append one entry. Call it inside the same transaction as the change it describes."""
    audit_entry = entry(
        action=action, actor=actor, obj=obj, changes=changes, message=message, app_label=app_label, model=model,
        object_id=object_id, object_repr=object_repr, actor_name=actor_name,
    )  # fmt: skip
    audit_entry.save(force_insert=True)
    return audit_entry


def entry(
    *,
    action: str,
    actor: User | AnonymousUser | None,
    obj: models.Model | None = None,
    changes: dict[str, list[Any]] | None = None,
    message: str = "",
    app_label: str | None = None,
    model: str | None = None,
    object_id: str | None = None,
    object_repr: str | None = None,
    actor_name: str | None = None,
) -> AuditEntry:
    """The entry `record` appends, unsaved: for a service that inserts it in the same statement as its change."""
    if obj is not None:
        app_label = app_label or obj._meta.app_label
        model = model or obj._meta.model_name
        object_id = object_id if object_id is not None else str(obj.pk)
        object_repr = object_repr if object_repr is not None else str(obj)
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEntry(
        actor=user,
        actor_name=actor_name if actor_name is not None else (user.get_username() if user else ""),
        ip=current_ip.get(),
        action=action,
        app_label=app_label or "",
        model=model or "",
        object_id=object_id or "",
        object_repr=(object_repr or "")[:200],
        changes=_plain(changes or {}),
        message=message[:300],
    )


def record_many(
    *, action: str, actor: User | AnonymousUser | None, objs: list[models.Model], changes: dict | None = None
) -> list[AuditEntry]:
    """Append the same kind of entry for many objects in one INSERT (e.g. incidents opened by a batch)."""
    user = actor if actor is not None and actor.is_authenticated else None
    ip = current_ip.get()
    plain = _plain(changes or {})
    actor_name = user.get_username() if user else ""
    entries = [
        AuditEntry(
            actor=user,
            actor_name=actor_name,
            ip=ip,
            action=action,
            app_label=obj._meta.app_label,
            model=obj._meta.model_name,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            changes=plain,
        )
        for obj in objs
    ]
    fast_bulk_create(entries)
    return entries


def append_many(
    *, action: str, actor: User | AnonymousUser | None, objs: list[models.Model], changes: dict | None = None
) -> int:
    """`record_many` for batches of thousands (e.g. incidents opened by a correlation batch): the same entries,
    written on PostgreSQL as plain COPY rows without a model instance per entry. Returns how many."""
    if not objs:
        return 0
    if connection.vendor != "postgresql":
        return len(record_many(action=action, actor=actor, objs=objs, changes=changes))
    user = actor if actor is not None and actor.is_authenticated else None
    at = AuditEntry._meta.get_field("at").get_default()
    fixed = [
        at, user.pk if user else None, user.get_username() if user else "", current_ip.get(), action,
    ]  # fmt: skip
    plain = json.dumps(_plain(changes or {}))
    columns = ["at", "actor_id", "actor_name", "ip", "action", "app_label", "model", "object_id", "object_repr"]
    copy_rows(
        AuditEntry._meta.db_table,
        [*columns, "changes", "message"],
        ([*fixed, obj._meta.app_label, obj._meta.model_name, str(obj.pk), str(obj)[:200], plain, ""] for obj in objs),
    )
    return len(objs)
