"""The MLOps pages as people use them: what they see, and what their clicks and forms change."""

from __future__ import annotations

import hashlib
import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mlops import services
from mlops.models import ApprovalRequest, Artifact, ModelVersion, RegisteredModel, Stage, Webhook, WebhookDelivery
from opsportal.accounts.roles import Role
from tests.portal.factories import UserFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, whitespace collapsed."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def json_script(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))


def messages_of(response) -> list[str]:
    """The Django messages shown on the page, as text."""
    return [text_of_html(str(m)) for m in response.context["messages"]] if response.context else []


def text_of_html(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def version(model, number: int) -> ModelVersion:
    return ModelVersion.objects.get(model=model, version=number)


def stages(model) -> dict[int, str]:
    return dict(ModelVersion.objects.filter(model=model).values_list("version", "stage"))


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def guarded(make_model, admin_user):
    """'fraud' with an approval policy; version 1 is in Production, version 2 is new."""
    model = make_model("fraud")
    services.transition_stage(version=version(model, 1), stage=Stage.PRODUCTION, actor=admin_user)
    return services.update_model(model=model, actor=admin_user, approval_required=True)


# --- Every page, every role ---------------------------------------------------------------------------------------


def test_every_page_renders_for_a_viewer(viewer, churn, operator, media):
    services.set_model_tag(model=churn, key="team", value="growth", actor=operator)
    services.set_alias(model=churn, alias="champion", version=version(churn, 2), actor=operator)
    services.upload_artifact(
        version=version(churn, 1), upload=SimpleUploadedFile("model.pkl", b"weights"), actor=operator
    )
    services.request_promotion(version=version(churn, 2), actor=operator, reason="better AUC")
    client = client_for(viewer)
    pages = {
        "/mlops/": "churn",
        "/mlops/models/churn/": "Versions",
        "/mlops/models/churn/versions/1/": "Lineage",
        "/mlops/models/churn/compare/?v=1&v=2": "Metrics by version",
        "/mlops/approvals/": "better AUC",
    }
    for path, expected in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert expected in text_of(response), path
        body = response.content.decode()
        # Viewers read: no write forms and no buttons that would only answer 403.
        assert body.count('method="post"') == 1, path  # only "Log out"
    assert "Register model" not in text_of(client.get("/mlops/"))


def test_sub_navigation_marks_the_current_section(viewer, admin_user, churn):
    tabs = re.compile(r'<ul class="nav nav-tabs[^"]*" aria-label="MLOps sections">(.*?)</ul>', re.S)
    page = client_for(viewer).get("/mlops/approvals/").content.decode()
    nav = tabs.search(page).group(1)
    assert re.search(r'aria-current="page" href="/mlops/approvals/"', nav)
    assert "Webhooks" not in nav  # admins only
    nav = tabs.search(client_for(admin_user).get("/mlops/models/churn/").content.decode()).group(1)
    assert re.search(r'aria-current="page" href="/mlops/"', nav) and "/mlops/webhooks/" in nav


def test_unknown_model_or_version_is_404(viewer, churn):
    client = client_for(viewer)
    assert client.get("/mlops/models/nope/").status_code == 404
    assert client.get("/mlops/models/churn/versions/9/").status_code == 404
    assert client.get("/mlops/models/nope/compare/?v=1&v=2").status_code == 404


def test_webhooks_page_is_for_admins(viewer, operator, admin_user):
    assert client_for(viewer).get("/mlops/webhooks/").status_code == 403
    assert client_for(operator).get("/mlops/webhooks/").status_code == 403
    assert client_for(admin_user).get("/mlops/webhooks/").status_code == 200


WRITES = [
    ("/mlops/", {"new-name": "x"}),
    ("/mlops/models/churn/actions/details/", {"details-description": "x"}),
    ("/mlops/models/churn/actions/tag/", {"tag-key": "k", "tag-value": "v"}),
    ("/mlops/models/churn/actions/register-version/", {"version-source": "s3://x"}),
    ("/mlops/models/churn/actions/alias/", {"alias-alias": "champion", "alias-version": "1"}),
    ("/mlops/models/churn/actions/rollback/", {"rollback-version": "1"}),
    ("/mlops/models/churn/versions/1/transition/", {"transition-stage": "Staging"}),
    ("/mlops/models/churn/versions/1/request-promotion/", {}),
    ("/mlops/models/churn/versions/1/edit/", {"edit-description": "x"}),
    ("/mlops/models/churn/versions/1/tag/", {"tag-key": "k"}),
    ("/mlops/models/churn/versions/1/alias/", {"alias-alias": "champion"}),
    ("/mlops/models/churn/versions/1/upload/", {}),
    ("/mlops/approvals/{request}/cancel/", {}),
]
ADMIN_WRITES = [
    ("/mlops/models/churn/actions/policy/", {"policy-approval_required": "on"}),
    ("/mlops/models/churn/actions/rename/", {"rename-new_name": "other"}),
    ("/mlops/models/churn/actions/delete/", {"delete-confirm": "churn"}),
    ("/mlops/models/churn/versions/1/delete/", {"delete-confirm": "1"}),
    ("/mlops/approvals/{request}/approve/", {}),
    ("/mlops/approvals/{request}/reject/", {"comment": "no"}),
    ("/mlops/webhooks/", {"name": "ci", "url": "https://hooks.example.com/x"}),
]


def test_viewers_cannot_change_anything(viewer, churn, operator):
    pending = services.request_promotion(version=version(churn, 1), actor=operator)
    client = client_for(viewer)
    for path, data in WRITES + ADMIN_WRITES:
        path = path.format(request=pending.pk)
        assert client.post(path, data).status_code == 403, path
    churn.refresh_from_db()
    assert churn.description == "" and not churn.tags.exists() and not churn.aliases.exists()
    assert stages(churn) == {1: "None", 2: "None"}
    assert ModelVersion.objects.count() == 2 and RegisteredModel.objects.count() == 1


def test_operators_cannot_do_what_admins_do(operator, churn):
    pending = services.request_promotion(version=version(churn, 1), actor=operator)
    client = client_for(operator)
    for path, data in ADMIN_WRITES:
        path = path.format(request=pending.pk)
        assert client.post(path, data).status_code == 403, path
    churn.refresh_from_db()
    assert churn.name == "churn" and not churn.approval_required
    assert ApprovalRequest.objects.get().status == "pending"
    assert not Webhook.objects.exists() and ModelVersion.objects.count() == 2


# --- The model list ------------------------------------------------------------------------------------------------


def test_operator_registers_a_model_with_tags_and_policy(operator):
    client = client_for(operator)
    assert "Register model" in text_of(client.get("/mlops/"))
    response = client.post(
        "/mlops/",
        {
            "new-name": "fraud v2.1 - eu",
            "new-description": "Scores **card** payments.",
            "new-owner_team": "risk",
            "new-tags": "domain=payments\n\ntier = 1",
            "new-approval_required": "on",
            "new-protected_aliases": "champion, prod",
            "new-archive_on_promotion": "on",
        },
    )
    model = RegisteredModel.objects.get(name="fraud v2.1 - eu")
    assert response.status_code == 302 and response["Location"] == "/mlops/models/fraud%20v2.1%20-%20eu/"
    assert model.owner_team == "risk" and model.approval_required and model.protected_aliases == ["champion", "prod"]
    assert dict(model.tags.values_list("key", "value")) == {"domain": "payments", "tier": "1"}
    page = client.get(response["Location"])
    assert "Registered model fraud v2.1 - eu." in " ".join(messages_of(page))
    assert "<strong>card</strong>" in page.content.decode()


def test_registration_problems_are_shown_on_the_form(operator, churn):
    client = client_for(operator)
    response = client.post("/mlops/", {"new-name": "churn", "new-archive_on_promotion": "on"})
    assert response.status_code == 400
    assert "Registered Model (name=churn) already exists." in text_of(response)
    response = client.post("/mlops/", {"new-name": "x", "new-tags": "ok=1\nnot a tag"})
    assert response.status_code == 400
    assert "Line 2 (“not a tag”): expected key=value." in text_of(response)
    response = client.post("/mlops/", {"new-name": "y", "new-protected_aliases": "v1"})
    assert "'latest' and v<number> are reserved" in text_of(response)
    # What was typed stays in the form, and the form is open.
    assert re.search(r'<section class="collapse show[^"]*" id="register-model"', response.content.decode())
    assert 'value="y"' in response.content.decode()
    assert RegisteredModel.objects.count() == 1


def test_list_rows_show_latest_version_stages_aliases_tags(viewer, churn, operator):
    services.transition_stage(version=version(churn, 1), stage="Production", actor=operator)
    services.transition_stage(version=version(churn, 2), stage="Staging", actor=operator)
    services.set_alias(model=churn, alias="champion", version=version(churn, 1), actor=operator)
    services.set_model_tag(model=churn, key="domain", value="retention", actor=operator)
    services.create_model(name="empty", actor=operator)
    response = client_for(viewer).get("/mlops/")
    row = re.search(rf'<tr id="model-{churn.pk}">.*?</tr>', response.content.decode(), re.S).group(0)
    row_text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
    assert "Version 2" in row_text and "2 versions" in row_text
    assert "Production v1" in row_text and "Staging v2" in row_text
    assert "@champion → v1" in row_text and "domain=retention" in row_text
    assert "ago" in row_text
    assert "no versions" in text_of(response)
    assert "2 models" in text_of(response)


def test_pending_approvals_panel_links_to_the_queue(viewer, churn, operator):
    services.request_promotion(version=version(churn, 2), actor=operator)
    response = client_for(viewer).get("/mlops/")
    assert "1 pending promotion request" in text_of(response)
    panel = re.search(
        r'<section class="card mb-3" aria-labelledby="pending-h">.*?</section>', response.content.decode(), re.S
    )
    assert 'href="/mlops/approvals/"' in panel.group(0)


@pytest.fixture
def catalogue(make_model, operator):
    """Four models with teams, tags and stages to search."""
    churn = make_model("churn", versions=3, owner_team="growth")
    fraud = make_model("fraud-detector", versions=1, owner_team="risk")
    make_model("fraud.rules", versions=0, owner_team="risk")
    ranker = make_model("search ranker", versions=2, owner_team="search")
    services.set_model_tag(model=fraud, key="domain", value="payments", actor=operator)
    services.set_model_tag(model=ranker, key="domain", value="search", actor=operator)
    services.transition_stage(version=version(churn, 1), stage="Staging", actor=operator)
    services.transition_stage(version=version(ranker, 2), stage="Production", actor=operator)
    return churn


def names_in(response) -> list[str]:
    return re.findall(r'<a class="fw-semibold" href="/mlops/models/[^"]+">([^<]+)</a>', response.content.decode())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["churn", "fraud-detector", "fraud.rules", "search ranker"]),
        ("q=FRAUD", ["fraud-detector", "fraud.rules"]),
        ("q=ranker", ["search ranker"]),
        ("q=domain%3Dpayments", ["fraud-detector"]),
        ("q=domain+%3D+search", ["search ranker"]),
        ("q=domain%3D", ["fraud-detector", "search ranker"]),
        ("team=risk", ["fraud-detector", "fraud.rules"]),
        ("stage=Production", ["search ranker"]),
        ("stage=Staging&team=growth", ["churn"]),
        ("stage=Archived", []),
        ("sort=-name", ["search ranker", "fraud.rules", "fraud-detector", "churn"]),
        ("sort=-versions", ["churn", "search ranker", "fraud-detector", "fraud.rules"]),
        ("sort=versions", ["fraud.rules", "fraud-detector", "search ranker", "churn"]),
    ],
)
def test_list_search_filters_and_sorting(viewer, catalogue, query, expected):
    assert names_in(client_for(viewer).get(f"/mlops/?{query}")) == expected


