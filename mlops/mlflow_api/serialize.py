"""Registry rows in MLflow's JSON shapes (`RegisteredModel`, `ModelVersion` of model_registry.proto).

A page is read as plain rows (`values()`), and its tags, aliases and latest versions in one batched
query each, so a search costs the same number of queries whatever its size and builds no model
instances (a page of 100 models carries some 2,000 related rows).
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BigIntegerField, F, Func, Lookup, Model, OuterRef, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber

from mlops.models import ModelAlias, ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelTag
from mlops.services.statements import run

MODEL_FIELDS = ("id", "name", "description", "created_by__username")
VERSION_FIELDS = (
    "id", "model_id", "version", "created_by__username", "stage", "description", "source", "run_id", "run_link",
    "status", "status_message",
)  # fmt: skip


class EpochMillis(Func):
    """A timestamp as whole milliseconds since the epoch (MLflow's unit, truncated), computed by the database.

    Parsing timestamps into datetimes is the biggest cost of a page of 100 models with their latest
    versions; the API only needs the number.
    """

    output_field = BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra) -> tuple[str, list]:
        # EXTRACT gives an exact numeric (PostgreSQL 14+).
        return self.as_sql(compiler, connection, template="FLOOR(EXTRACT(EPOCH FROM %(expressions)s) * 1000)::bigint")

    def as_sqlite(self, compiler, connection, **extra) -> tuple[str, list]:
        # Django stores "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC: whole seconds from the first 19 characters
        # (strftime would round the fraction), milliseconds from characters 21-23. ('%%%%s' becomes '%%s'
        # here and strftime's '%s' in the backend, which turns '%%' into '%'.)
        template = (
            "(CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER) * 1000"
            " + CAST(substr(%(expressions)s, 21, 3) AS INTEGER))"
        )
        return self.as_sql(compiler, connection, template=template)


class InList(Lookup):
    """`lhs IN (ids)`, sent to PostgreSQL as one array parameter (`= ANY(%s)`).

    A page of 100 models has some 400 latest versions; as 400 separate parameters the IN list costs
    more to build, quote and plan than the query takes to run.
    """

    lookup_name = "in_list"
    prepare_rhs = False

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if not self.rhs:
            return "1 = 0", []
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", [*lhs_params, *self.rhs]

    def as_postgresql(self, compiler, connection) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*lhs_params, list(self.rhs)]


TIMESTAMPS = {"creation_timestamp": EpochMillis("created_at"), "last_updated_timestamp": EpochMillis("updated_at")}


def model_rows(queryset: QuerySet[RegisteredModel]) -> QuerySet:
    """The rows registered_models_json needs (filter and order the queryset first; slice after)."""
    return queryset.values(*MODEL_FIELDS, **TIMESTAMPS)


def version_rows(queryset: QuerySet[ModelVersion]) -> QuerySet:
    """The rows model_versions_json needs (filter and order the queryset first; slice after)."""
    return queryset.values(*VERSION_FIELDS, "model__name", **TIMESTAMPS)


def _tags(tag_model: type[Model], owner: str, ids: list[int]) -> dict[int, list[dict]]:
    """Tags of many rows in one plain query (no ORM compilation or per-row converters: a page has ~1,000 tags)."""
    tags: dict[int, list[dict]] = defaultdict(list)
    table = connection.ops.quote_name(tag_model._meta.db_table)
    column = connection.ops.quote_name(owner)
    if connection.vendor == "postgresql":
        where, params = f"{column} = ANY(%s)", [ids]
    else:
        where, params = f"{column} IN ({', '.join(['%s'] * len(ids))})", ids
    with connection.cursor() as cursor:
        # Table and column names come from our models, never from the request.
        cursor.execute(f'SELECT {column}, "key", "value" FROM {table} WHERE {where} ORDER BY "key"', params)  # noqa: S608
        for owner_id, key, value in cursor.fetchall():
            tags[owner_id].append({"key": key, "value": value})
    return tags


def _version_json(row: dict, name: str, tags: list[dict], aliases: list[str]) -> dict:
    return {
        "name": name,
        "version": str(row["version"]),
        "creation_timestamp": row["creation_timestamp"],
        "last_updated_timestamp": row["last_updated_timestamp"],
        "user_id": row["created_by__username"] or "",
        "current_stage": row["stage"],
        "description": row["description"],
        "source": row["source"],
        "run_id": row["run_id"],
        "run_link": row["run_link"],
        "status": row["status"],
        "status_message": row["status_message"],
        "tags": tags,
        "aliases": aliases,
    }


def model_versions_json(rows: list[dict]) -> list[dict]:
    """MLflow ModelVersions for version_rows(), with their tags and aliases: two queries."""
    ids = [row["id"] for row in rows]
    if not ids:
        return []
    if connection.vendor == "postgresql":
        tags, aliases = _version_tags_and_aliases(ids)
        return [_version_json(row, row["model__name"], tags[row["id"]], aliases[row["id"]]) for row in rows]
    tags = _tags(ModelVersionTag, "version_id", ids)
    aliases: dict[int, list[str]] = defaultdict(list)
    rows_of_aliases = (
        ModelAlias.objects.filter(InList(F("version_id"), ids)).order_by("alias").values_list("version_id", "alias")
    )
    for version_id, alias in rows_of_aliases:
        aliases[version_id].append(alias)
    return [_version_json(row, row["model__name"], tags[row["id"]], aliases[row["id"]]) for row in rows]


def _version_tags_and_aliases(ids: list[int]) -> tuple[dict[int, list[dict]], dict[int, list[str]]]:
    """Versions' tags (by key) and aliases (by name) in one round trip (PostgreSQL)."""
    quote = connection.ops.quote_name
    tag_table = quote(ModelVersionTag._meta.db_table)
    alias_table = quote(ModelAlias._meta.db_table)
    tags: dict[int, list[dict]] = defaultdict(list)
    aliases: dict[int, list[str]] = defaultdict(list)
    with connection.cursor() as cursor:
        # Table names come from our models, never from the request.
        cursor.execute(
            f'SELECT "version_id", 0 AS kind, "key", "value" FROM {tag_table} WHERE "version_id" = ANY(%s) '  # noqa: S608
            f'UNION ALL SELECT "version_id", 1, "alias", NULL FROM {alias_table} WHERE "version_id" = ANY(%s) '
            "ORDER BY 2, 3",
            [ids, ids],
        )
        for owner_id, kind, key, value in cursor.fetchall():
            if kind == 0:
                tags[owner_id].append({"key": key, "value": value})
            else:
                aliases[owner_id].append(key)
    return tags, aliases


LATEST_NAMES = (*VERSION_FIELDS, "creation_timestamp", "last_updated_timestamp")
_compiled: dict[str, tuple[str, list]] = {}


def _latest_versions_queryset(ids: list[int]) -> QuerySet:
    newest_first = Window(RowNumber(), partition_by=[F("model_id"), F("stage")], order_by=F("version").desc())
    return (
        ModelVersion.objects.filter(InList(F("model_id"), ids))
        .annotate(rank_in_stage=newest_first)
        .filter(rank_in_stage=1)
        .order_by("model_id", "version")
        .annotate(**TIMESTAMPS)
        .values_list(*LATEST_NAMES)
    )


def _aliases_queryset(ids: list[int]) -> QuerySet:
    # The version number by primary key, not a join: a join makes the planner hash the whole version table.
    number = Subquery(ModelVersion.objects.filter(pk=OuterRef("version_id")).values("version"))
    return (
        ModelAlias.objects.filter(InList(F("model_id"), ids))
        .annotate(number=number)
        .order_by("alias")
        .values_list("model_id", "alias", "version_id", "number")
    )


def _compiled_rows(key: str, make_queryset, ids: list[int]) -> list[tuple]:
    """Rows of an id-list query; on PostgreSQL compiled once per process (see _latest_version_rows)."""
    if connection.vendor != "postgresql":
        return list(make_queryset(ids))
    if key not in _compiled:
        _compiled[key] = make_queryset([0]).query.sql_with_params()
    sql, template = _compiled[key]
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids if isinstance(param, list) else param for param in template])
        return cursor.fetchall()


