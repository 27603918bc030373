"""Artifacts on a version's page: upload, download, and what is refused."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from mlops.models import Artifact
from tests.helpers import client_for

from .pages import messages_of, text_of

pytestmark = pytest.mark.django_db


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
