"""A version's page: lineage, stage moves, edits, tags, aliases, delete, sanitised Markdown."""

from __future__ import annotations

import re

import pytest

from mlops import services
from mlops.models import ModelVersion
from tests.helpers import client_for

from .factories import stages, version
from .pages import messages_of, text_of

pytestmark = pytest.mark.django_db


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
    assert re.search(r"<code[^>]*>learning_rate</code></th><td[^>]*><span[^>]*>0.1</span></td>", body)
    assert re.search(r"<code[^>]*>auc</code></th><td[^>]*>0.81</td>", body)
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