# DISTINCT ON keeps the first row of each (model, stage) in this order: the newest version.
LATEST_SQL = """
SELECT DISTINCT ON (v.model_id, v.stage)
    v.id, v.model_id, v.version, u.username, v.stage, v.description, v.source, v.run_id, v.run_link, v.status,
    v.status_message, FLOOR(EXTRACT(EPOCH FROM v.created_at) * 1000)::bigint,
    FLOOR(EXTRACT(EPOCH FROM v.updated_at) * 1000)::bigint
FROM mlops_modelversion v LEFT JOIN auth_user u ON u.id = v.created_by_id
WHERE v.model_id = ANY(%s)
ORDER BY v.model_id, v.stage, v.version DESC
"""


def _latest_version_rows(ids: list[int]) -> list[dict]:
    """The newest version in each stage of each model, as plain dicts ordered by model and version.

    On PostgreSQL one DISTINCT ON statement on a plain cursor (compiling the ORM's window query took
    longer than running it); elsewhere the window query.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(LATEST_SQL, [ids])
            rows = sorted(cursor.fetchall(), key=lambda row: (row[1], row[2]))
    else:
        rows = _latest_versions_queryset(ids)
    return [dict(zip(LATEST_NAMES, row, strict=True)) for row in rows]


def epoch_millis(moment: datetime.datetime) -> int:
    """Whole milliseconds since the epoch, truncated, as EpochMillis computes them in the database."""
    return (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // datetime.timedelta(milliseconds=1)


def _tags_of(obj: RegisteredModel | ModelVersion) -> list[dict]:
    return [{"key": tag.key, "value": tag.value} for tag in obj.tags.all()]


def new_registered_model_json(model: RegisteredModel) -> dict:
    """The MLflow RegisteredModel of a model just created (no versions, no aliases yet), without reading it
    back (its tags are prefetched by `services.create_model` on PostgreSQL)."""
    return {
        "name": model.name,
        "creation_timestamp": epoch_millis(model.created_at),
        "last_updated_timestamp": epoch_millis(model.updated_at),
        "user_id": model.created_by.username if model.created_by_id else "",
        "description": model.description,
        "latest_versions": [],
        "tags": _tags_of(model),
        "aliases": [],
    }


def new_model_version_json(version: ModelVersion) -> dict:
    """The MLflow ModelVersion of a version just created (no aliases yet), without reading it back."""
    row = {
        **{name: getattr(version, name) for name in ("version", "stage", "description", "source", "run_id")},
        **{name: getattr(version, name) for name in ("run_link", "status", "status_message")},
        "creation_timestamp": epoch_millis(version.created_at),
        "last_updated_timestamp": epoch_millis(version.updated_at),
        "created_by__username": version.created_by.username if version.created_by_id else "",
    }
    return _version_json(row, version.model.name, _tags_of(version), [])


def registered_models_json(rows: list[dict]) -> list[dict]:
    """MLflow RegisteredModels for model_rows(): tags, aliases, latest versions and their tags in four queries.

    The latest versions are MLflow's: the newest version in each stage.
    """
    ids = [row["id"] for row in rows]
    if not ids:
        return []
    tags = _tags(RegisteredModelTag, "model_id", ids)
    aliases: dict[int, list[dict]] = defaultdict(list)
    version_aliases: dict[int, list[str]] = defaultdict(list)
    rows_of_aliases = _compiled_rows("aliases", _aliases_queryset, ids)
    for model_id, alias, version_id, number in rows_of_aliases:
        aliases[model_id].append({"alias": alias, "version": str(number)})
        version_aliases[version_id].append(alias)
    latest_rows = _latest_version_rows(ids)
    latest_tags = _tags(ModelVersionTag, "version_id", [row["id"] for row in latest_rows])
    names = {row["id"]: row["name"] for row in rows}
    latest: dict[int, list[dict]] = defaultdict(list)
    for row in latest_rows:
        name = names[row["model_id"]]
        latest[row["model_id"]].append(_version_json(row, name, latest_tags[row["id"]], version_aliases[row["id"]]))
    return [
        {
            "name": row["name"],
            "creation_timestamp": row["creation_timestamp"],
            "last_updated_timestamp": row["last_updated_timestamp"],
            "user_id": row["created_by__username"] or "",
            "description": row["description"],
            "latest_versions": latest[row["id"]],
            "tags": tags[row["id"]],
            "aliases": aliases[row["id"]],
        }
        for row in rows
    ]


# The whole page of registered models as MLflow JSON, built by PostgreSQL in one statement: the same
# shape as registered_models_json() (which SQLite uses), without a Python object per tag or version.
# `{chosen}` is a row of the page's ids (in order) and whether more follow (see page_ids_sql).
MODELS_JSON_SQL = """
WITH chosen AS ({chosen}), page AS (
    SELECT p.ord, m.id, m.name, m.description, m.created_at, m.updated_at, coalesce(u.username, '') AS user_id
    FROM unnest((SELECT ids FROM chosen)::bigint[]) WITH ORDINALITY AS p(id, ord)
    JOIN mlops_registeredmodel m ON m.id = p.id
    LEFT JOIN auth_user u ON u.id = m.created_by_id
), latest AS (
    SELECT DISTINCT ON (v.model_id, v.stage) v.*, coalesce(u.username, '') AS user_id
    FROM mlops_modelversion v LEFT JOIN auth_user u ON u.id = v.created_by_id
    WHERE v.model_id = ANY((SELECT ids FROM chosen)::bigint[])
    ORDER BY v.model_id, v.stage, v.version DESC
), version_tags AS (
    SELECT t.version_id, json_agg(json_build_object('key', t.key, 'value', t.value) ORDER BY t.key) AS tags
    FROM mlops_modelversiontag t WHERE t.version_id = ANY(ARRAY(SELECT id FROM latest)) GROUP BY t.version_id
), version_aliases AS (
    SELECT a.version_id, json_agg(a.alias ORDER BY a.alias) AS aliases
    FROM mlops_modelalias a WHERE a.model_id = ANY((SELECT ids FROM chosen)::bigint[]) GROUP BY a.version_id
), versions AS (
    SELECT l.model_id, json_agg(json_build_object(
        'name', page.name,
        'version', l.version::text,
        'creation_timestamp', FLOOR(EXTRACT(EPOCH FROM l.created_at) * 1000)::bigint,
        'last_updated_timestamp', FLOOR(EXTRACT(EPOCH FROM l.updated_at) * 1000)::bigint,
        'user_id', l.user_id,
        'current_stage', l.stage,
        'description', l.description,
        'source', l.source,
        'run_id', l.run_id,
        'run_link', l.run_link,
        'status', l.status,
        'status_message', l.status_message,
        'tags', coalesce(vt.tags, '[]'),
        'aliases', coalesce(va.aliases, '[]')
    ) ORDER BY l.version) AS versions
    FROM latest l JOIN page ON page.id = l.model_id
    LEFT JOIN version_tags vt ON vt.version_id = l.id
    LEFT JOIN version_aliases va ON va.version_id = l.id
    GROUP BY l.model_id
), model_tags AS (
    SELECT t.model_id, json_agg(json_build_object('key', t.key, 'value', t.value) ORDER BY t.key) AS tags
    FROM mlops_registeredmodeltag t WHERE t.model_id = ANY((SELECT ids FROM chosen)::bigint[]) GROUP BY t.model_id
), model_aliases AS (
    -- The version number by primary key: a join would make the planner hash the whole version table.
    SELECT a.model_id, json_agg(json_build_object(
        'alias', a.alias, 'version', (SELECT v.version FROM mlops_modelversion v WHERE v.id = a.version_id)::text
    ) ORDER BY a.alias) AS aliases
    FROM mlops_modelalias a
    WHERE a.model_id = ANY((SELECT ids FROM chosen)::bigint[]) GROUP BY a.model_id
)
SELECT coalesce(json_agg(json_build_object(
    'name', page.name,
    'creation_timestamp', FLOOR(EXTRACT(EPOCH FROM page.created_at) * 1000)::bigint,
    'last_updated_timestamp', FLOOR(EXTRACT(EPOCH FROM page.updated_at) * 1000)::bigint,
    'user_id', page.user_id,
    'description', page.description,
    'latest_versions', coalesce(versions.versions, '[]'),
    'tags', coalesce(model_tags.tags, '[]'),
    'aliases', coalesce(model_aliases.aliases, '[]')
) ORDER BY page.ord), '[]')::text, (SELECT more FROM chosen)
FROM page
LEFT JOIN versions ON versions.model_id = page.id
LEFT JOIN model_tags ON model_tags.model_id = page.id
LEFT JOIN model_aliases ON model_aliases.model_id = page.id
"""

# A page of model versions as MLflow JSON in one statement: the shape of model_versions_json().
VERSIONS_JSON_SQL = """
WITH chosen AS ({chosen}), page AS (
    SELECT p.ord, v.*, coalesce(u.username, '') AS user_id, m.name AS model_name
    FROM unnest((SELECT ids FROM chosen)::bigint[]) WITH ORDINALITY AS p(id, ord)
    JOIN mlops_modelversion v ON v.id = p.id
    JOIN mlops_registeredmodel m ON m.id = v.model_id
    LEFT JOIN auth_user u ON u.id = v.created_by_id
), version_tags AS (
    SELECT t.version_id, json_agg(json_build_object('key', t.key, 'value', t.value) ORDER BY t.key) AS tags
    FROM mlops_modelversiontag t WHERE t.version_id = ANY((SELECT ids FROM chosen)::bigint[]) GROUP BY t.version_id
), version_aliases AS (
    SELECT a.version_id, json_agg(a.alias ORDER BY a.alias) AS aliases
    FROM mlops_modelalias a WHERE a.version_id = ANY((SELECT ids FROM chosen)::bigint[]) GROUP BY a.version_id
)
SELECT coalesce(json_agg(json_build_object(
    'name', page.model_name,
    'version', page.version::text,
    'creation_timestamp', FLOOR(EXTRACT(EPOCH FROM page.created_at) * 1000)::bigint,
    'last_updated_timestamp', FLOOR(EXTRACT(EPOCH FROM page.updated_at) * 1000)::bigint,
    'user_id', page.user_id,
    'current_stage', page.stage,
    'description', page.description,
    'source', page.source,
    'run_id', page.run_id,
    'run_link', page.run_link,
    'status', page.status,
    'status_message', page.status_message,
    'tags', coalesce(version_tags.tags, '[]'),
    'aliases', coalesce(version_aliases.aliases, '[]')
) ORDER BY page.ord), '[]')::text, (SELECT more FROM chosen)
FROM page
LEFT JOIN version_tags ON version_tags.version_id = page.id
LEFT JOIN version_aliases ON version_aliases.version_id = page.id
"""


def _page_json(template: str, chosen: str, params: list) -> tuple[str, bool]:
    # The ids' SQL is Django's compilation of our own queryset; values are parameters. Prepared per
    # filter shape (opsportal.prepared, at most 200 per connection): planning this statement was most
    # of a small search's time.
    with connection.cursor() as cursor:
        run(cursor, [(template.replace("{chosen}", chosen), params)])
        text, more = cursor.fetchone()
    return text, bool(more)


def page_ids_sql(ids: QuerySet, size: int) -> tuple[str, list]:
    """`ids` (a sliced values_list of ids, one more than `size`) as the row the page statements start
    from: the first `size` ids in order, and whether there were more."""
    try:
        sql, params = ids.query.sql_with_params()
    except EmptyResultSet:
        return "SELECT ARRAY[]::bigint[] AS ids, false AS more", []
    chosen = "SELECT found.ids[1:%s] AS ids, coalesce(cardinality(found.ids), 0) > %s AS more FROM "
    return f"{chosen}(SELECT ARRAY({sql}) AS ids) found", [size, size, *params]


# The ids of one model by name, one version by model name and number, one by model name and alias.
MODEL_BY_NAME = 'SELECT ARRAY(SELECT id FROM mlops_registeredmodel WHERE "name" = %s::varchar) AS ids, false AS more'
VERSION_BY_NUMBER = (
    "SELECT ARRAY(SELECT v.id FROM mlops_modelversion v JOIN mlops_registeredmodel m ON m.id = v.model_id "
    'WHERE m."name" = %s::varchar AND v.version = %s::integer) AS ids, false AS more'
)
VERSION_BY_ALIAS = (
    "SELECT ARRAY(SELECT a.version_id FROM mlops_modelalias a JOIN mlops_registeredmodel m ON m.id = a.model_id "
    'WHERE m."name" = %s::varchar AND a.alias = %s::varchar) AS ids, false AS more'
)


def _one_json(template: str, chosen: str, params: list) -> str | None:
    """The JSON text of the one row `chosen` picks, or None when it picks none; one prepared statement."""
    with connection.cursor() as cursor:
        run(cursor, [(template.replace("{chosen}", chosen), params)])
        text, _more = cursor.fetchone()
    return None if text == "[]" else text[1:-1]


def registered_model_json_text(name: str) -> str | None:
    """JSON text of the MLflow RegisteredModel `name`, or None when there is none (PostgreSQL)."""
    return _one_json(MODELS_JSON_SQL, MODEL_BY_NAME, [name])


def model_version_json_text(name: str, number: int) -> str | None:
    """JSON text of the MLflow ModelVersion `number` of model `name`, or None (PostgreSQL)."""
    return _one_json(VERSIONS_JSON_SQL, VERSION_BY_NUMBER, [name, number])


def model_version_by_alias_json_text(name: str, alias: str) -> str | None:
    """JSON text of the MLflow ModelVersion that alias `alias` of model `name` points to, or None (PostgreSQL)."""
    return _one_json(VERSIONS_JSON_SQL, VERSION_BY_ALIAS, [name, alias])


def registered_models_json_text(ids: list[int]) -> str:
    """JSON text of the registered models `ids` (in this order), built by PostgreSQL in one query."""
    return _page_json(MODELS_JSON_SQL, "SELECT %s::bigint[] AS ids, false AS more", [ids])[0]


def registered_models_page_json(ids: QuerySet, size: int) -> tuple[str, bool]:
    """JSON text of a page of registered models, and whether more follow, in one round trip (PostgreSQL).

    `ids`: the search's ids, ordered and sliced to one more than `size`.
    """
    return _page_json(MODELS_JSON_SQL, *page_ids_sql(ids, size))


def model_versions_page_json(ids: QuerySet, size: int) -> tuple[str, bool]:
    """JSON text of a page of model versions, and whether more follow, in one round trip (PostgreSQL)."""
    return _page_json(VERSIONS_JSON_SQL, *page_ids_sql(ids, size))