def test_list_filter_on_a_team_that_is_gone_matches_nothing(viewer, catalogue):
    response = client_for(viewer).get("/mlops/?team=disbanded")
    assert names_in(response) == [] and "No models match." in text_of(response)
    assert "Select a valid choice. disbanded is not one of the available choices." in text_of(response)


def test_list_sorts_by_last_update(viewer, catalogue, operator):
    services.set_model_tag(model=RegisteredModel.objects.get(name="fraud.rules"), key="k", value="v", actor=operator)
    assert names_in(client_for(viewer).get("/mlops/?sort=-updated"))[0] == "fraud.rules"
    assert names_in(client_for(viewer).get("/mlops/?sort=updated"))[-1] == "fraud.rules"


def test_list_pages(viewer, catalogue, monkeypatch):
    monkeypatch.setattr("mlops.views.model_list.MODEL_PAGE_SIZE", 3)
    client = client_for(viewer)
    first = client.get("/mlops/?team=&sort=name")
    assert names_in(first) == ["churn", "fraud-detector", "fraud.rules"]
    assert "Page 1 of 2 (4)" in text_of(first)
    assert 'href="?team=&amp;sort=name&amp;page=2"' in first.content.decode()
    assert names_in(client.get("/mlops/?team=&sort=name&page=2")) == ["search ranker"]


