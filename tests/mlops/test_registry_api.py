"""The model registry through the native API (/api/v1/mlops/), as a data scientist's scripts would use it."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mlops import services
from mlops.models import ApprovalRequest, ModelVersion, RegisteredModel, VersionEvent
from opsportal.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/mlops/models/"


def versions_url(name: str) -> str:
    return f"{MODELS}{name}/versions/"


def stages(name: str) -> dict[int, str]:
    return dict(ModelVersion.objects.filter(model__name=name).values_list("version", "stage"))


def test_register_a_model_and_versions_numbered_per_model(operator_api):
    response = operator_api.post(
        MODELS,
        {"name": "fraud-detector", "description": "# Fraud", "owner_team": "risk", "tags": {"domain": "payments"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == {"domain": "payments"} and response.json()["owner_team"] == "risk"
    numbers = []
    for source in ("s3://bucket/fraud/1", "runs:/abc123/model", "models:/fraud-detector/1"):
        created = operator_api.post(
            versions_url("fraud-detector"),
            {"source": source, "metrics": {"auc": 0.91}, "params": {"depth": 6}, "dataset": "s3://data/train.parquet",
             "code_version": "9f1c2e7", "model_card": "## Intended use\nScoring card payments."},
            format="json",
        )  # fmt: skip
        assert created.status_code == 201, created.content
        body = created.json()
        numbers.append(body["version"])
        assert body["status"] == "READY" and body["stage"] == "None" and body["params"] == {"depth": "6"}
    assert numbers == [1, 2, 3]
    other = operator_api.post(MODELS, {"name": "other"}, format="json")
    assert other.status_code == 201
    assert operator_api.post(versions_url("other"), {"source": "s3://x"}, format="json").json()["version"] == 1


def test_duplicate_and_invalid_names_are_refused_with_the_reason(operator_api):
    assert operator_api.post(MODELS, {"name": "churn"}, format="json").status_code == 201
    duplicate = operator_api.post(MODELS, {"name": "churn"}, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "Registered Model (name=churn) already exists.", "code": "already_exists"}
    bad = operator_api.post(MODELS, {"name": "a/b"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert bad.json()["errors"] == {"name": [bad.json()["detail"].removeprefix("name: ")]}
    assert bad.json()["detail"].startswith("name: Invalid value 'a/b' for parameter 'name'")
    metrics = operator_api.post(versions_url("churn"), {"metrics": {"auc": "high"}}, format="json")
    assert metrics.status_code == 400 and "metrics.auc" in metrics.json()["errors"]
    assert ModelVersion.objects.count() == 0
    assert operator_api.get(f"{MODELS}nope/").status_code == 404
    assert operator_api.get(f"{versions_url('churn')}7/").status_code == 404


def test_viewers_read_operators_write_admins_delete(viewer_api, operator_api, admin_api, churn):
    assert viewer_api.get(MODELS).status_code == 200
    assert viewer_api.post(MODELS, {"name": "x"}, format="json").status_code == 403
    assert operator_api.delete(f"{MODELS}churn/").status_code == 403
    policy = operator_api.patch(f"{MODELS}churn/", {"approval_required": True}, format="json")
    assert policy.status_code == 403
    assert admin_api.patch(f"{MODELS}churn/", {"approval_required": True}, format="json").status_code == 200
    assert admin_api.delete(f"{MODELS}churn/").status_code == 204
    assert not RegisteredModel.objects.exists()


def test_search_by_name_tag_and_stage_with_constant_queries(operator_api, operator, make_model,
                                                           django_assert_max_num_queries):  # fmt: skip
    for i in range(12):
        model = make_model(name=f"model-{i:02d}", versions=3, tags={"team": "growth" if i % 2 else "risk"})
        if i % 3 == 0:
            services.transition_stage(version=model.versions.get(version=2), stage="Production", actor=operator)
    with django_assert_max_num_queries(8):
        page = operator_api.get(MODELS, {"tag": "team=growth", "page_size": 50})
    names = [m["name"] for m in page.json()["results"]]
    assert names == [f"model-{i:02d}" for i in range(12) if i % 2]
    production = operator_api.get(MODELS, {"stage": "Production"}).json()["results"]
    assert [m["name"] for m in production] == ["model-00", "model-03", "model-06", "model-09"]
    assert production[0]["latest_versions"] == [{"stage": "Production", "version": 2}, {"stage": "None", "version": 3}]
    assert [m["name"] for m in operator_api.get(MODELS, {"q": "DEL-1"}).json()["results"]][:2] == [
        "model-10",
        "model-11",
    ]
    newest_first = operator_api.get(MODELS, {"ordering": "-updated_at"}).json()["results"]
    assert [m["name"] for m in newest_first][:2] == ["model-11", "model-10"]  # the last ones registered
    services.set_model_tag(model=RegisteredModel.objects.get(name="model-04"), key="x", value="y", actor=operator)
    newest_first = operator_api.get(MODELS, {"ordering": "-updated_at"}).json()["results"]
    assert [m["name"] for m in newest_first][:2] == ["model-04", "model-11"]  # a tag set is an update


def test_transition_with_archive_existing_and_history(operator_api, churn):
    url = versions_url("churn")
    assert operator_api.post(f"{url}1/transition/", {"stage": "production"}, format="json").json()["stage"] == (
        "Production"
    )
    moved = operator_api.post(f"{url}2/transition/", {"stage": "Production", "archive_existing": True}, format="json")
    assert moved.status_code == 200
    assert stages("churn") == {1: "Archived", 2: "Production"}
    bad = operator_api.post(f"{url}2/transition/", {"stage": "Live"}, format="json")
    assert bad.status_code == 400 and "stage" in bad.json()["errors"]
    history = operator_api.get(f"{url}1/history/").json()["results"]
    assert [e["message"] for e in history][:2] == [
        "Version 1 archived: version 2 moved to Production.",
        "Moved to Production from None.",
    ]
    assert AuditEntry.objects.filter(app_label="mlops", action="transition").count() == 3


def test_production_on_a_model_with_a_policy_waits_for_an_admin(operator_api, admin_api, make_model):
    make_model(name="credit", versions=2, approval_required=True)
    url = versions_url("credit")
    assert operator_api.post(f"{url}1/transition/", {"stage": "Staging"}, format="json").status_code == 200
    pending = operator_api.post(f"{url}1/transition/", {"stage": "Production"}, format="json")
    assert pending.status_code == 202
    request_id = pending.json()["approval_request"]["id"]
    assert f"approval request #{request_id}" in pending.json()["detail"]
    assert stages("credit")[1] == "Staging"
    # Asking again does not pile up requests.
    again = operator_api.post(f"{url}1/transition/", {"stage": "Production"}, format="json")
    assert again.json()["approval_request"]["id"] == request_id
    assert operator_api.post(f"/api/v1/mlops/approvals/{request_id}/approve/").status_code == 403
    approved = admin_api.post(f"/api/v1/mlops/approvals/{request_id}/approve/", {"comment": "AUC ok"}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert stages("credit")[1] == "Production"
    twice = admin_api.post(f"/api/v1/mlops/approvals/{request_id}/approve/")
    assert twice.status_code == 400


def test_rejecting_needs_a_comment_and_changes_nothing(operator_api, admin_api, make_model):
    make_model(name="credit", versions=1, approval_required=True)
    request_id = operator_api.post(
        f"{versions_url('credit')}1/transition/", {"stage": "Production"}, format="json"
    ).json()["approval_request"]["id"]
    assert admin_api.post(f"/api/v1/mlops/approvals/{request_id}/reject/").status_code == 400
    rejected = admin_api.post(
        f"/api/v1/mlops/approvals/{request_id}/reject/", {"comment": "needs fairness review"}, format="json"
    )
    assert rejected.json()["status"] == "rejected" and stages("credit") == {1: "None"}
    assert VersionEvent.objects.filter(kind="rejected", message__contains="needs fairness review").exists()


def test_rollback_is_one_action(admin_api, operator, make_model):
    model = make_model(name="ranker", versions=3)
    for number in (1, 2):
        services.transition_stage(version=model.versions.get(version=number), stage="Production", actor=operator,
                                  archive_existing=True)  # fmt: skip
    assert stages("ranker") == {1: "Archived", 2: "Production", 3: "None"}
    response = admin_api.post(f"{MODELS}ranker/rollback/", {"version": 1}, format="json")
    assert response.status_code == 200 and response.json()["stage"] == "Production"
    assert stages("ranker") == {1: "Production", 2: "Archived", 3: "None"}
    assert VersionEvent.objects.filter(message="Rolled back to Production from Archived.").exists()
    assert admin_api.post(f"{MODELS}ranker/rollback/", {"version": 1}, format="json").status_code == 400


def test_aliases_unique_per_model_and_protected_aliases(operator_api, admin_api, make_model):
    make_model(name="ranker", versions=2, protected_aliases=["champion"])
    assert operator_api.post(f"{MODELS}ranker/aliases/", {"alias": "candidate", "version": 1}, format="json").json()[
        "aliases"
    ] == {"candidate": 1}
    moved = operator_api.post(f"{MODELS}ranker/aliases/", {"alias": "candidate", "version": 2}, format="json")
    assert moved.json()["aliases"] == {"candidate": 2}
    protected = operator_api.post(f"{MODELS}ranker/aliases/", {"alias": "champion", "version": 2}, format="json")
    assert protected.status_code == 202
    admin_api.post(f"/api/v1/mlops/approvals/{protected.json()['approval_request']['id']}/approve/")
    assert operator_api.get(f"{MODELS}ranker/").json()["aliases"] == {"candidate": 2, "champion": 2}
    assert operator_api.post(f"{MODELS}ranker/aliases/", {"alias": "v2", "version": 1}, format="json").status_code == (
        400
    )
    assert operator_api.delete(f"{MODELS}ranker/aliases/candidate/").status_code == 204
    assert operator_api.delete(f"{MODELS}ranker/aliases/candidate/").status_code == 404


def test_tags_on_models_and_versions(operator_api, churn):
    assert operator_api.post(f"{MODELS}churn/tags/", {"key": "task", "value": "classification"}, format="json").json()[
        "tags"
    ] == {"task": "classification"}
    assert operator_api.delete(f"{MODELS}churn/tags/task/").status_code == 204
    version = operator_api.post(f"{versions_url('churn')}1/tags/", {"key": "validated", "value": "yes"}, format="json")
    assert version.json()["tags"] == {"validated": "yes"}
    assert operator_api.delete(f"{versions_url('churn')}1/tags/nope/").status_code == 404


def test_artifacts_upload_with_checksum_download_and_size_limit(operator_api, viewer_api, churn, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.MLOPS_MAX_ARTIFACT_BYTES = 1000
    content = b"\x80\x04weights" * 20
    url = f"{versions_url('churn')}1/artifacts/"
    uploaded = operator_api.post(url, {"file": SimpleUploadedFile("model.pkl", content)}, format="multipart")
    assert uploaded.status_code == 201, uploaded.content
    assert uploaded.json()["sha256"] == hashlib.sha256(content).hexdigest() and uploaded.json()["size"] == len(content)
    download = viewer_api.get(uploaded.json()["download_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == content
    assert 'filename="model.pkl"' in download["Content-Disposition"]
    too_big = operator_api.post(url, {"file": SimpleUploadedFile("big.bin", b"x" * 1001)}, format="multipart")
    assert too_big.status_code == 400 and "over the artifact limit of 1,000 bytes" in str(too_big.json())
    again = operator_api.post(url, {"file": SimpleUploadedFile("model.pkl", b"other")}, format="multipart")
    assert again.status_code == 409
    sneaky = {"file": SimpleUploadedFile("x", b"1"), "path": "../etc/passwd"}
    sneaky = operator_api.post(url, sneaky, format="multipart")
    assert sneaky.status_code == 400
    assert [a["path"] for a in operator_api.get(url).json()] == ["model.pkl"]


def test_version_numbering_survives_deletes_and_version_edits_are_audited(operator_api, admin_api, churn):
    assert admin_api.delete(f"{versions_url('churn')}2/").status_code == 204
    assert operator_api.post(versions_url("churn"), {"source": "s3://x"}, format="json").json()["version"] == 2
    edited = operator_api.patch(
        f"{versions_url('churn')}1/", {"description": "Baseline", "metrics": {"auc": 0.9}}, format="json"
    )
    assert edited.json()["description"] == "Baseline" and edited.json()["metrics"] == {"auc": 0.9}
    entry = AuditEntry.objects.filter(app_label="mlops", model="modelversion", action="update").latest("at")
    assert entry.changes["description"] == ["", "Baseline"]


def test_openapi_documents_the_registry(admin_api):
    schema = admin_api.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert "/api/v1/mlops/models/{model_name}/versions/{version}/transition/" in paths
    assert "/api/v1/mlops/approvals/{id}/approve/" in paths


def test_openapi_states_the_rules_of_names_versions_and_aliases_in_paths(operator_api, operator):
    """The path parameters say what the registry takes: a client that follows them is never refused for the form."""
    paths = operator_api.get("/api/schema/", {"format": "json"}).json()["paths"]

    def parameter(path: str, name: str) -> dict:
        operation = next(iter(paths[f"/api/v1/mlops/models/{path}"].values()))
        return next(p["schema"] for p in operation["parameters"] if p["in"] == "path" and p["name"] == name)

    name = parameter("{name}/", "name")
    assert name["type"] == "string" and name["maxLength"] == 256
    for path, variable in [("{name}/aliases/{alias}/", "name"), ("{model_name}/versions/{version}/", "model_name")]:
        assert parameter(path, variable) == name
    assert parameter("{model_name}/versions/{version}/transition/", "version") == {"type": "integer", "minimum": 1}
    alias = parameter("{name}/aliases/{alias}/", "alias")
    assert alias["maxLength"] == 255

    name_pattern, alias_pattern = re.compile(name["pattern"]), re.compile(alias["pattern"])
    for accepted in ["m" * 256, "fraud v2 (EU)", "модель.1", "..a"]:
        assert name_pattern.match(accepted), accepted
        assert operator_api.post(MODELS, {"name": accepted}, format="json").status_code == 201
        assert operator_api.get(f"{MODELS}{quote(accepted)}/").json()["name"] == accepted
    for refused in ["m" * 257, "..", ".", "tab\there", "a/b"]:
        assert not name_pattern.match(refused), refused
        answer = operator_api.post(MODELS, {"name": refused}, format="json")
        assert answer.status_code == 400 and "name" in answer.json()["errors"], refused
    version = services.create_version(model=RegisteredModel.objects.get(name="..a"), source="s3://a/1", actor=operator)
    for accepted in ["c" * 255, "champion-2.eu_west"]:
        assert alias_pattern.match(accepted), accepted
        pointed = operator_api.post(f"{MODELS}..a/aliases/", {"alias": accepted, "version": 1}, format="json")
        assert pointed.status_code == 200 and pointed.json()["aliases"][accepted] == version.version
    for refused in ["c" * 256, "with space", "ünï"]:
        assert not alias_pattern.match(refused), refused
        answer = operator_api.post(f"{MODELS}..a/aliases/", {"alias": refused, "version": 1}, format="json")
        assert answer.status_code == 400 and "alias" in answer.json()["errors"], refused
    zero = operator_api.post(f"{versions_url('..a')}0/transition/", {"stage": "Staging"}, format="json")
    assert zero.status_code == 400 and "positive integer" in zero.json()["detail"]


def test_approval_requests_list_filters_by_status(operator_api, make_model, operator):
    model = make_model(name="credit", versions=2, approval_required=True)
    for version in model.versions.all():
        services.transition_stage(version=version, stage="Production", actor=operator)
    assert ApprovalRequest.objects.count() == 2
    listed = operator_api.get("/api/v1/mlops/approvals/", {"status": "pending"}).json()
    assert listed["count"] == 2 and {r["version"] for r in listed["results"]} == {1, 2}


def test_a_webhook_created_disabled_sends_nothing_until_enabled(admin_api, operator, receiver, allow_loopback):
    created = admin_api.post(
        "/api/v1/mlops/webhooks/", {"name": "paused", "url": receiver.url, "enabled": False}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["enabled"] is False
    hook_url = f"/api/v1/mlops/webhooks/{created.json()['id']}/"
    services.create_model(name="quiet", actor=operator)
    assert admin_api.get(f"{hook_url}deliveries/").json()["count"] == 0
    assert admin_api.patch(hook_url, {"enabled": True}, format="json").json()["enabled"] is True
    services.create_model(name="loud", actor=operator)
    assert admin_api.get(f"{hook_url}deliveries/").json()["count"] == 1


def test_deleting_an_alias_by_a_long_name_answers_what_happened(operator_api, operator):
    model = services.create_model(name="long-alias", actor=operator)
    version = services.create_version(model=model, source="s3://m/1", actor=operator)
    alias = "a" * 200
    url = f"{MODELS}long-alias/aliases/{alias}/"
    missing = operator_api.delete(url)
    assert missing.status_code == 404 and alias in missing.json()["detail"]
    pointed = operator_api.post(f"{MODELS}long-alias/aliases/", {"alias": alias, "version": version.version})
    assert pointed.status_code == 200
    assert operator_api.delete(url).status_code == 204
    assert not model.aliases.exists()
