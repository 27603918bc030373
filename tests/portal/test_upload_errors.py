"""The upload endpoints' refusals are the bodies the OpenAPI document describes for them (400, 409)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mlops import services as mlops_services
from tests.llmops import factories as llmops_factories

pytestmark = pytest.mark.django_db

ARTIFACTS = "/api/v1/mlops/models/{model_name}/versions/{version}/artifacts/"
IMPORT = "/api/v1/llmops/datasets/{id}/import/"
SCORE = "/api/v1/llmops/runs/score/"


@pytest.fixture
def document(viewer_api) -> dict:
    return viewer_api.get("/api/schema/", {"format": "json"}).json()


def assert_documented(document: dict, path: str, response) -> dict:
    """The answer's body validates against the schema the document gives for its status on `POST path`."""
    described = document["paths"][path]["post"]["responses"]
    assert str(response.status_code) in described, (response.status_code, sorted(described))
    schema = described[str(response.status_code)]["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.Draft7Validator({"components": document["components"], "allOf": [schema]}).validate(body)
    return body


def upload(name: str, content: bytes | str) -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_a_refused_artifact_upload_answers_the_documented_error(operator_api, operator, document, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.MLOPS_MAX_ARTIFACT_BYTES = 100
    model = mlops_services.create_model(name="churn", actor=operator)
    mlops_services.create_version(model=model, source="s3://churn/1", actor=operator)
    url = "/api/v1/mlops/models/churn/versions/1/artifacts/"

    missing = assert_documented(document, ARTIFACTS, operator_api.post(url, {}, format="multipart"))
    assert missing["code"] == "invalid" and "file" in missing["errors"]
    too_big = operator_api.post(url, {"file": upload("big.bin", b"x" * 101)}, format="multipart")
    too_big = assert_documented(document, ARTIFACTS, too_big)
    assert "over the artifact limit of 100 bytes" in too_big["detail"] and "file" in too_big["errors"]
    sneaky = operator_api.post(url, {"file": upload("x", b"1"), "path": "../etc/passwd"}, format="multipart")
    assert "path" in assert_documented(document, ARTIFACTS, sneaky)["errors"]
    stored = operator_api.post(url, {"file": upload("model.pkl", b"weights")}, format="multipart")
    assert stored.status_code == 201
    again = operator_api.post(url, {"file": upload("model.pkl", b"other")}, format="multipart")
    assert assert_documented(document, ARTIFACTS, again)["code"] == "already_exists"


def test_a_refused_dataset_import_answers_the_documented_error(operator_api, operator, document):
    llmops_factories.dataset(actor=operator)
    url = "/api/v1/llmops/datasets/capitals/import/"

    missing = assert_documented(document, IMPORT, operator_api.post(url, {"preview": "true"}, format="multipart"))
    assert missing["code"] == "invalid" and "file" in missing["errors"]
    rows = '{"input": {"country": "Peru"}}\n{"input": "Chile"}\n'
    bad = operator_api.post(url, {"file": upload("more.jsonl", rows)}, format="multipart")
    bad = assert_documented(document, IMPORT, bad)
    assert bad["code"] == "invalid_file" and [error["row"] for error in bad["errors"]] == [2]


def test_a_refused_score_upload_answers_the_documented_error(operator_api, document):
    scorers = json.dumps([{"type": "equals"}])

    missing = assert_documented(document, SCORE, operator_api.post(SCORE, {"scorers": scorers}, format="multipart"))
    assert missing["code"] == "invalid" and "file" in missing["errors"]
    no_output = operator_api.post(
        SCORE, {"file": upload("a.csv", "country\nFrance\n"), "scorers": scorers}, format="multipart"
    )
    no_output = assert_documented(document, SCORE, no_output)
    assert no_output["errors"] == [{"row": 1, "message": "the header has no `output` column"}]
