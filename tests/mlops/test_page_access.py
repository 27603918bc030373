"""Who sees and changes what on the MLOps pages; every page works for every model name."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mlops import services
from mlops.models import ApprovalRequest, ModelVersion, RegisteredModel, Webhook
from tests.helpers import client_for

from .factories import stages, version
from .pages import text_of

pytestmark = pytest.mark.django_db


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
