"""Fast multi-row UPDATE of model instances, for hot paths such as alert ingest.

Django's `bulk_update` builds one `CASE WHEN id = … THEN …` per field and row;
for 100 rows and a dozen fields that costs hundreds of milliseconds in Python.
On PostgreSQL this sends one `UPDATE … FROM unnest(array, array, …)` instead;
elsewhere (SQLite) one `executemany` of a plain UPDATE.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence

import psycopg
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
        for index, field in enumerate(columns):
            if isinstance(field, models.FloatField):  # one type per array: no ints among the floats
                arrays[index] = [None if v is None else float(v) for v in arrays[index]]
        names = [connection.ops.quote_name(field.column) for field in columns]
        assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
        unnest = ", ".join(f"%s::{cast}" for cast, _ in casts)
        sql = (
            f"UPDATE {table} AS t SET {assignments} FROM unnest({unnest}) AS v({', '.join(names)}) "  # noqa: S608
            f"WHERE t.{names[0]} = v.{names[0]}"
        )
        return binary_execute(sql, arrays)
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
    pk = meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(objs)],
        )
        for obj, (new_id,) in zip(objs, cursor.fetchall(), strict=True):
            setattr(obj, pk.attname, new_id)
    _point_at_saved_relations(objs, meta)
    fields = list(meta.concrete_fields)
    converters = [_copy_converter(field) for field in fields]
    converted = [(i, convert) for i, convert in enumerate(converters) if convert is not _as_is]
    values = operator.attrgetter(*(field.attname for field in fields))

    def rows() -> Iterable[list]:
        for obj in objs:
            row = list(values(obj)) if len(fields) > 1 else [values(obj)]
            for i, convert in converted:
                row[i] = convert(row[i])
            yield row

    copy_rows(meta.db_table, [field.column for field in fields], rows())
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def _point_at_saved_relations(objs: Sequence[models.Model], meta) -> None:
    """Foreign keys to objects saved earlier in the same batch (an event of an incident inserted just
    before): their ids, as Django's save() takes them, without its per-object walk over every field."""
    relations = [field for field in meta.concrete_fields if field.many_to_one]
    for obj in objs:
        for field in relations:
            if not field.is_cached(obj):
                continue
            related = field.get_cached_value(obj)
            if related is None:
                continue
            value = getattr(related, field.target_field.attname)
            if value is None:
                raise ValueError(f"fast_bulk_create() prohibited: unsaved related object {field.name!r}")
            if getattr(obj, field.attname) != value:
                setattr(obj, field.attname, value)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """COPY plain rows (values psycopg can write; JSON already encoded) into `table` (PostgreSQL only)."""
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {connection.ops.quote_name(table)} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _as_is(value: object) -> object:
    return value


def _copy_converter(field: models.Field) -> Callable[[object], object]:
    """How one field's Python value is written by COPY, decided once per field, not per value."""
    if isinstance(field, models.JSONField):
        return lambda value: None if value is None else json.dumps(value, cls=field.encoder)
    if isinstance(
        field,
        (
            models.CharField,
            models.TextField,
            models.IntegerField,
            models.BooleanField,
            models.DateTimeField,
            models.ForeignKey,
            models.AutoField,
            models.GenericIPAddressField,
        ),
    ):
        return _as_is
    return lambda value: field.get_db_prep_save(value, connection)


def binary_query(sql: str, params: Sequence) -> list[tuple]:
    """Run one statement with binary parameters and results (PostgreSQL only); returns its rows.

    Django's cursors bind parameters on the client, as text: a big array parameter is quoted element by
    element in Python and every returned timestamp or float parsed from text. A server-side binding
    cursor on the same connection (so inside the caller's transaction) sends arrays and reads numbers as
    bytes, several times cheaper for thousands of values. Every element of an array must have one
    Python type (no ints among floats)."""
    return _binary(sql, params)[0]


def binary_execute(sql: str, params: Sequence) -> int:
    """`binary_query` for a statement without results; returns the row count."""
    return _binary(sql, params)[1]


def _binary(sql: str, params: Sequence) -> tuple[list[tuple], int]:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount
