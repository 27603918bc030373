"""The MLflow-compatible registry API at /mlflow/api/2.0/mlflow/, through Django's test client.

Request fields, methods and JSON shapes are MLflow's (model_registry.proto); errors are
`{"error_code", "message"}` with MLflow's statuses. The real client is exercised in test_mlflow_client.py.
"""

from __future__ import annotations

import datetime
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mlops import services
from mlops.mlflow_api.search import SearchError, parse_filter
from mlops.models import ApprovalRequest, ModelVersion, RegisteredModel, Stage, VersionEvent
from tests.portal.factories import UserFactory, make_token

pytestmark = pytest.mark.django_db

API = "/mlflow/api/2.0/mlflow/"


class Mlflow:
    """Calls the API the way MLflow's REST store does: GET with query parameters, others with a JSON body."""

    def __init__(self, user=None, token: str | None = None) -> None:
        token = token or (make_token(user) if user is not None else None)
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}") if token else Client()

    def get(self, path: str, **params):
        return self.client.get(API + path, params)

    def post(self, path: str, body: object):
        return self.client.post(API + path, json.dumps(body), content_type="application/json")

    def patch(self, path: str, body: object):
        return self.client.patch(API + path, json.dumps(body), content_type="application/json")

    def delete(self, path: str, body: object):
        return self.client.delete(API + path, json.dumps(body), content_type="application/json")


def ms(moment: datetime.datetime) -> int:
    """Milliseconds since the epoch, exactly."""
    return (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // datetime.timedelta(milliseconds=1)


def error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == code, body
    return body["message"]


@pytest.fixture
def api(operator) -> Mlflow:
    return Mlflow(operator)


@pytest.fixture
def viewer_mlflow(viewer) -> Mlflow:
    return Mlflow(viewer)


def create(api: Mlflow, name: str, tags: dict | None = None, versions: int = 0, **extra) -> dict:
    body = {"name": name, **extra}
    if tags:
        body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    response = api.post("registered-models/create", body)
    assert response.status_code == 200, response.content
    for i in range(versions):
        add_version(api, name, source=f"s3://bucket/{name}/{i + 1}")
    return response.json()["registered_model"]


def add_version(api: Mlflow, name: str, source: str = "s3://bucket/model", **extra) -> dict:
    response = api.post("model-versions/create", {"name": name, "source": source, **extra})
    assert response.status_code == 200, response.content
    return response.json()["model_version"]


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["name"] for m in response.json().get("registered_models", [])]


# --- Registered models -------------------------------------------------------------------------------------------


def test_create_and_get_a_registered_model_in_mlflow_shape(api, operator):
    created = create(api, "churn", tags={"team": "growth"}, description="Predicts churn.")
    assert created["name"] == "churn"
    assert created["description"] == "Predicts churn."
    assert created["tags"] == [{"key": "team", "value": "growth"}]
    assert created["latest_versions"] == [] and created["aliases"] == []
    assert created["user_id"] == operator.username

    fetched = api.get("registered-models/get", name="churn").json()["registered_model"]
    model = services.get_model("churn")
    assert fetched["creation_timestamp"] == ms(model.created_at)
    assert fetched["last_updated_timestamp"] == ms(model.updated_at)
    assert fetched["tags"] == [{"key": "team", "value": "growth"}]
    # Written through the services: the model's history names the API user.
    event = VersionEvent.objects.get(model=model, kind=VersionEvent.Kind.MODEL_CREATED)
    assert event.actor == operator


def test_timestamps_are_milliseconds_since_the_epoch(api):
    create(api, "churn", versions=1)
    whole = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
    fraction = datetime.datetime(2024, 5, 1, 12, 0, 1, 999999, tzinfo=datetime.UTC)
    ModelVersion.objects.filter(model__name="churn").update(created_at=whole, updated_at=fraction)
    got = api.get("model-versions/get", name="churn", version="1").json()["model_version"]
    assert got["creation_timestamp"] == 1714564800000
    assert got["last_updated_timestamp"] == 1714564801999


