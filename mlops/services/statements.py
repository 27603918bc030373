"""Registering a model or a version on PostgreSQL in one round trip, without BEGIN or COMMIT.

Each registration writes the row itself, its tags, the model's history line (`VersionEvent`), the audit
entry and an outbox row per interested webhook. Written one by one, with the lock, the version number
and the answer's read, that was a dozen round trips; here it is one `WITH ... INSERT` statement whose
steps hand each other ids (and, for a version, its number). Sent in autocommit mode it is its own
transaction; inside a caller's transaction it is part of that one.

A version's number is read under the model's row lock. The request is two statements sent together
(the simple query protocol runs them as one implicit transaction): the `UPDATE` of the model's
`updated_at`, which takes the lock, then the inserts. Under READ COMMITTED each statement reads its own
snapshot, so the second sees every version committed by whoever held the lock before: two concurrent
registrations never get the same number. (A subquery of the locking statement itself would read the
snapshot taken before the wait.)

Rows are built from unsaved model instances (`insert_step`), so every column gets the value Django would
save; only what the statement itself produces (ids, the number, texts that contain it) is SQL. On a
persistent connection the statements are prepared once (`run`, opsportal.prepared): parsing and
planning them was a third of their time. `mlops.services.registered_models` and `.versions` use this
module on PostgreSQL and their step-by-step ORM path elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model

from opsportal import prepared
from opsportal.audit import services as audit
from opsportal.enqueue import enqueue_on_commit

from .. import webhooks
from ..models import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
    VersionEvent,
    Webhook,
    WebhookDelivery,
)
from .history import Actor, actor_name, actor_user

Sql = tuple[str, list]


@cache
def columns(model: type[Model]) -> tuple[tuple[Field, str, str], ...]:
    """(field, quoted column, parameter cast) of each column an INSERT writes (not the auto primary key).

    The cast is the column's type without a length (an explicit cast to varchar(n) would cut a long
    value instead of refusing it).
    """
    return tuple(
        (field, connection.ops.quote_name(field.column), re.sub(r"\(\d+\)$", "", field.db_type(connection)))
        for field in model._meta.concrete_fields
        if not (field.primary_key and field.db_returning)
    )


def insert_step(obj: Model, source: str, sql_values: dict[str, str | Sql] | None = None, suffix: str = "") -> Sql:
    """`INSERT INTO <obj's table> (<its columns>) SELECT <values> FROM <source> <suffix>`.

    Every column gets the value Django would save for `obj`, except those in `sql_values` ({column: SQL
    expression over `source`, or (expression, its parameters)}). `source` may be empty.
    """
    sql_values = sql_values or {}
    db = connections[DEFAULT_DB_ALIAS]
    names, values, params = [], [], []
    for field, column, cast in columns(type(obj)):
        names.append(column)
        given = sql_values.get(field.column)
        if given is None:
            values.append(f"%s::{cast}")
            params.append(field.get_db_prep_save(field.pre_save(obj, add=True), db))
        else:
            expression, expression_params = (given, []) if isinstance(given, str) else given
            values.append(expression)
            params.extend(expression_params)
    table = db.ops.quote_name(obj._meta.db_table)
    source = f" FROM {source}" if source else ""
    return f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)}{source} {suffix}", params


def tags_step(tag_model: type[Model], owner: str, source: str, tags: list[tuple[str, str]]) -> Sql:
    """Insert `tags` for the row `source` gives (`owner`: the tags' foreign key column), returning them."""
    table = connection.ops.quote_name(tag_model._meta.db_table)
    return (
        f'INSERT INTO {table} ("{owner}", "key", "value") SELECT {source}.id, tag.key, tag.value '  # noqa: S608
        f'FROM {source}, unnest(%s::text[], %s::text[]) AS tag(key, value) RETURNING id, "{owner}", key, value',
        [[k for k, _ in tags], [v for _, v in tags]],
    )


def deliveries_step(event: str, model_id: str, source: str, payload: dict, payload_sql: Sql | None = None) -> Sql:
    """One `WebhookDelivery` per enabled webhook that wants `event` for the model `model_id` (SQL), in
    name order, as `webhooks.queue` writes them; returns their ids.

    The rule is `Webhook.wants`: enabled, every event (an empty list) or this one, every model or this
    one. `payload_sql` stands for the document when part of it is only known to the statement.
    """
    delivery = WebhookDelivery(event=event, payload=payload, webhook_id=0, target="")
    sql, params = insert_step(
        delivery,
        f"{source}, mlops_webhook hook",
        {
            "webhook_id": "hook.id",
            "target": "hook.url",
            "delivery_id": "gen_random_uuid()",
            **({"payload": payload_sql} if payload_sql else {}),
        },
        f"WHERE hook.enabled AND (hook.model_id IS NULL OR hook.model_id = {model_id}) "
        "AND (hook.events = '[]'::jsonb OR hook.events @> jsonb_build_array(%s::text)) "
        "ORDER BY hook.name, hook.id RETURNING id",
    )
    return sql, [*params, event]


def with_statement(steps: list[tuple[str, Sql]], final: str) -> Sql:
    """`WITH name AS (step), ... final` as one statement."""
    sql = ",\n".join(f"{name} AS ({step})" for name, (step, _) in steps)
    return f"WITH {sql}\n{final}", [param for _, (_, step_params) in steps for param in step_params]


def with_tags(
    steps: list[tuple[str, Sql]], final: str, tag_model: type[Model], owner: str, source: str, tags: list
) -> str:
    """Add the tags' insert to `steps`; `final` with `{tags}` replaced by their rows (id, owner id, key,
    value as text, in the database's key order), or by an empty array."""
    if not tags:
        return final.format(tags="ARRAY[]::text[][]")
    steps.append(("t", tags_step(tag_model, owner, source, tags)))
    rows = f'ARRAY(SELECT ARRAY[id::text, "{owner}"::text, key, value] FROM t ORDER BY key)'  # noqa: S608
    return final.format(tags=rows)


# --- Sending ---------------------------------------------------------------------------------------------------------


def run(cursor, statements: list[Sql]) -> None:
    """Send `statements` in one round trip (one implicit transaction outside a caller's); read their
    results with fetchone() and nextset(). Prepared once per connection (opsportal.prepared)."""
    prepared.execute(cursor, statements)


# --- The registrations -----------------------------------------------------------------------------------------------


def enqueue_deliveries(ids: Iterable[int]) -> None:
    for pk in sorted(ids):
        enqueue_on_commit(webhooks.DELIVERIES.task, pk)


def prefetched(obj: Model, name: str, rows: list[Model]) -> None:
    """Leave `rows` as `obj.<name>.all()`, as prefetch_related would: they were just written."""
    queryset = getattr(obj, name).all()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    obj._prefetched_objects_cache = {**getattr(obj, "_prefetched_objects_cache", {}), name: queryset}


def tag_instances(tag_model: type[Model], owner: str, owner_obj: Model, rows: list[list[str]]) -> list[Model]:
    """Tag instances from the statement's `ARRAY[id, owner id, key, value]` rows (already in key order)."""
    return [tag_model(id=int(pk), key=key, value=value, **{owner: owner_obj}) for pk, _owner, key, value in rows]


def create_model(
    *, model: RegisteredModel, tags: list[tuple[str, str]], actor: Actor, message: str
) -> RegisteredModel | None:
    """Insert the unsaved `model` with its tags, history, audit entry and webhook deliveries; None when
    its name is taken (nothing is written then)."""
    data = {"name": model.name}
    event = VersionEvent(
        kind=VersionEvent.Kind.MODEL_CREATED, message=message[:500], data=audit._plain(data),
        actor=actor_user(actor), actor_name=actor_name(actor), created_at=model.created_at,
    )  # fmt: skip
    entry = audit.entry(
        action="create", actor=actor, app_label="mlops", model="registeredmodel", object_repr=str(model),
        message=message,
    )  # fmt: skip
    entry.at = model.created_at
    payload = audit._plain(webhooks.document(Webhook.Event.MODEL_CREATED, model, None, actor, data))
    steps = [
        ("m", insert_step(model, "", suffix='ON CONFLICT ("name") DO NOTHING RETURNING id')),
        ("e", insert_step(event, "m", {"model_id": "m.id"})),
        ("a", insert_step(entry, "m", {"object_id": "m.id::text"})),
        ("w", deliveries_step(Webhook.Event.MODEL_CREATED, "m.id", "m", payload)),
    ]
    final = with_tags(
        steps, "SELECT m.id, ARRAY(SELECT id FROM w), {tags} FROM m", RegisteredModelTag, "model_id", "m", tags
    )
    with connection.cursor() as cursor:
        run(cursor, [with_statement(steps, final)])
        row = cursor.fetchone()
    if row is None:
        return None
    model.pk, delivery_ids, tag_rows = row
    model._state.adding = False
    prefetched(model, "tags", tag_instances(RegisteredModelTag, "model", model, tag_rows))
    enqueue_deliveries(delivery_ids)
    return model


def url_parts(url: str) -> list[str]:
    """A version page's URL made for version 0, split where the number goes."""
    head, _, tail = url.rpartition("/0/")
    return [head + "/", "/" + tail]


MODEL_FIELDS = [field.attname for field in RegisteredModel._meta.concrete_fields]
MODEL_COLUMNS = ", ".join(connection.ops.quote_name(field.column) for field in RegisteredModel._meta.concrete_fields)
LOCK_SQL = (
    'UPDATE mlops_registeredmodel SET "updated_at" = %s::timestamptz WHERE "name" = %s::varchar '  # noqa: S608
    f"RETURNING {MODEL_COLUMNS}"
)
NUMBER_SQL = (
    "SELECT m.id, m.name, coalesce((SELECT max(version) FROM mlops_modelversion WHERE model_id = m.id), 0) + 1 "
    'AS number FROM mlops_registeredmodel m WHERE m."name" = %s::varchar'
)


def create_version(
    *,
    name: str,
    version: ModelVersion,
    tags: list[tuple[str, str]],
    actor: Actor,
    message_parts: list[str],
    data: dict,
) -> ModelVersion | None:
    """Lock model `name`, mark it updated, and insert the unsaved `version` numbered after the model's
    highest, with its tags, history, audit entry and webhook deliveries; None when there is no such model.

    `message_parts` is the history message split where the number goes.
    """
    now = version.created_at
    number = "n.number::text"
    event = VersionEvent(
        kind=VersionEvent.Kind.VERSION_CREATED, data=audit._plain(data), actor=actor_user(actor),
        actor_name=actor_name(actor), created_at=now,
    )  # fmt: skip
    entry = audit.entry(action="create", actor=actor, app_label="mlops", model="modelversion")
    entry.at = now
    # The document as webhooks.queue builds it; its version number and URL are the statement's.
    version.model, version.version = RegisteredModel(name=name), 0
    payload = audit._plain(webhooks.document(Webhook.Event.VERSION_CREATED, version.model, version, actor, data))
    payload_sql = (
        f"jsonb_set(jsonb_set(%s::jsonb, '{{version,version}}', to_jsonb({number})), "
        f"'{{version,url}}', to_jsonb(array_to_string(%s::text[], {number})))",
        [json_value(payload), url_parts(payload["version"]["url"])],
    )
    steps = [
        ("n", (NUMBER_SQL, [name])),
        ("v", insert_step(version, "n", {"model_id": "n.id", "version": "n.number"}, "RETURNING id")),
        ("e", insert_step(event, "v, n", {
            "model_id": "n.id", "version_id": "v.id",
            "message": (f"left(array_to_string(%s::text[], {number}), 500)", [message_parts]),
        })),
        ("a", insert_step(entry, "v, n", {
            "object_id": "v.id::text", "object_repr": f"left(n.name || ' v' || {number}, 200)",
            "message": (f"left(array_to_string(%s::text[], {number}), 300)", [message_parts]),
        })),
        ("w", deliveries_step(Webhook.Event.VERSION_CREATED, "n.id", "v, n", payload, payload_sql)),
    ]  # fmt: skip
    final = "SELECT v.id, n.number, ARRAY(SELECT id FROM w), {tags} FROM v, n"
    final = with_tags(steps, final, ModelVersionTag, "version_id", "v", tags)
    with connection.cursor() as cursor:
        # The lock, then the inserts with a snapshot taken after it: two statements, one round trip.
        run(cursor, [(LOCK_SQL, [now, name]), with_statement(steps, final)])
        model_row = cursor.fetchone()
        cursor.nextset()
        row = cursor.fetchone()
    if model_row is None or row is None:
        return None
    version.model = RegisteredModel.from_db(connection.alias, MODEL_FIELDS, model_row)
    version.pk, version.version, delivery_ids, tag_rows = row
    version._state.adding = False
    prefetched(version, "tags", tag_instances(ModelVersionTag, "version", version, tag_rows))
    enqueue_deliveries(delivery_ids)
    return version


def json_value(value: dict) -> object:
    """`value` as a JSON parameter, adapted as Django adapts a JSONField's."""
    return WebhookDelivery._meta.get_field("payload").get_db_prep_save(value, connection)