def test_search_form_keeps_the_query_and_htmx_gets_only_the_table(viewer, catalogue):
    client = client_for(viewer)
    page = client.get("/mlops/?q=fraud&team=risk").content.decode()
    assert re.search(r'name="q"[^>]*value="fraud"', page)
    assert re.search(r'<option value="risk" selected>', page)
    partial = client.get("/mlops/?q=fraud", HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert 'id="models"' in body and "<html" not in body and 'id="model-search"' not in body
    assert "HX-Request" in partial["Vary"]
    assert "No models match." in text_of(client.get("/mlops/?q=nothing-like-this"))


def test_list_uses_a_constant_number_of_queries(viewer, make_model, operator, django_assert_max_num_queries):
    client = client_for(viewer)

    def populate(start: int, count: int) -> None:
        for i in range(start, start + count):
            model = make_model(f"model-{i:02}", versions=2, owner_team=f"team-{i % 3}")
            services.set_model_tag(model=model, key="domain", value=f"d{i}", actor=operator)
            services.set_alias(model=model, alias="champion", version=version(model, 2), actor=operator)
            services.transition_stage(version=version(model, 1), stage="Production", actor=operator)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/mlops/").status_code == 200
        return len(queries)

    populate(0, 2)
    few = measure()
    populate(2, 20)
    many = measure()
    assert few == many
    assert len(names_in(client.get("/mlops/"))) == 22
    with django_assert_max_num_queries(few):
        client.get("/mlops/?q=model&team=team-1&stage=Production&sort=-versions")


# --- A model's page ------------------------------------------------------------------------------------------------


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
    assert re.search(r'<th scope="col" class="text-end">auc</th><th scope="col" class="text-end">f1</th>', body)
    assert ">0.81<" in body and ">0.72<" in body
    assert 'href="https://mlflow.example.com/runs/abc123"' in body
    assert "s3://models/churn/2" in text_of(response)
    history = text_of(response).split("History")[-1]
    assert "Version 2 of churn created" in history and "Registered model churn created." in history
    assert history.index("Version 2 of churn updated") < history.index("Version 2 of churn created")


def test_a_new_model_opens_the_register_version_form(operator):
    services.create_model(name="fresh", actor=operator)
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
    assert re.search(r"<code>max_depth</code></th><td[^>]*>8</td>", page.content.decode())
    assert re.search(r"<code>epochs</code></th><td[^>]*>12</td>", page.content.decode())
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
    services.create_model(name="taken", actor=admin_user)
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


# --- Stages, approvals, rollback ------------------------------------------------------------------------------------


def test_operator_moves_a_version_without_a_policy(operator, churn):
    client = client_for(operator)
    response = client.post(
        "/mlops/models/churn/versions/1/transition/", {"transition-stage": "Production"}, follow=True
    )
    assert "Version 1 moved to Production." in messages_of(response)
    response = client.post(
        "/mlops/models/churn/versions/2/transition/",
        {"transition-stage": "Production", "transition-archive_existing": "on"},
        follow=True,
    )
    assert "Version 2 moved to Production. Archived version 1." in messages_of(response)
    assert stages(churn) == {1: "Archived", 2: "Production"}
    assert re.search(r'id="version-stage">Production<', response.content.decode())
    response = client.post("/mlops/models/churn/versions/1/transition/", {"transition-stage": "Bogus"})
    assert response.status_code == 400 and "Select a valid choice." in text_of(response)


def test_approval_flow_through_the_pages(operator, admin_user, guarded):
    """Operator asks for Production on a policy model; the admin approves; the previous version is archived."""
    client = client_for(operator)
    response = client.post(
        "/mlops/models/fraud/versions/2/transition/",
        {"transition-stage": "Production", "transition-archive_existing": "on", "transition-reason": "AUC +1pt"},
    )
    assert response.status_code == 302
    pending = ApprovalRequest.objects.get()
    assert (pending.status, pending.target_stage, pending.reason) == ("pending", "Production", "AUC +1pt")
    assert stages(guarded) == {1: "Production", 2: "None"}
    page = client.get(response["Location"])
    notice = f"Approval request #{pending.pk} is pending: moving version 2 to Production needs an admin's approval."
    assert notice in " ".join(text_of(page).split())
    assert f"Approval request #{pending.pk} to move this version to stage Production is pending" in text_of(page)
    assert f'href="/mlops/approvals/#request-{pending.pk}"' in page.content.decode()

    queue = client.get("/mlops/approvals/")
    row = re.search(rf'<tr id="request-{pending.pk}">.*?</tr>', queue.content.decode(), re.S).group(0)
    assert "fraud" in row and "version 2" in row and "stage Production" in row and "AUC +1pt" in row
    assert "Approve" not in row  # operators don't decide
    assert 'aria-label="Cancel request' in row  # ... but may cancel their own

    admin = client_for(admin_user)
    admin_row = re.search(
        rf'<tr id="request-{pending.pk}">.*?</tr>', admin.get("/mlops/approvals/").content.decode(), re.S
    )
    assert "Approve" in admin_row.group(0) and "Reject" in admin_row.group(0)
    assert "v1" in admin_row.group(0)  # what is in Production now, to compare with
    response = admin.post(f"/mlops/approvals/{pending.pk}/approve/", {"comment": "Looks good"}, follow=True)
    assert f"Approved request #{pending.pk}: fraud version 2 is now in Production." in messages_of(response)
    assert stages(guarded) == {1: "Archived", 2: "Production"}
    decided = re.search(r'<table[^>]*id="decided-requests".*?</table>', response.content.decode(), re.S).group(0)
    assert "Approved" in decided and "Looks good" in decided and "ada" in decided
    history = text_of(admin.get("/mlops/models/fraud/versions/2/")).split("History of version 2")[-1]
    assert f"Moved to Production from None (approval request #{pending.pk} approved)." in history


def test_request_promotion_button_names_the_request(operator, churn):
    client = client_for(operator)
    response = client.post(
        "/mlops/models/churn/versions/2/request-promotion/", {"promotion-reason": "beats v1"}, follow=True
    )
    pending = ApprovalRequest.objects.get()
    assert pending.target_stage == "Production" and pending.reason == "beats v1"
    assert f"Approval request #{pending.pk} is pending" in " ".join(messages_of(response))
    # Asking twice doesn't open a second request.
    client.post("/mlops/models/churn/versions/2/request-promotion/", {})
    assert ApprovalRequest.objects.count() == 1
    assert "Waiting for approval:" in text_of(client.get("/mlops/models/churn/"))


def test_reject_needs_a_comment(operator, admin_user, guarded):
    pending = services.request_promotion(version=version(guarded, 2), actor=operator)
    admin = client_for(admin_user)
    response = admin.post(f"/mlops/approvals/{pending.pk}/reject/", {"comment": "  "}, follow=True)
    assert f"Request #{pending.pk}: Say why the request is rejected." in messages_of(response)
    pending.refresh_from_db()
    assert pending.status == "pending"
    response = admin.post(f"/mlops/approvals/{pending.pk}/reject/", {"comment": "Drift on EU traffic"}, follow=True)
    pending.refresh_from_db()
    assert pending.status == "rejected" and pending.comment == "Drift on EU traffic"
    assert f"Rejected request #{pending.pk}." in messages_of(response)
    assert stages(guarded) == {1: "Production", 2: "None"}
    assert "Drift on EU traffic" in text_of(response)
    # Decided is decided.
    response = admin.post(f"/mlops/approvals/{pending.pk}/approve/", follow=True)
    assert f"Request #{pending.pk}: Approval request #{pending.pk} is already rejected." in messages_of(response)


def test_requester_cancels_their_own_request_only(operator, guarded):
    pending = services.request_promotion(version=version(guarded, 2), actor=operator)
    other = client_for(UserFactory(username="olga", role=Role.OPERATOR))
    assert other.post(f"/mlops/approvals/{pending.pk}/cancel/").status_code == 403
    assert 'aria-label="Cancel request' not in other.get("/mlops/approvals/").content.decode()
    response = client_for(operator).post(
        f"/mlops/approvals/{pending.pk}/cancel/", {"next": "/mlops/models/fraud/versions/2/"}
    )
    assert response["Location"] == "/mlops/models/fraud/versions/2/"
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    # Never redirected off-site.
    response = client_for(operator).post(f"/mlops/approvals/{pending.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == "/mlops/approvals/"


def test_rollback_from_the_model_page(operator, churn):
    services.transition_stage(version=version(churn, 1), stage="Production", actor=operator)
    services.transition_stage(version=version(churn, 2), stage="Production", actor=operator, archive_existing=True)
    client = client_for(operator)
    page = client.get("/mlops/models/churn/").content.decode()
    options = re.search(r'<select[^>]*name="rollback-version".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\d+)">', options) == ["1"]
    response = client.post(
        "/mlops/models/churn/actions/rollback/", {"rollback-version": "1", "rollback-reason": "latency"}, follow=True
    )
    assert "Rolled back: version 1 is in Production again. Archived version 2." in messages_of(response)
    assert stages(churn) == {1: "Production", 2: "Archived"}
    assert "Rolled back to Production from Archived." in text_of(response)
    response = client.post("/mlops/models/churn/actions/rollback/", {"rollback-version": "1"}, follow=True)
    assert "Version 1 is already in Production." in messages_of(response)


def test_rollback_under_a_policy_needs_approval_unless_an_admin_does_it(operator, admin_user, make_model):
    guarded = make_model("fraud")
    services.transition_stage(version=version(guarded, 1), stage="Production", actor=admin_user)
    services.transition_stage(version=version(guarded, 2), stage="Production", actor=admin_user)
    services.update_model(model=guarded, actor=admin_user, approval_required=True)
    assert stages(guarded) == {1: "Archived", 2: "Production"}
    response = client_for(operator).post(
        "/mlops/models/fraud/actions/rollback/", {"rollback-version": "1"}, follow=True
    )
    pending = ApprovalRequest.objects.get(status="pending")
    assert pending.rollback and pending.version.version == 1
    assert f"Approval request #{pending.pk} is pending" in " ".join(messages_of(response))
    assert stages(guarded) == {1: "Archived", 2: "Production"}
    assert "rollback" in text_of(client_for(operator).get("/mlops/approvals/"))
    response = client_for(admin_user).post(
        "/mlops/models/fraud/actions/rollback/", {"rollback-version": "1"}, follow=True
    )
    assert "Rolled back: version 1 is in Production again. Archived version 2." in messages_of(response)


def test_no_rollback_candidates_says_so(operator, churn):
    assert "No earlier Production version to roll back to." in text_of(client_for(operator).get("/mlops/models/churn/"))


# --- A version's page ----------------------------------------------------------------------------------------------


def test_version_page_shows_lineage_params_metrics_and_history(viewer, churn, operator):
    services.update_version(
        version=version(churn, 2),
        actor=operator,
        dataset="s3://data/churn@v7",
        code_version="9051bac",
        run_id="r-2",
        run_link="https://mlflow.example.com/runs/r-2",
        description="Adds tenure features.",
    )
    services.set_version_tag(version=version(churn, 2), key="validated", value="yes", actor=operator)
    response = client_for(viewer).get("/mlops/models/churn/versions/2/")
    text = text_of(response)
    body = response.content.decode()
    for expected in ["s3://models/churn/2", "r-2", "s3://data/churn@v7", "9051bac", "Adds tenure features."]:
        assert expected in text
    assert 'href="https://mlflow.example.com/runs/r-2"' in body
    assert re.search(r"<code>learning_rate</code></th><td[^>]*>0.1</td>", body)
    assert re.search(r"<code>auc</code></th><td[^>]*>0.81</td>", body)
    assert "validated" in text and "Compare with version 1" in text
    history = text.split("History of version 2")[-1]
    assert "Tag validated=yes set on version 2." in history and "Version 2 of churn created" in history


def test_operator_edits_the_version(operator, churn):
    client = client_for(operator)
    edit = client.get("/mlops/models/churn/versions/1/").content.decode()
    assert re.search(r'name="edit-params"[^>]*>\s*max_depth=4\nlearning_rate=0.1</textarea>', edit)
    response = client.post(
        "/mlops/models/churn/versions/1/edit/",
        {
            "edit-description": "First try.",
            "edit-model_card": "## Limitations\nEU only.",
            "edit-source": "s3://models/churn/1",
            "edit-params": "max_depth=4",
            "edit-metrics": "auc=0.8",
        },
        follow=True,
    )
    assert "Version 1 saved." in messages_of(response)
    saved = version(churn, 1)
    assert saved.description == "First try." and saved.model_card.startswith("## Limitations")
    assert saved.params == {"max_depth": "4"} and saved.metrics == {"auc": 0.8}
    assert "<h2>Limitations</h2>" in response.content.decode()
    response = client.post("/mlops/models/churn/versions/1/edit/", {"edit-run_link": "not a url"})
    assert response.status_code == 400 and "Enter a valid URL." in text_of(response)


def test_version_tags_and_alias(operator, churn):
    client = client_for(operator)
    client.post("/mlops/models/churn/versions/1/tag/", {"tag-key": "validated", "tag-value": "yes"})
    assert dict(version(churn, 1).tags.values_list("key", "value")) == {"validated": "yes"}
    client.post("/mlops/models/churn/versions/1/delete-tag/", {"key": "validated"})
    assert not version(churn, 1).tags.exists()
    response = client.post("/mlops/models/churn/versions/1/alias/", {"alias-alias": "challenger"}, follow=True)
    assert "Alias @challenger points at version 1." in messages_of(response)
    assert re.search(r'<span class="badge text-bg-info">@challenger</span>', response.content.decode())


def test_admin_deletes_a_version(admin_user, churn):
    client = client_for(admin_user)
    response = client.post("/mlops/models/churn/versions/2/delete/", {"delete-confirm": "1"})
    assert response.status_code == 400 and "Type 2 to delete this version." in text_of(response)
    response = client.post("/mlops/models/churn/versions/2/delete/", {"delete-confirm": "2"})
    assert response["Location"] == "/mlops/models/churn/"
    assert list(ModelVersion.objects.filter(model=churn).values_list("version", flat=True)) == [1]


def test_markdown_is_sanitised(viewer, churn, operator):
    services.update_version(
        version=version(churn, 1),
        actor=operator,
        model_card="# Card\n<script>alert('card')</script>\n\n[click me](javascript:alert(1)) and [docs](https://example.com/doc)",
        description='<img src=x onerror="alert(2)">',
        run_link="javascript:alert(3)",
    )
    services.update_model(model=churn, actor=operator, description="<iframe src='https://evil.example'></iframe>")
    client = client_for(viewer)
    body = client.get("/mlops/models/churn/versions/1/").content.decode()
    assert "<script>alert" not in body and "&lt;script&gt;alert('card')&lt;/script&gt;" in body
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", body, re.I)
    assert "[click me](javascript:alert(1))" in body  # shown as text, not as a link
    assert '<a href="https://example.com/doc">docs</a>' in body
    assert "<img src=x" not in body and "&lt;img src=x" in body
    assert "javascript:alert(3)" in text_of(client.get("/mlops/models/churn/versions/1/"))  # as text only
    model_page = client.get("/mlops/models/churn/").content.decode()
    assert "<iframe" not in model_page and "&lt;iframe" in model_page
    assert 'href="javascript:' not in model_page


# --- Artifacts -------------------------------------------------------------------------------------------------------


def test_artifact_upload_and_download_round_trip(operator, viewer, churn, media):
    content = b"\x80\x04 pickled weights " * 1000
    response = client_for(operator).post(
        "/mlops/models/churn/versions/1/upload/",
        {"artifact-file": SimpleUploadedFile("model.pkl", content), "artifact-path": "model/model.pkl"},
        follow=True,
    )
    digest = hashlib.sha256(content).hexdigest()
    artifact = Artifact.objects.get()
    assert artifact.sha256 == digest and artifact.size == len(content) and artifact.path == "model/model.pkl"
    assert f"Uploaded model/model.pkl ({len(content):,} bytes, SHA-256 {digest})." in messages_of(response)
    row = re.search(r'<table[^>]*id="artifacts".*?</table>', response.content.decode(), re.S).group(0)
    assert "model/model.pkl" in row and "18.6\xa0KB" in row and digest in row
    link = re.search(r'href="(/mlops/models/churn/versions/1/artifacts/\d+/download/)"', row).group(1)

    download = client_for(viewer).get(link)
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="model.pkl"'
    body = b"".join(download.streaming_content)
    assert body == content and hashlib.sha256(body).hexdigest() == digest
    assert download["X-Content-SHA256"] == digest
    # The artifact must belong to the version in the URL.
    assert client_for(viewer).get(link.replace("/versions/1/", "/versions/2/")).status_code == 404
    # And downloads need a login like every page.
    anonymous = Client().get(link)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_artifact_over_the_size_limit_is_refused_clearly(operator, churn, media, settings):
    settings.MLOPS_MAX_ARTIFACT_BYTES = 1024
    client = client_for(operator)
    assert "Up to 1.0 KB." in text_of(client.get("/mlops/models/churn/versions/1/"))
    response = client.post(
        "/mlops/models/churn/versions/1/upload/",
        {"artifact-file": SimpleUploadedFile("big.bin", b"x" * 2048)},
        follow=True,
    )
    assert "Not uploaded: big.bin: 2,048 bytes is over the artifact limit of 1,024 bytes." in messages_of(response)
    assert 'class="alert alert-danger' in response.content.decode()
    assert not Artifact.objects.exists()
    assert not any(media.rglob("big.bin")) if media.exists() else True


def test_artifact_upload_problems(operator, churn, media):
    client = client_for(operator)
    response = client.post("/mlops/models/churn/versions/1/upload/", {}, follow=True)
    assert "File: This field is required." in messages_of(response)
    client.post("/mlops/models/churn/versions/1/upload/", {"artifact-file": SimpleUploadedFile("a.txt", b"1")})
    response = client.post(
        "/mlops/models/churn/versions/1/upload/", {"artifact-file": SimpleUploadedFile("a.txt", b"2")}, follow=True
    )
    assert "Not uploaded: Version 1 already has an artifact 'a.txt'." in messages_of(response)
    response = client.post(
        "/mlops/models/churn/versions/1/upload/",
        {"artifact-file": SimpleUploadedFile("b.txt", b"3"), "artifact-path": "../etc/passwd"},
        follow=True,
    )
    assert "Invalid artifact path '../etc/passwd'" in " ".join(messages_of(response))


# --- Comparing versions --------------------------------------------------------------------------------------------


def test_compare_highlights_differences_and_marks_the_best_metric(viewer, make_model, operator):
    model = make_model("ranker", versions=0)
    for params, metrics in [
        ({"max_depth": "4", "seed": "1"}, {"auc": 0.80, "log_loss": 0.40, "rows": 1000}),
        ({"max_depth": "6", "seed": "1"}, {"auc": 0.85, "log_loss": 0.35, "rows": 1000}),
        ({"max_depth": "6", "seed": "1", "dropout": "0.2"}, {"auc": 0.83, "log_loss": 0.30, "rows": 1000}),
    ]:
        services.create_version(model=model, actor=operator, source="s3://m", params=params, metrics=metrics)
    response = client_for(viewer).get("/mlops/models/ranker/compare/?v=1&v=2&v=3")
    assert response.status_code == 200
    body = response.content.decode()

    def row(table: str, key: str) -> str:
        section = re.search(rf'<table[^>]*id="compare-{table}".*?</table>', body, re.S).group(0)
        return re.search(
            rf"<tr class=\"[^\"]*\">\s*<th scope=\"row\"[^>]*><code>{key}</code>.*?</tr>", section, re.S
        ).group(0)

    assert 'class="differs"' in row("params", "max_depth") and "differs" in text_of_html(row("params", "max_depth"))
    assert 'class="differs"' in row("params", "dropout")  # missing in two versions
    assert 'class=""' in row("params", "seed") and "≠" not in row("params", "seed")
    auc = row("metrics", "auc")
    assert "higher is better" in auc and re.search(r'class="text-end font-monospace best">0.85 <span[^>]*>★ best', auc)
    loss = row("metrics", "log_loss")
    assert "lower is better" in loss and re.search(r'best">0.3 <span[^>]*>★ best', loss)
    assert "+0.05" in auc and "-0.1" in loss
    assert "★ best" not in row("metrics", "rows") and 'class=""' in row("metrics", "rows")
    chart = json_script(response, "compare-chart")
    # One panel per metric, each with its own axis; one bar per version.
    titles = [a["text"] for a in chart["layout"]["annotations"]]
    assert titles == ["auc", "log_loss", "rows"]
    assert [trace["x"] for trace in chart["data"]] == [["v1", "v2", "v3"]] * 3
    assert chart["data"][0]["y"][1] == 0.85 and chart["data"][1]["y"][1] == 0.35 and chart["data"][2]["y"][1] == 1000
    assert 'data-chart="compare-chart"' in body and "vendor/plotly/plotly.min.js" in body
    assert "Parameters and metrics that differ: 4" in text_of(response)
    only = client_for(viewer).get("/mlops/models/ranker/compare/?v=1&v=2&v=3&diff=1")
    assert "<code>seed</code>" not in only.content.decode() and "<code>max_depth</code>" in only.content.decode()


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("log_loss", True),
        ("valLoss", True),
        ("error_rate", True),
        ("latency_ms", True),
        ("rmse", True),
        ("auc", False),
        ("f1", False),
        ("cancer_recall", False),
        ("power", False),
    ],
)
def test_which_metric_values_count_as_best(metric, lower):
    from mlops.compare import lower_is_better

    assert lower_is_better(metric) is lower