def test_duplicate_and_missing_models(api):
    create(api, "churn")
    message = error(api.post("registered-models/create", {"name": "churn"}), 400, "RESOURCE_ALREADY_EXISTS")
    assert "churn" in message
    message = error(api.get("registered-models/get", name="nope"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "nope" in message
    error(api.post("registered-models/create", {"name": "a/b"}), 400, "INVALID_PARAMETER_VALUE")


def test_update_rename_and_delete_a_model(api):
    create(api, "churn", versions=1)
    create(api, "fraud")
    response = api.patch("registered-models/update", {"name": "churn", "description": "v2 docs"})
    assert response.json()["registered_model"]["description"] == "v2 docs"

    response = api.post("registered-models/rename", {"name": "churn", "new_name": "churn-xgb"})
    assert response.json()["registered_model"]["name"] == "churn-xgb"
    assert response.json()["registered_model"]["latest_versions"][0]["name"] == "churn-xgb"
    error(api.get("registered-models/get", name="churn"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(
        api.post("registered-models/rename", {"name": "churn-xgb", "new_name": "fraud"}), 400, "RESOURCE_ALREADY_EXISTS"
    )

    assert api.delete("registered-models/delete", {"name": "churn-xgb"}).json() == {}
    error(api.get("registered-models/get", name="churn-xgb"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert not ModelVersion.objects.filter(model__name="churn-xgb").exists()
    error(api.delete("registered-models/delete", {"name": "churn-xgb"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_model_tags(api):
    create(api, "churn")
    assert api.post("registered-models/set-tag", {"name": "churn", "key": "team", "value": "growth"}).json() == {}
    api.post("registered-models/set-tag", {"name": "churn", "key": "team", "value": "risk"})
    tags = api.get("registered-models/get", name="churn").json()["registered_model"]["tags"]
    assert tags == [{"key": "team", "value": "risk"}]
    assert api.delete("registered-models/delete-tag", {"name": "churn", "key": "team"}).status_code == 200
    assert api.get("registered-models/get", name="churn").json()["registered_model"]["tags"] == []
    error(api.delete("registered-models/delete-tag", {"name": "churn", "key": "team"}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.post("registered-models/set-tag", {"name": "churn", "value": "x"}), 400, "INVALID_PARAMETER_VALUE")


# --- Versions ----------------------------------------------------------------------------------------------------


def test_create_versions_from_any_source_ready_at_once(api, operator):
    create(api, "churn")
    first = add_version(
        api,
        "churn",
        source="s3://models/churn/1",
        run_id="abc123",
        run_link="http://mlflow/runs/abc123",
        description="first",
        tags=[{"key": "framework", "value": "xgboost"}],
    )
    second = add_version(api, "churn", source="runs:/abc123/model")
    third = add_version(api, "churn", source="models:/churn/1")
    assert [first["version"], second["version"], third["version"]] == ["1", "2", "3"]
    assert first["status"] == "READY"
    assert first["current_stage"] == "None"
    assert first["run_id"] == "abc123" and first["run_link"] == "http://mlflow/runs/abc123"
    assert first["tags"] == [{"key": "framework", "value": "xgboost"}]
    assert first["user_id"] == operator.username
    assert third["source"] == "models:/churn/1"

    got = api.get("model-versions/get", name="churn", version="2").json()["model_version"]
    assert got["source"] == "runs:/abc123/model" and got["version"] == "2"
    uri = api.get("model-versions/get-download-uri", name="churn", version="1").json()
    assert uri == {"artifact_uri": "s3://models/churn/1"}

    error(api.post("model-versions/create", {"name": "nope", "source": "s3://x"}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.post("model-versions/create", {"name": "churn"}), 400, "INVALID_PARAMETER_VALUE")
    error(api.get("model-versions/get", name="churn", version="9"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.get("model-versions/get", name="churn", version="x"), 400, "INVALID_PARAMETER_VALUE")


def test_update_tag_and_delete_a_version(api):
    create(api, "churn", versions=2)
    # A version number as a JSON number works too (some clients send one).
    response = api.patch("model-versions/update", {"name": "churn", "version": 1, "description": "baseline"})
    assert response.json()["model_version"]["description"] == "baseline"

    api.post("model-versions/set-tag", {"name": "churn", "version": "1", "key": "validated", "value": "yes"})
    got = api.get("model-versions/get", name="churn", version="1").json()["model_version"]
    assert got["tags"] == [{"key": "validated", "value": "yes"}]
    api.delete("model-versions/delete-tag", {"name": "churn", "version": "1", "key": "validated"})
    assert api.get("model-versions/get", name="churn", version="1").json()["model_version"]["tags"] == []
    error(
        api.delete("model-versions/delete-tag", {"name": "churn", "version": "1", "key": "validated"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )

    assert api.delete("model-versions/delete", {"name": "churn", "version": "2"}).json() == {}
    error(api.get("model-versions/get", name="churn", version="2"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_transition_with_archive_existing_versions(api):
    create(api, "churn", versions=3)
    api.post(
        "model-versions/transition-stage",
        {"name": "churn", "version": "1", "stage": "Production", "archive_existing_versions": False},
    )
    response = api.post(
        "model-versions/transition-stage",
        {"name": "churn", "version": "2", "stage": "production", "archive_existing_versions": True},
    )
    assert response.status_code == 200, response.content
    assert response.json()["model_version"]["current_stage"] == "Production"
    stages = {v.version: v.stage for v in ModelVersion.objects.filter(model__name="churn")}
    assert stages == {1: Stage.ARCHIVED, 2: Stage.PRODUCTION, 3: Stage.NONE}

    # Without archiving, two versions may share a stage.
    api.post(
        "model-versions/transition-stage",
        {"name": "churn", "version": "3", "stage": "Production", "archive_existing_versions": False},
    )
    assert ModelVersion.objects.filter(model__name="churn", stage=Stage.PRODUCTION).count() == 2

    message = error(
        api.post("model-versions/transition-stage", {"name": "churn", "version": "1", "stage": "Live"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "Live" in message
    error(
        api.post(
            "model-versions/transition-stage",
            {"name": "churn", "version": "1", "stage": "Archived", "archive_existing_versions": True},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )


def test_a_transition_that_needs_approval_is_permission_denied_naming_the_request(api, operator, admin_user):
    services.create_model(name="credit", actor=operator, approval_required=True, protected_aliases=["champion"])
    add_version(api, "credit")
    body = {"name": "credit", "version": "1", "stage": "Production", "archive_existing_versions": True}
    message = error(api.post("model-versions/transition-stage", body), 403, "PERMISSION_DENIED")
    request = ApprovalRequest.objects.get(version__model__name="credit", status=ApprovalRequest.Status.PENDING)
    assert f"approval request #{request.pk}" in message
    assert ModelVersion.objects.get(model__name="credit").stage == Stage.NONE
    # Asking again names the same request rather than opening another.
    assert f"#{request.pk}" in error(api.post("model-versions/transition-stage", body), 403, "PERMISSION_DENIED")

    message = error(
        api.post("registered-models/alias", {"name": "credit", "alias": "champion", "version": "1"}),
        403,
        "PERMISSION_DENIED",
    )
    alias_request = ApprovalRequest.objects.get(kind=ApprovalRequest.Kind.ALIAS)
    assert f"#{alias_request.pk}" in message

    services.approve(request=request, actor=admin_user)
    got = api.get("model-versions/get", name="credit", version="1").json()["model_version"]
    assert got["current_stage"] == "Production"


def test_aliases(api):
    create(api, "churn", versions=2)
    assert api.post("registered-models/alias", {"name": "churn", "alias": "champion", "version": "2"}).json() == {}
    api.post("registered-models/alias", {"name": "churn", "alias": "challenger", "version": "1"})

    by_alias = api.get("registered-models/alias", name="churn", alias="champion").json()["model_version"]
    assert by_alias["version"] == "2" and by_alias["aliases"] == ["champion"]
    model = api.get("registered-models/get", name="churn").json()["registered_model"]
    assert model["aliases"] == [{"alias": "challenger", "version": "1"}, {"alias": "champion", "version": "2"}]

    # Moving an alias.
    api.post("registered-models/alias", {"name": "churn", "alias": "champion", "version": "1"})
    assert api.get("registered-models/alias", name="churn", alias="champion").json()["model_version"]["version"] == "1"

    assert api.delete("registered-models/alias", {"name": "churn", "alias": "champion"}).json() == {}
    error(api.get("registered-models/alias", name="churn", alias="champion"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.delete("registered-models/alias", {"name": "churn", "alias": "champion"}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(
        api.post("registered-models/alias", {"name": "churn", "alias": "latest", "version": "1"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        api.post("registered-models/alias", {"name": "churn", "alias": "x", "version": "7"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_latest_versions_by_post_and_get(api):
    create(api, "churn", versions=4)
    for version, stage in (("1", "Production"), ("2", "Staging"), ("3", "Staging")):
        api.post(
            "model-versions/transition-stage",
            {"name": "churn", "version": version, "stage": stage, "archive_existing_versions": False},
        )
    everything = api.post("registered-models/get-latest-versions", {"name": "churn"}).json()["model_versions"]
    assert [(v["version"], v["current_stage"]) for v in everything] == [
        ("1", "Production"),
        ("3", "Staging"),
        ("4", "None"),
    ]
    staging = api.post("registered-models/get-latest-versions", {"name": "churn", "stages": ["staging"]})
    assert [v["version"] for v in staging.json()["model_versions"]] == ["3"]
    # GET with repeated query parameters, as the client falls back to.
    response = api.client.get(API + "registered-models/get-latest-versions?name=churn&stages=Production&stages=None")
    assert [v["version"] for v in response.json()["model_versions"]] == ["1", "4"]
    # The model's latest_versions are the same.
    model = api.get("registered-models/get", name="churn").json()["registered_model"]
    assert [v["version"] for v in model["latest_versions"]] == ["1", "3", "4"]

    error(
        api.post("registered-models/get-latest-versions", {"name": "churn", "stages": ["Live"]}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(api.post("registered-models/get-latest-versions", {"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")


# --- Search ------------------------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(api):
    create(api, "churn", tags={"team": "growth", "owner group": "ds-1"}, versions=2)
    create(api, "Churn-EU", tags={"team": "growth"})
    create(api, "fraud", tags={"team": "risk"}, versions=1)
    create(api, "prompt-summary", tags={"mlflow.prompt.is_prompt": "true", "team": "growth"})
    create(api, "pricing")
    return api


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'churn'", ["churn"]),
        ("name LIKE 'Ch%'", ["Churn-EU"]),
        ("name LIKE 'ch%'", ["churn"]),
        ("name ILIKE '%CH%'", ["churn", "Churn-EU"]),
        ("name LIKE '_raud'", ["fraud"]),
        ("name != 'churn' AND name != 'pricing'", ["Churn-EU", "fraud", "prompt-summary"]),
        ("name IN ('fraud', 'pricing')", ["fraud", "pricing"]),
        ("tags.team = 'growth'", ["churn", "Churn-EU", "prompt-summary"]),
        ("tag.team = 'growth' and name ILIKE 'churn%'", ["churn", "Churn-EU"]),
        ("tags.`owner group` = 'ds-1'", ["churn"]),
        ("tags.\"owner group\" LIKE 'ds-%'", ["churn"]),
        # A tag != matches models that have the tag with another value (MLflow's rule) ...
        ("tags.team != 'growth'", ["fraud"]),
        ("tags.team ILIKE 'RI%'", ["fraud"]),
        # ... except the prompt marker that the client appends: models without it match.
        ("tag.`mlflow.prompt.is_prompt` != 'true'", ["churn", "Churn-EU", "fraud", "pricing"]),
        ("name ILIKE 'churn%' AND tag.`mlflow.prompt.is_prompt` != 'true'", ["churn", "Churn-EU"]),
        ("tags.`mlflow.prompt.is_prompt` = 'true'", ["prompt-summary"]),
        ("", ["churn", "Churn-EU", "fraud", "pricing", "prompt-summary"]),
    ],
)
def test_search_registered_models_filters(catalogue, filter_string, expected):
    response = catalogue.get("registered-models/search", filter=filter_string)
    assert sorted(names(response), key=str.lower) == sorted(expected, key=str.lower)


def test_search_results_carry_tags_aliases_and_latest_versions(catalogue):
    catalogue.post("registered-models/alias", {"name": "churn", "alias": "champion", "version": "2"})
    found = catalogue.get("registered-models/search", filter="name = 'churn'").json()["registered_models"][0]
    assert {t["key"] for t in found["tags"]} == {"team", "owner group"}
    assert found["aliases"] == [{"alias": "champion", "version": "2"}]
    assert [(v["version"], v["aliases"]) for v in found["latest_versions"]] == [("2", ["champion"])]


@pytest.mark.parametrize(
    ("filter_string", "problem"),
    [
        ("name = ", "expected a quoted value"),
        ("name = 'churn' OR name = 'fraud'", "OR is not supported"),
        ("owner = 'x'", "Invalid attribute 'owner'"),
        ("name LIKE 5", "quotes"),
        ("tags.team > 'x'", "Invalid comparator '>'"),
        ("name = 'churn", "not closed"),
        ("name = 'a' name = 'b'", "expected AND"),
        ("params.alpha = '1'", "unknown entity type 'params'"),
        ("tags.team IN ('a')", "Invalid comparator 'IN'"),
        ("name ~ 'x'", "unexpected character '~'"),
    ],
)
def test_malformed_filters_are_invalid_parameter_values_naming_the_problem(catalogue, filter_string, problem):
    message = error(catalogue.get("registered-models/search", filter=filter_string), 400, "INVALID_PARAMETER_VALUE")
    assert problem in message


def test_order_by(catalogue):
    # (Churn-EU is left out: where it sorts beside "churn" depends on the database's collation.)
    response = catalogue.get("registered-models/search", order_by="name DESC", filter="name != 'Churn-EU'")
    assert names(response) == ["prompt-summary", "pricing", "fraud", "churn"]
    catalogue.post("registered-models/set-tag", {"name": "fraud", "key": "touched", "value": "1"})
    response = catalogue.get("registered-models/search", order_by=["last_updated_timestamp DESC"])
    assert names(response)[0] == "fraud"
    response = catalogue.get("registered-models/search", order_by=["creation_timestamp ASC"])
    assert names(response)[0] == "churn"
    message = error(catalogue.get("registered-models/search", order_by="owner"), 400, "INVALID_PARAMETER_VALUE")
    assert "owner" in message
    error(catalogue.get("registered-models/search", order_by="name SIDEWAYS"), 400, "INVALID_PARAMETER_VALUE")
    error(catalogue.get("registered-models/search", order_by=["name", "name DESC"]), 400, "INVALID_PARAMETER_VALUE")


def test_pagination_across_pages(catalogue):
    create(catalogue, "zeta")
    seen, token, pages = [], None, 0
    while True:
        params = {"max_results": 2, "order_by": "name ASC", "filter": "name != 'Churn-EU'"}
        if token:
            params["page_token"] = token
        body = catalogue.get("registered-models/search", **params).json()
        seen += [m["name"] for m in body["registered_models"]]
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    assert pages == 3
    assert seen == ["churn", "fraud", "pricing", "prompt-summary", "zeta"]

    error(catalogue.get("registered-models/search", page_token="not-a-token"), 400, "INVALID_PARAMETER_VALUE")
    for bad in ("0", "1001", "many"):
        message = error(catalogue.get("registered-models/search", max_results=bad), 400, "INVALID_PARAMETER_VALUE")
        assert "max_results" in message


def test_search_model_versions(catalogue):
    add_version(catalogue, "churn", source="runs:/r3/model", run_id="r3")
    add_version(catalogue, "pricing", source="s3://p/1", run_id="r4", tags=[{"key": "gpu", "value": "a100"}])
    catalogue.post(
        "model-versions/transition-stage",
        {"name": "churn", "version": "2", "stage": "Staging", "archive_existing_versions": False},
    )

    def found(filter_string: str, **params) -> list[tuple[str, str]]:
        response = catalogue.get("model-versions/search", filter=filter_string, **params)
        assert response.status_code == 200, response.content
        return [(v["name"], v["version"]) for v in response.json()["model_versions"]]

    assert found("name = 'churn'", order_by="version_number ASC") == [("churn", "1"), ("churn", "2"), ("churn", "3")]
    assert found("name = 'churn' AND version_number > 1", order_by="version_number DESC") == [
        ("churn", "3"),
        ("churn", "2"),
    ]
    assert found("name='churn' and version <= 1") == [("churn", "1")]
    assert sorted(found("run_id IN ('r3', 'r4')")) == [("churn", "3"), ("pricing", "1")]
    assert found("run_id = 'r4'") == [("pricing", "1")]
    assert found("source_path = 'runs:/r3/model'") == [("churn", "3")]
    assert found("source_path LIKE 's3://bucket/fraud/%'") == [("fraud", "1")]
    assert found("tags.gpu = 'a100'") == [("pricing", "1")]
    assert found("current_stage = 'staging'") == [("churn", "2")]
    assert found("name LIKE 'ch%' AND current_stage IN ('None')", order_by="version_number ASC") == [
        ("churn", "1"),
        ("churn", "3"),
    ]
    message = error(
        catalogue.get("model-versions/search", filter="version_number > 'x'"), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "whole number" in message
    error(catalogue.get("model-versions/search", filter="current_stage = 'Live'"), 400, "INVALID_PARAMETER_VALUE")

    # Default order: most recently updated first; pages of one.
    tokens, versions = None, []
    for _ in range(10):
        params = {"max_results": 1, "filter": "name = 'churn'"}
        if tokens:
            params["page_token"] = tokens
        body = catalogue.get("model-versions/search", **params).json()
        versions += [v["version"] for v in body["model_versions"]]
        tokens = body.get("next_page_token")
        if not tokens:
            break
    assert sorted(versions) == ["1", "2", "3"]
    assert versions[0] == "2"  # moved to Staging last


def test_search_query_count_does_not_grow_with_the_page(api):
    for i in range(12):
        create(api, f"model-{i:02}", tags={"team": "growth", "tier": str(i)}, versions=2)
        api.post("registered-models/alias", {"name": f"model-{i:02}", "alias": "champion", "version": "1"})
        api.post("model-versions/set-tag", {"name": f"model-{i:02}", "version": "2", "key": "k", "value": "v"})

    def count(path: str, **params) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(path, **params)
        assert response.status_code == 200, response.content
        return len(queries)

    small = count("registered-models/search", filter="tags.team = 'growth'", max_results=2)
    large = count("registered-models/search", filter="tags.team = 'growth'", max_results=12)
    assert small == large <= 9
    small = count("model-versions/search", filter="name LIKE 'model-%'", max_results=2)
    large = count("model-versions/search", filter="name LIKE 'model-%'", max_results=24)
    assert small == large <= 6


# --- Errors, authentication and roles ----------------------------------------------------------------------------


def test_request_errors_are_4xx_in_mlflow_form(api):
    client = api.client
    response = client.post(API + "registered-models/create", "{not json", content_type="application/json")
    assert "JSON" in error(response, 400, "MALFORMED_REQUEST")
    response = client.post(API + "registered-models/create", "[1, 2]", content_type="application/json")
    error(response, 400, "MALFORMED_REQUEST")
    assert "'name'" in error(api.post("registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE")
    error(api.post("registered-models/create", {"name": 5}), 400, "INVALID_PARAMETER_VALUE")
    error(api.post("registered-models/create", {"name": "x", "tags": {"a": "b"}}), 400, "INVALID_PARAMETER_VALUE")
    error(api.get("registered-models/frobnicate"), 404, "ENDPOINT_NOT_FOUND")
    error(client.get("/mlflow/api/2.0/preview/mlflow/experiments/list"), 404, "ENDPOINT_NOT_FOUND")
    response = api.get("registered-models/create", name="x")
    error(response, 405, "ENDPOINT_NOT_FOUND")
    assert response["Allow"] == "POST"


def test_no_or_bad_token_is_unauthenticated_in_mlflow_form():
    message = error(Mlflow().get("registered-models/search"), 401, "UNAUTHENTICATED")
    assert "Bearer" in message
    error(Mlflow(token="opp_wrong").get("registered-models/search"), 401, "UNAUTHENTICATED")
    error(Mlflow().get("no/such/endpoint"), 401, "UNAUTHENTICATED")
    # The rest of the API keeps the portal's own form.
    assert Client().get("/api/v1/mlops/models/").json()["code"] == "not_authenticated"


def test_viewers_read_operators_write(api, viewer_mlflow):
    create(api, "churn", versions=1)
    assert viewer_mlflow.get("registered-models/get", name="churn").status_code == 200
    assert viewer_mlflow.get("registered-models/search").status_code == 200
    assert viewer_mlflow.post("registered-models/get-latest-versions", {"name": "churn"}).status_code == 200
    message = error(viewer_mlflow.post("registered-models/create", {"name": "x"}), 403, "PERMISSION_DENIED")
    assert "operator" in message
    error(viewer_mlflow.delete("registered-models/delete", {"name": "churn"}), 403, "PERMISSION_DENIED")
    error(
        viewer_mlflow.post("model-versions/transition-stage", {"name": "churn", "version": "1", "stage": "Staging"}),
        403,
        "PERMISSION_DENIED",
    )
    nobody = Mlflow(UserFactory(username="norole", role=0))  # an account without any role
    error(nobody.get("registered-models/search"), 403, "PERMISSION_DENIED")


# --- The parser on its own ---------------------------------------------------------------------------------------


def test_parser_reads_quotes_backticks_and_escapes():
    clauses = parse_filter("tags.`a b` = 'it''s' AND name ILIKE \"x%\" and run_id NOT IN ('a', 'b')")
    assert [(c.kind, c.key, c.comparator, c.value) for c in clauses] == [
        ("tag", "a b", "=", "it's"),
        ("attribute", "name", "ILIKE", "x%"),
        ("attribute", "run_id", "NOT IN", ["a", "b"]),
    ]
    assert parse_filter("  ") == []
    with pytest.raises(SearchError, match="NOT"):
        parse_filter("name NOT 'x'")


def test_a_browser_session_reads_but_cannot_write_cross_site(operator):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    assert browser.get(API + "registered-models/search").status_code == 200
    body = json.dumps({"name": "x"})
    response = browser.post(API + "registered-models/create", body, content_type="application/json")
    assert response.status_code == 403
    assert not RegisteredModel.objects.filter(name="x").exists()
    # A token is its own proof: no CSRF token needed.
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {make_token(operator)}")
    response = api.post(API + "registered-models/create", body, content_type="application/json")
    assert response.status_code == 200


def test_the_page_postgresql_builds_is_the_page_python_builds(make_model, operator, admin_user):
    """On PostgreSQL the search page's JSON comes from one SQL statement; it must say what the Python path says."""
    from django.db import connection

    from mlops import services
    from mlops.mlflow_api.serialize import model_rows, registered_models_json, registered_models_json_text
    from mlops.models import RegisteredModel

    if connection.vendor != "postgresql":
        pytest.skip("the SQL-built page is PostgreSQL only")
    for name in ("alpha", "beta", "gamma"):
        model = make_model(name=name, versions=3, tags={"team": name, "tier": "1"})
        services.transition_stage(version=model.versions.get(version=2), stage="Production", actor=operator)
        services.set_alias(model=model, alias="champion", version=model.versions.get(version=2), actor=operator)
        services.set_version_tag(version=model.versions.get(version=3), key="note", value="new", actor=operator)
    make_model(name="empty", versions=0)
    ids = list(RegisteredModel.objects.order_by("-name").values_list("id", flat=True))
    python = registered_models_json(list(model_rows(RegisteredModel.objects.order_by("-name"))))
    assert json.loads(registered_models_json_text(ids)) == python
    assert [m["name"] for m in python] == ["gamma", "empty", "beta", "alpha"]
    assert python[0]["latest_versions"][0]["aliases"] == ["champion"]
