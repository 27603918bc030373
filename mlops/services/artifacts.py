"""Artifacts: files stored for a version (Django's storage API), with their size and SHA-256."""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from ..models import Artifact, ModelVersion, VersionEvent
from .errors import AlreadyExists, InvalidValue
from .history import Actor, actor_user, record_event, touch

ARTIFACT_PATH_RE = re.compile(r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\-/]{0,499}$")


def delete_file_on_commit(artifact: Artifact) -> None:
    """Remove the artifact's file once the deletion of its row is committed (never before)."""
    name, storage = artifact.file.name, artifact.file.storage
    transaction.on_commit(lambda: storage.delete(name))


def upload_artifact(*, version: ModelVersion, upload: UploadedFile, actor: Actor, path: str = "") -> Artifact:
    """Store a file for a version (Django's storage API), with size and SHA-256; over the limit: InvalidValue."""
    limit = settings.MLOPS_MAX_ARTIFACT_BYTES
    if upload.size is not None and upload.size > limit:
        raise InvalidValue(
            f"{upload.name}: {upload.size:,} bytes is over the artifact limit of {limit:,} bytes.", field="file"
        )
    path = (path or upload.name or "").strip().lstrip("/")
    if not ARTIFACT_PATH_RE.match(path) or ".." in path.split("/"):
        raise InvalidValue(
            f"Invalid artifact path {path!r}: letters, digits, '_', '-', '.', '/'; no '..'.", field="path"
        )
    digest = hashlib.sha256()
    size = 0
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
    if size > limit:
        raise InvalidValue(
            f"{upload.name}: {size:,} bytes is over the artifact limit of {limit:,} bytes.", field="file"
        )
    upload.seek(0)
    with transaction.atomic():
        if Artifact.objects.filter(version=version, path=path).exists():
            raise AlreadyExists(f"Version {version.version} already has an artifact {path!r}.", field="path")
        artifact = Artifact(
            version=version,
            path=path,
            size=size,
            sha256=digest.hexdigest(),
            content_type=getattr(upload, "content_type", "") or "",
            uploaded_by=actor_user(actor),
        )
        artifact.file.save(path, upload, save=False)
        # If the transaction fails after the file was written, remove the orphan.
        stored = artifact.file.name
        try:
            artifact.save()
            touch(version.model, version)
            record_event(
                version.model,
                VersionEvent.Kind.ARTIFACT_UPLOADED,
                f"Artifact {path} ({size:,} bytes) uploaded to version {version.version}.",
                actor,
                version=version,
                audit_action="upload",
                path=path,
                size=size,
                sha256=artifact.sha256,
            )
        except Exception:
            artifact.file.storage.delete(stored)
            raise
    return artifact
