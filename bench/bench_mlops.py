"""MLOps figures: the MLflow-compatible registry API on a registry of 1,000 models x 10 versions.

Every model has tags (team, tier), an alias and versions in Staging/Production/Archived; every
version has tags. Searches go through gunicorn (one worker) over a socket, timed with
bench/server.py with the same run's fixed cost beside them; query counts are made in-process.
The registered-model search uses the filter the real `MlflowClient` sends (the caller's clause
plus the prompt clause it appends).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mlops.models import ModelAlias, ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelTag, Stage
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

from . import server

MODELS = 1000
VERSIONS = 10
TEAMS = 10
API = "/mlflow/api/2.0/mlflow/"
MODEL_FILTER = "tags.team = 'team-3' AND tag.`mlflow.prompt.is_prompt` != 'true'"


def load_registry(user, models: int = MODELS, prefix: str = "model", team: str = "team") -> None:
    """`models` models with VERSIONS versions each, tags on all, one alias per model: bulk inserts."""
    now = timezone.now()
    count = models
    models = RegisteredModel.objects.bulk_create(
        [
            RegisteredModel(
                name=f"{prefix}-{i:04}",
                description=f"Bench model {i}.",
                created_by=user,
                created_at=now - datetime.timedelta(days=count - i),
                updated_at=now - datetime.timedelta(minutes=i),
            )
            for i in range(count)
        ],
        batch_size=500,
    )
    RegisteredModelTag.objects.bulk_create(
        [RegisteredModelTag(model=m, key="team", value=f"{team}-{i % TEAMS}") for i, m in enumerate(models)]
        + [RegisteredModelTag(model=m, key="tier", value=str(i % 3)) for i, m in enumerate(models)],
        batch_size=2000,
    )
    # Oldest versions archived, then Production, Staging, and the newest not yet staged.
    stages = [Stage.ARCHIVED] * 6 + [Stage.PRODUCTION, Stage.STAGING, Stage.NONE, Stage.NONE]
    versions = ModelVersion.objects.bulk_create(
        [
            ModelVersion(
                model=m,
                version=n + 1,
                source=f"s3://models/{m.name}/{n + 1}",
                run_id=f"run-{i}-{n + 1}",
                stage=stages[n],
                created_by=user,
                created_at=now - datetime.timedelta(hours=VERSIONS - n),
                updated_at=now - datetime.timedelta(hours=VERSIONS - n),
            )
            for i, m in enumerate(models)
            for n in range(VERSIONS)
        ],
        batch_size=2000,
    )
    ModelVersionTag.objects.bulk_create(
        [ModelVersionTag(version=v, key="framework", value="xgboost") for v in versions]
        + [ModelVersionTag(version=v, key="validated", value="yes") for v in versions[::2]],
        batch_size=5000,
    )
    ModelAlias.objects.bulk_create(
        [ModelAlias(model_id=v.model_id, alias="champion", version=v) for v in versions if v.version == 7],
        batch_size=2000,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("registeredmodel", "registeredmodeltag", "modelversion", "modelversiontag", "modelalias"):
                cursor.execute(f"ANALYZE mlops_{table}")


def query_counts(api: Client, path: str, params: dict, sizes: tuple[int, ...]) -> dict[int, int]:
    counts = {}
    for size in sizes:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(API + path, {**params, "max_results": size})
        assert response.status_code == 200, response.content
        counts[size] = len(queries)
    return counts


def run() -> Iterator[tuple[str, dict]]:
    admin = accounts.create_user(username="bench-mlops", role=Role.ADMIN, actor=None, password="bench-password-123")
    _token, raw = accounts.create_api_token(user=admin, name="bench", actor=None)
    load_registry(admin)
    local = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    size = f"{MODELS:,} models x {VERSIONS} versions"

    params = {"filter": MODEL_FILTER, "max_results": 100}
    page = local.get(API + "registered-models/search", params).json()["registered_models"]
    assert len(page) == MODELS // TEAMS and all(len(m["latest_versions"]) == 4 for m in page)
    model_counts = query_counts(local, "registered-models/search", {"filter": MODEL_FILTER}, (10, 100))
    ordered = {"filter": MODEL_FILTER, "max_results": 50, "order_by": "last_updated_timestamp DESC"}
    second = {**ordered, "page_token": local.get(API + "registered-models/search", ordered).json()["next_page_token"]}
    versions = {"filter": "name = 'model-0420'"}
    assert len(local.get(API + "model-versions/search", versions).json()["model_versions"]) == VERSIONS
    version_counts = query_counts(local, "model-versions/search", {"filter": "name LIKE 'model-04%'"}, (10, 100))

    with server.running(workers=1) as port:
        fixed = server.fixed_cost(port, raw)
        api = server.Http(port, raw)
        yield (
            "mlflow_search_models_by_tag",
            {
                **server.case(api, API + "registered-models/search", params, fixed,
                              f"tag filter + prompt clause, 100 models with tags, aliases, latest versions; {size}; "
                              f"queries at max_results 10/100: {model_counts[10]}/{model_counts[100]}", local, 100),
                "queries_by_page_size": model_counts,
            },
        )  # fmt: skip
        yield (
            "mlflow_search_models_page_2",
            server.case(api, API + "registered-models/search", second, fixed,
                        f"same filter, order_by last_updated_timestamp DESC, second page of 50; {size}", local, 100),
        )  # fmt: skip
        yield (
            "mlflow_search_versions_by_name",
            {
                **server.case(api, API + "model-versions/search", versions, fixed,
                              f"name = '...', 10 versions with tags and aliases; {size}; "
                              f"queries at max_results 10/100: {version_counts[10]}/{version_counts[100]}", local),
                "queries_by_page_size": version_counts,
            },
        )  # fmt: skip
        api.close()