def test_compare_needs_two_versions(viewer, churn):
    client = client_for(viewer)
    response = client.get("/mlops/models/churn/compare/?v=1")
    assert response.status_code == 200
    text = text_of(response)
    assert "Select two or more versions to compare (only version 1 was selected)." in text
    assert 'id="compare-chart"' not in response.content.decode()
    assert re.search(r'name="v" value="1" id="pick-1" checked', response.content.decode())
    text = text_of(client.get("/mlops/models/churn/compare/?v=1&v=9&v=x"))
    assert "churn has no version 9." in text and "“x” is not a version number." in text
    assert "Select two or more versions to compare" in text_of(client.get("/mlops/models/churn/compare/"))


def test_model_page_compare_form_sends_the_selected_versions(viewer, churn):
    body = client_for(viewer).get("/mlops/models/churn/").content.decode()
    form = re.search(
        r'<form method="get" action="(/mlops/models/churn/compare/)" id="compare-form".*?</form>', body, re.S
    )
    assert form
    assert re.findall(r'type="checkbox" name="v" value="(\d+)"', form.group(0)) == ["2", "1"]
    assert "Compare selected versions" in form.group(0)


# --- Names with dots, dashes and spaces ---------------------------------------------------------------------------


def test_names_with_dots_dashes_and_spaces_work_everywhere(operator, make_model):
    make_model("fraud v2.1 - eu", versions=2)
    client = client_for(operator)
    base = "/mlops/models/fraud%20v2.1%20-%20eu/"
    assert 'href="/mlops/models/fraud%20v2.1%20-%20eu/"' in client.get("/mlops/").content.decode()
    assert client.get(base).status_code == 200
    assert client.get(base + "versions/2/").status_code == 200
    assert client.get(base + "compare/?v=1&v=2").status_code == 200
    response = client.post(base + "versions/2/transition/", {"transition-stage": "Staging"})
    assert response["Location"] == base + "versions/2/"
    assert version(RegisteredModel.objects.get(name="fraud v2.1 - eu"), 2).stage == "Staging"


