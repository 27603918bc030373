"""Fast multi-row UPDATE of model instances, for hot paths such as alert ingest.

Django's `bulk_update` builds one `CASE WHEN id = … THEN …` per field and row;
for 100 rows and a dozen fields that costs hundreds of milliseconds in Python.
On PostgreSQL this sends one `UPDATE … FROM unnest(array, array, …)` instead;
elsewhere (SQLite) one `executemany` of a plain UPDATE.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection, models


def _array_type(field: models.Field) -> tuple[str, bool]:
    """(PostgreSQL array cast, whether values are JSON-encoded text) for a field."""
    if isinstance(field, models.JSONField):
        return "text[]::jsonb[]", True
    if isinstance(field, models.ForeignKey):
        return f"{field.target_field.rel_db_type(connection)}[]", False
    db_type = field.db_type(connection) or "text"
    db_type = db_type.split("(")[0].split(" CHECK")[0].strip()
    if db_type in ("varchar", "char"):
        db_type = "text"
    return f"{db_type}[]", False


def _value(field: models.Field, obj: models.Model, as_json: bool):
    value = getattr(obj, field.attname)
    if as_json:
        return None if value is None else json.dumps(value, cls=field.encoder)
    return field.get_db_prep_save(value, connection)


def fast_bulk_update(objs: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write `fields` of every object in `objs` (which must all have a primary key). Returns the row count."""
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    pk = meta.pk
    concrete = [meta.get_field(name) for name in fields]
    if connection.vendor == "postgresql":
        columns = [pk, *concrete]
        casts = [_array_type(field) for field in columns]
        arrays = [
            [_value(field, obj, as_json) for obj in objs] for field, (_, as_json) in zip(columns, casts, strict=True)
        ]
        names = [connection.ops.quote_name(field.column) for field in columns]
        assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
        unnest = ", ".join(f"%s::{cast}" for cast, _ in casts)
        sql = (
            f"UPDATE {table} AS t SET {assignments} FROM unnest({unnest}) AS v({', '.join(names)}) "  # noqa: S608
            f"WHERE t.{names[0]} = v.{names[0]}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, arrays)
            return cursor.rowcount
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in concrete)
    sql = f"UPDATE {table} SET {assignments} WHERE {connection.ops.quote_name(pk.column)} = %s"  # noqa: S608
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in concrete] + [obj.pk]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(rows)


def fast_bulk_create(objs: Sequence[models.Model]) -> None:
    """INSERT many new instances, setting their primary keys.

    On PostgreSQL: ids are drawn from the table's sequence in one query, then the
    rows travel by COPY (several times cheaper than a multi-row INSERT built by the
    ORM). Elsewhere: Django's bulk_create.
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields]
    pk = meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(objs)],
        )
        for obj, (new_id,) in zip(objs, cursor.fetchall(), strict=True):
            setattr(obj, pk.attname, new_id)
        for obj in objs:
            # Foreign keys to objects saved earlier in the same batch.
            obj._prepare_related_fields_for_save(operation_name="fast_bulk_create")
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        table = connection.ops.quote_name(meta.db_table)
        json_fields = [isinstance(f, models.JSONField) for f in fields]
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row(
                    [_copy_value(field, obj, is_json) for field, is_json in zip(fields, json_fields, strict=True)]
                )
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def _copy_value(field: models.Field, obj: models.Model, is_json: bool):
    value = getattr(obj, field.attname)
    if is_json:
        return None if value is None else json.dumps(value, cls=field.encoder)
    if field.get_internal_type() in ("BooleanField", "DateTimeField", "DateField", "GenericIPAddressField"):
        return value
    return field.get_db_prep_save(value, connection)
