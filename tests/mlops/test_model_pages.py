"""A registered model's page: what it shows, and its details, tags, versions, aliases, policy, rename and delete."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mlops import services
from mlops.models import ApprovalRequest, Artifact, ModelVersion, RegisteredModel
from tests.helpers import client_for

from . import factories
from .factories import version
from .pages import messages_of, text_of

pytestmark = pytest.mark.django_db


def json_script(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))


def test_model_page_shows_description_versions_metrics_and_history(viewer, churn, operator):
    services.update_model(model=churn, actor=operator, description="# Churn\n\nPredicts *who leaves*.")
    services.update_version(
        version=version(churn, 2), actor=operator, run_id="abc123", run_link="https://mlflow.example.com/runs/abc123"
    )
    response = client_for(viewer).get("/mlops/models/churn/")
    body = response.content.decode()
    assert "<h1>Churn</h1>" in body and "<em>who leaves</em>" in body
    rows = re.findall(r'<tr id="version-(\d+)">', body)
    assert rows == ["2", "1"]
    # Key metrics as columns; values as people read them.
    assert re.findall(r'<th scope="col" class="text-end" data-metric="([^"]+)">', body) == ["auc", "f1"]
    assert ">0.81<" in body and ">0.72<" in body
    assert 'href="https://mlflow.example.com/runs/abc123"' in body
    assert "s3://models/churn/2" in text_of(response)
    history = text_of(response).split("History")[-1]
    assert "Version 2 of churn created" in history and "Registered model churn created." in history
    assert history.index("Version 2 of churn updated") < history.index("Version 2 of churn created")


def test_a_new_model_opens_the_register_version_form(operator):
    factories.registered_model(name="fresh", versions=0, actor=operator)
    body = client_for(operator).get("/mlops/models/fresh/").content.decode()
    assert re.search(r'<div class="collapse show mb-3" id="register-version">', body)
    assert "No versions yet." in body


def test_operator_edits_description_and_owner_team(operator, churn):
    client = client_for(operator)
    response = client.post(
        "/mlops/models/churn/actions/details/",
        {"details-description": "Now **better**", "details-owner_team": "growth"},
    )
    assert response.status_code == 302
    churn.refresh_from_db()
    assert churn.description == "Now **better**" and churn.owner_team == "growth"
    assert "<strong>better</strong>" in client.get("/mlops/models/churn/").content.decode()


def test_model_tags_set_and_delete(operator, churn):
    client = client_for(operator)
    response = client.post("/mlops/models/churn/actions/tag/", {"tag-key": "domain", "tag-value": "retention"})
    assert response.status_code == 302
    assert dict(churn.tags.values_list("key", "value")) == {"domain": "retention"}
    page = client.get("/mlops/models/churn/")
    assert "Tag domain set." in messages_of(page)
    assert 'aria-label="Delete tag domain"' in page.content.decode()
    client.post("/mlops/models/churn/actions/delete-tag/", {"key": "domain"})
    assert not churn.tags.exists()
    response = client.post("/mlops/models/churn/actions/delete-tag/", {"key": "domain"}, follow=True)
    assert "No tag with name: domain in Registered Model churn." in messages_of(response)
    response = client.post("/mlops/models/churn/actions/tag/", {"tag-key": "", "tag-value": "x"})
    assert response.status_code == 400 and "This field is required." in text_of(response)


def test_operator_registers_a_version_with_params_metrics_and_lineage(operator, churn):
    client = client_for(operator)
    response = client.post(
        "/mlops/models/churn/actions/register-version/",
        {
            "version-source": "s3://models/churn/3",
            "version-run_id": "run-3",
            "version-run_link": "https://mlflow.example.com/runs/run-3",
            "version-framework": "xgboost 2.1",
            "version-params": "max_depth=8\nlearning_rate = 0.05",
            "version-metrics": "auc=0.93\nepochs=12",
            "version-dataset": "s3://data/churn@2024-06",
            "version-code_version": "4f9a0c3",
            "version-model_card": "## Intended use\nRetention campaigns.",
            "version-tags": "owner=otto",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/mlops/models/churn/versions/3/"
    new = version(churn, 3)
    assert new.params == {"max_depth": "8", "learning_rate": "0.05"}
    assert new.metrics == {"auc": 0.93, "epochs": 12}
    assert (new.dataset, new.code_version, new.framework) == ("s3://data/churn@2024-06", "4f9a0c3", "xgboost 2.1")
    assert dict(new.tags.values_list("key", "value")) == {"owner": "otto"}
    page = client.get(response["Location"])
    assert "Registered version 3 of churn." in messages_of(page)
    text = text_of(page)
    assert "s3://data/churn@2024-06" in text and "4f9a0c3" in text and "xgboost 2.1" in text
    assert re.search(r"<code[^>]*>max_depth</code></th><td[^>]*><span[^>]*>8</span></td>", page.content.decode())
    assert re.search(r"<code[^>]*>epochs</code></th><td[^>]*>12</td>", page.content.decode())
    assert "<h2>Intended use</h2>" in page.content.decode()


def test_bad_metric_lines_are_named_and_nothing_is_registered(operator, churn):
    response = client_for(operator).post(
        "/mlops/models/churn/actions/register-version/",
        {"version-source": "s3://x", "version-metrics": "auc=0.9\nf1=high\nloss=nan"},
    )
    assert response.status_code == 400
    text = text_of(response)
    assert "Line 2 (“f1=high”): 'high' is not a number." in text
    assert "Line 3 (“loss=nan”): 'nan' is not a number." in text
    assert 'value="s3://x"' in response.content.decode()  # kept for the next try
    assert ModelVersion.objects.filter(model=churn).count() == 2


def test_aliases_set_move_and_delete_from_the_model_page(operator, churn):
    client = client_for(operator)
    client.post("/mlops/models/churn/actions/alias/", {"alias-alias": "champion", "alias-version": "1"})
    response = client.post(
        "/mlops/models/churn/actions/alias/", {"alias-alias": "champion", "alias-version": "2"}, follow=True
    )
    assert "Alias @champion points at version 2." in messages_of(response)
    assert churn.aliases.get().version.version == 2
    assert "Alias @champion points at version 2, moved from version 1." in text_of(response)
    response = client.post("/mlops/models/churn/actions/alias/", {"alias-alias": "v3", "alias-version": "2"})
    assert response.status_code == 400 and "'latest' and v<number> are reserved" in text_of(response)
    response = client.post("/mlops/models/churn/actions/alias/", {"alias-alias": "x", "alias-version": "7"})
    assert response.status_code == 400 and "Model Version (name=churn, version=7) not found" in text_of(response)
    client.post("/mlops/models/churn/actions/delete-alias/", {"alias": "champion"})
    assert not churn.aliases.exists()


def test_a_protected_alias_waits_for_approval(operator, admin_user, make_model):
    model = make_model("ranker", protected_aliases=["champion"])
    response = client_for(operator).post(
        "/mlops/models/ranker/actions/alias/", {"alias-alias": "champion", "alias-version": "2"}, follow=True
    )
    pending = ApprovalRequest.objects.get()
    assert pending.kind == "alias" and pending.alias == "champion"
    assert (
        f"Approval request #{pending.pk} is pending: pointing alias @champion at version 2 needs an admin's approval."
        in messages_of(response)
    )
    assert not model.aliases.exists()
    response = client_for(admin_user).post(f"/mlops/approvals/{pending.pk}/approve/", follow=True)
    assert f"Approved request #{pending.pk}: ranker alias @champion points at version 2." in messages_of(response)
    assert model.aliases.get().version.version == 2


def test_admin_edits_the_approval_policy(admin_user, churn):
    client = client_for(admin_user)
    response = client.post(
        "/mlops/models/churn/actions/policy/",
        {"policy-approval_required": "on", "policy-protected_aliases": "champion prod"},
    )
    assert response.status_code == 302
    churn.refresh_from_db()
    assert churn.approval_required and churn.protected_aliases == ["champion", "prod"]
    assert not churn.archive_on_promotion
    text = text_of(client.get("/mlops/models/churn/"))
    assert "Moving a version to Production needs an admin's approval." in text
    assert "Protected aliases (need approval): @champion , @prod ." in text
    response = client.post("/mlops/models/churn/actions/policy/", {"policy-protected_aliases": "bad alias!"})
    assert response.status_code == 400 and "Invalid alias 'alias!'" in text_of(response)


def test_admin_renames_a_model(admin_user, churn):
    client = client_for(admin_user)
    response = client.post("/mlops/models/churn/actions/rename/", {"rename-new_name": "churn v2.0 (eu)"})
    assert response.status_code == 302 and response["Location"] == "/mlops/models/churn%20v2.0%20(eu)/"
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Renamed to churn v2.0 (eu)." in messages_of(page)
    assert client.get("/mlops/models/churn%20v2.0%20(eu)/versions/2/").status_code == 200
    factories.registered_model(name="taken", versions=0, actor=admin_user)
    response = client.post("/mlops/models/churn%20v2.0%20(eu)/actions/rename/", {"rename-new_name": "taken"})
    assert response.status_code == 400 and "Registered Model (name=taken) already exists." in text_of(response)


def test_admin_deletes_a_model_after_typing_its_name(admin_user, churn, media, django_capture_on_commit_callbacks):
    services.upload_artifact(version=version(churn, 1), upload=SimpleUploadedFile("m.bin", b"x"), actor=admin_user)
    stored = media / Artifact.objects.get().file.name
    client = client_for(admin_user)
    response = client.post("/mlops/models/churn/actions/delete/", {"delete-confirm": "chrun"})
    assert response.status_code == 400 and "Type churn exactly to delete this model." in text_of(response)
    assert RegisteredModel.objects.filter(name="churn").exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/mlops/models/churn/actions/delete/", {"delete-confirm": "churn"}, follow=True)
    assert "Deleted model churn with its versions and artifacts." in messages_of(response)
    assert not RegisteredModel.objects.exists() and not stored.exists()


def _metric_table(body: str) -> tuple[list[str], list[str]]:
    """(metric columns, version numbers in row order) of the versions table."""
    columns = re.findall(r'<th scope="col" class="text-end"(?: aria-sort="\w+")? data-metric="([^"]+)">', body)
    return columns, re.findall(r'<tr id="version-(\d+)">', body)


def test_versions_table_columns_are_chosen_in_the_query_string(viewer, operator):
    model = factories.registered_model(name="ranker", versions=0, actor=operator)
    metrics = [
        {"auc": 0.8, "f1": 0.7, "loss": 0.3, "latency_ms": 12, "recall": 0.5, "precision": 0.6},
        {"auc": 0.9, "f1": 0.6, "loss": 0.2, "latency_ms": 9, "recall": 0.4, "precision": 0.7, "mae": 1},
    ]
    for values in metrics:
        factories.model_version(model=model, actor=operator, metrics=values)
    client = client_for(viewer)
    body = client.get("/mlops/models/ranker/").content.decode()
    columns, _ = _metric_table(body)
    assert len(columns) == 4, "four metric columns by default"
    for name in ("auc", "f1", "loss", "latency_ms", "recall", "precision", "mae"):
        assert f'name="metric" value="{name}"' in body, f"{name} can be chosen"
    body = client.get("/mlops/models/ranker/", {"columns": "chosen", "metric": ["mae", "recall"]}).content.decode()
    assert _metric_table(body)[0] == ["recall", "mae"], "the chosen metrics, most reported first"
    assert ">1<" in body, "version 2's mae is shown"
    body = client.get("/mlops/models/ranker/", {"columns": "chosen"}).content.decode()
    assert _metric_table(body)[0] == [], "no metric chosen: none shown"
    unknown = client.get("/mlops/models/ranker/", {"columns": "chosen", "metric": ["auc", "nope"]})
    assert unknown.status_code == 400 and "No version reports 'nope'" in text_of(unknown)


def test_versions_sort_by_a_metric_server_side_and_stably(viewer, operator):
    model = factories.registered_model(name="ranker", versions=0, actor=operator)
    for auc in (0.7, 0.9, None, 0.7, 0.8):
        factories.model_version(model=model, actor=operator, metrics={"f1": 0.5} if auc is None else {"auc": auc})
    client = client_for(viewer)
    body = client.get("/mlops/models/ranker/", {"sort": "auc", "order": "desc"}).content.decode()
    # Ties keep newest first; a version without the metric comes last in either order.
    assert _metric_table(body)[1] == ["2", "5", "4", "1", "3"]
    assert re.search(r'aria-sort="descending" data-metric="auc"><a href="\?([^"]+)"', body)
    link = html.unescape(re.search(r'aria-sort="descending" data-metric="auc"><a href="\?([^"]+)"', body).group(1))
    assert "order=asc" in link and "sort=auc" in link, "the header sorts the other way next"
    body = client.get("/mlops/models/ranker/?" + link).content.decode()
    assert _metric_table(body)[1] == ["4", "1", "5", "2", "3"]
    bad = client.get("/mlops/models/ranker/", {"sort": "auc", "order": "sideways"})
    assert bad.status_code == 400 and "order: 'sideways' is neither desc nor asc" in text_of(bad)
    assert client.get("/mlops/models/ranker/", {"sort": "nope"}).status_code == 400


def test_a_metric_across_versions_is_charted(viewer, churn, operator):
    factories.model_version(model=churn, actor=operator, metrics={"f1": 0.9})
    client = client_for(viewer)
    response = client.get("/mlops/models/churn/", {"chart": "auc"})
    figure = json_script(response, "metric-chart")
    trace = figure["data"][0]
    assert trace["x"] == ["v1", "v2"] and trace["y"] == [0.8, 0.81], "version 3 has no auc: left out"
    assert figure["layout"]["yaxis"]["title"]["text"] == "auc"
    assert 'data-chart="metric-chart"' in response.content.decode()
    assert json_script(client.get("/mlops/models/churn/", {"chart": "f1"}), "metric-chart")["data"][0]["x"] == [
        "v1",
        "v2",
        "v3",
    ]
