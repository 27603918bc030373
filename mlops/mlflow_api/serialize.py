"""Registry rows in MLflow's JSON shapes (`RegisteredModel`, `ModelVersion` of model_registry.proto).

A page is read as plain rows (`values()`), and its tags, aliases and latest versions in one batched
query each, so a search costs the same number of queries whatever its size and builds no model
instances (a page of 100 models carries some 2,000 related rows).
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import BigIntegerField, F, Func, Lookup, Model, OuterRef, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber

from mlops.models import ModelAlias, ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelTag

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
    tags: dict[int, list[dict]] = defaultdict(list)
    rows = tag_model.objects.filter(InList(F(owner), ids)).order_by("key").values_list(owner, "key", "value")
    for owner_id, key, value in rows:
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
    tags = _tags(ModelVersionTag, "version_id", ids)
    aliases: dict[int, list[str]] = defaultdict(list)
    rows_of_aliases = (
        ModelAlias.objects.filter(InList(F("version_id"), ids)).order_by("alias").values_list("version_id", "alias")
    )
    for version_id, alias in rows_of_aliases:
        aliases[version_id].append(alias)
    return [_version_json(row, row["model__name"], tags[row["id"]], aliases[row["id"]]) for row in rows]


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
    # The version number by primary key, not a join: a join makes the planner hash the whole version table.
    number = Subquery(ModelVersion.objects.filter(pk=OuterRef("version_id")).values("version"))
    rows_of_aliases = (
        ModelAlias.objects.filter(InList(F("model_id"), ids))
        .annotate(number=number)
        .order_by("alias")
        .values_list("model_id", "alias", "version_id", "number")
    )
    for model_id, alias, version_id, number in rows_of_aliases:
        aliases[model_id].append({"alias": alias, "version": str(number)})
        version_aliases[version_id].append(alias)
    newest_first = Window(RowNumber(), partition_by=[F("model_id"), F("stage")], order_by=F("version").desc())
    latest_rows = list(
        ModelVersion.objects.filter(InList(F("model_id"), ids))
        .annotate(rank_in_stage=newest_first)
        .filter(rank_in_stage=1)
        .order_by("model_id", "version")
        .values(*VERSION_FIELDS, **TIMESTAMPS)
    )
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