# --- Webhooks ------------------------------------------------------------------------------------------------------


@pytest.fixture
def hooks_allowed(settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["hooks.example.com"]


def test_admin_creates_a_webhook_and_sees_the_secret_once(admin_user, churn, hooks_allowed):
    client = client_for(admin_user)
    response = client.post(
        "/mlops/webhooks/",
        {"name": "ci", "url": "https://hooks.example.com/registry", "events": ["stage_changed", "alias_set"],
         "model": "churn"},
    )  # fmt: skip
    hook = Webhook.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mlops/webhooks/#webhook-{hook.pk}"
    assert hook.events == ["stage_changed", "alias_set"] and hook.model == churn
    page = client.get("/mlops/webhooks/")
    secret = re.search(r'value="([^"]+)" id="secret-value"', page.content.decode()).group(1)
    assert len(secret) >= 32
    assert "Stage changed, Alias set" in text_of(page) and "model churn" in text_of(page)
    assert page["Cache-Control"].startswith("max-age=0") or "no-cache" in page["Cache-Control"]
    again = client.get("/mlops/webhooks/")
    assert secret not in again.content.decode() and 'id="secret-value"' not in again.content.decode()


def test_webhook_form_problems(admin_user, hooks_allowed):
    client = client_for(admin_user)
    response = client.post("/mlops/webhooks/", {"name": "x", "url": "https://hooks.example.com/", "model": "ghost"})
    assert response.status_code == 400 and "There is no model named ghost." in text_of(response)
    response = client.post("/mlops/webhooks/", {"name": "x", "url": "http://127.0.0.1:9/"})
    assert response.status_code == 400 and "not a public address" in text_of(response)
    assert not Webhook.objects.exists()


def test_webhook_deliveries_toggle_and_delete(admin_user, churn, hooks_allowed):
    hook, _ = services.create_webhook(name="ci", url="https://hooks.example.com/x", actor=admin_user)
    WebhookDelivery.objects.create(
        webhook=hook, event="stage_changed", payload={}, status="failed", attempts=6, response_code=502,
        last_error="HTTP 502",
    )  # fmt: skip
    client = client_for(admin_user)
    section = re.search(rf'<section class="card mb-3" id="webhook-{hook.pk}".*?</section>',
                        client.get("/mlops/webhooks/").content.decode(), re.S).group(0)  # fmt: skip
    text = text_of_html(section)
    assert "stage_changed" in text and "Failed" in text and "502" in text and "HTTP 502" in text and "6" in text
    assert "every event" in text and "every model" in text
    client.post(f"/mlops/webhooks/{hook.pk}/toggle/")
    hook.refresh_from_db()
    assert not hook.enabled
    client.post(f"/mlops/webhooks/{hook.pk}/delete/")
    assert not Webhook.objects.exists()
