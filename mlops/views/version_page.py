"""A model version's page and its actions: stage, promotion request, details, tags, alias, artifacts, delete."""

from __future__ import annotations

import dataclasses
import functools
import posixpath

from django.contrib import messages
from django.db.models import Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput, ServiceError
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.requests import form_problem

from .. import services
from ..forms import (
    ArtifactForm,
    DeleteVersionForm,
    EditVersionForm,
    PromotionRequestForm,
    TagForm,
    TransitionForm,
    VersionAliasForm,
)
from ..models import ApprovalRequest, Artifact, ModelVersion, Stage
from .common import HISTORY_LIMIT, model_or_404, pending_link, said_plainly, say_transition, version_or_404


def _version_page(request: HttpRequest, version: ModelVersion, status: int = 200, **forms) -> HttpResponse:
    """The page, with `forms` (bound ones shown open, with their errors) in place of the empty ones."""
    model = version.model
    defaults = {
        "transition_form": TransitionForm(
            prefix="transition", current=version.stage, archive=model.archive_on_promotion
        ),
        "promotion_form": PromotionRequestForm(prefix="promotion"),
        "edit_form": EditVersionForm(prefix="edit", initial=EditVersionForm.initial_for(version)),
        "tag_form": TagForm(prefix="tag"),
        "alias_form": VersionAliasForm(prefix="alias"),
        "artifact_form": ArtifactForm(prefix="artifact"),
        "delete_form": DeleteVersionForm(prefix="delete"),
    }
    defaults.update(forms)
    previous = ModelVersion.objects.filter(model=model, version__lt=version.version).aggregate(n=Max("version"))["n"]
    requests = list(version.approval_requests.select_related("requested_by", "decided_by").order_by("-requested_at"))
    context = {
        "model": model,
        "version": version,
        "previous": previous,
        "aliases": list(version.aliases.order_by("alias")),
        "tags": list(version.tags.all()),
        "params": sorted((version.params or {}).items()),
        "metrics": sorted((version.metrics or {}).items()),
        "artifacts": list(version.artifacts.select_related("uploaded_by")),
        "pending": [r for r in requests if r.status == ApprovalRequest.Status.PENDING],
        "decided": [r for r in requests if r.status != ApprovalRequest.Status.PENDING][:10],
        "events": list(version.events.all()[:HISTORY_LIMIT]),
        "needs_approval": services.needs_approval(model, stage=Stage.PRODUCTION),
        "open_forms": [name for name, form in forms.items() if form.is_bound],
        **defaults,
    }
    return render(request, "mlops/version_detail.html", context, status=status)


@role_required(Role.VIEWER)
def version_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    return _version_page(request, version_or_404(model_or_404(name), version))


def _transition(request: HttpRequest, version: ModelVersion, data: dict) -> None:
    result = services.transition_stage(version=version, actor=request.user, **data)
    say_transition(request, result, f"Version {version.version} moved to {data['stage']}.")


def _request_promotion(request: HttpRequest, version: ModelVersion, data: dict) -> None:
    approval = services.request_promotion(version=version, actor=request.user, reason=data["reason"])
    messages.info(request, pending_link(approval))


def _edit(request: HttpRequest, version: ModelVersion, data: dict) -> ModelVersion:
    return services.update_version(version=version, actor=request.user, **data)


def _set_tag(request: HttpRequest, version: ModelVersion, data: dict) -> object:
    return services.set_version_tag(version=version, actor=request.user, **data)


def _delete_tag(request: HttpRequest, version: ModelVersion, data: dict) -> str:
    key = request.POST.get("key", "")
    services.delete_version_tag(version=version, key=key, actor=request.user)
    return key


def _point_alias(request: HttpRequest, version: ModelVersion, data: dict) -> None:
    result = services.set_alias(model=version.model, alias=data["alias"], version=version, actor=request.user)
    say_transition(request, result, f"Alias @{data['alias']} points at version {version.version}.")


def _upload(request: HttpRequest, version: ModelVersion, data: dict) -> Artifact:
    # A file input can't be filled in again, so problems come back as a message above the page.
    form = ArtifactForm(request.POST, request.FILES, prefix="artifact")
    if not form.is_valid():
        raise InvalidInput(form_problem(form))
    try:
        return services.upload_artifact(
            version=version, upload=form.cleaned_data["file"], path=form.cleaned_data["path"], actor=request.user
        )
    except ServiceError as exc:
        raise ServiceError(f"Not uploaded: {exc.message}", code=exc.code) from None


def _delete(request: HttpRequest, version: ModelVersion, data: dict) -> None:
    if data["confirm"] != version.version:
        raise InvalidInput(f"Type {version.version} to delete this version.", field="confirm")
    services.delete_version(version=version, actor=request.user)


VERSION_ACTIONS = {
    "transition": PageAction(form=TransitionForm, prefix="transition", run=_transition),
    "request-promotion": PageAction(
        form=PromotionRequestForm, prefix="promotion", run=said_plainly(_request_promotion)
    ),
    "edit": PageAction(
        form=EditVersionForm, prefix="edit", run=_edit,
        success=lambda version, result, data: f"Version {version.version} saved.",
    ),
    "tag": PageAction(
        form=TagForm, prefix="tag", run=_set_tag, success=lambda version, tag, data: f"Tag {data['key']} set."
    ),
    "delete-tag": PageAction(run=said_plainly(_delete_tag), success=lambda version, key, data: f"Tag {key} deleted."),
    "alias": PageAction(form=VersionAliasForm, prefix="alias", run=_point_alias),
    "upload": PageAction(
        run=_upload,
        success=lambda version, artifact, data: (
            f"Uploaded {artifact.path} ({artifact.size:,} bytes, SHA-256 {artifact.sha256})."
        ),
    ),
    "delete": PageAction(
        form=DeleteVersionForm, prefix="delete", run=_delete, role=Role.ADMIN, why="Deleting a version",
        success=lambda version, result, data: f"Deleted version {version.version} of {version.model.name}.",
        next=lambda version, result: version.model,
    ),
}  # fmt: skip


def _actions_for(version: ModelVersion) -> dict[str, PageAction]:
    """The table for this version: its transition form leaves out the stage it is in (choosing it is refused)."""
    transition = VERSION_ACTIONS["transition"]
    form = functools.partial(TransitionForm, current=version.stage)
    return {**VERSION_ACTIONS, "transition": dataclasses.replace(transition, form=form)}


@require_POST
@role_required(Role.OPERATOR)
def version_action(request: HttpRequest, name: str, version: int, action: str) -> HttpResponse:
    """Changes to a version (`VERSION_ACTIONS`); a form with a problem is shown again on the page (400)."""
    version = version_or_404(model_or_404(name), version)
    return dispatch(
        request, _actions_for(version), action, version,
        invalid=lambda form: _version_page(request, version, 400, **{f"{form.prefix}_form": form}),
    )  # fmt: skip


@require_GET
@role_required(Role.VIEWER)
def artifact_download(request: HttpRequest, name: str, version: int, pk: int) -> FileResponse:
    """The stored file, streamed from storage as an attachment under its own name."""
    model = model_or_404(name)
    artifact = get_object_or_404(Artifact, pk=pk, version=version_or_404(model, version))
    try:
        handle = artifact.file.open("rb")
    except FileNotFoundError:
        raise Http404(f"The file of artifact {artifact.path} is missing from storage.") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=posixpath.basename(artifact.path),
        content_type=artifact.content_type or None,
    )
    response["X-Content-SHA256"] = artifact.sha256
    return response
