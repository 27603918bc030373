"""MLOps pages: the model list, a model, a version, comparing versions, approvals and webhooks.

Every change goes through `mlops.services` (or `mlops.webhooks`); a `RegistryError` becomes a form
error or a message, and a successful POST redirects.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import Counter

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, has_role, require_role, role_required
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.charts import figure_data
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import form_problem, query_without, safe_next

from . import charts, services, webhooks
from .forms import (
    SORTS,
    AliasForm,
    ArtifactForm,
    DecisionForm,
    DeleteModelForm,
    DeleteVersionForm,
    EditVersionForm,
    ModelDetailsForm,
    ModelSearchForm,
    PolicyForm,
    PromotionRequestForm,
    RegisterModelForm,
    RegisterVersionForm,
    RenameForm,
    RollbackForm,
    TagForm,
    TransitionForm,
    VersionAliasForm,
    WebhookForm,
)
from .models import (
    ApprovalRequest,
    Artifact,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    RegisteredModelTag,
    Stage,
    VersionEvent,
    Webhook,
    WebhookDelivery,
)

MODEL_PAGE_SIZE = 50
VERSION_PAGE_SIZE = 50
HISTORY_LIMIT = 50
KEY_METRIC_COLUMNS = 4
MAX_COMPARED = 10
# Words in a metric's name that say smaller is better (log_loss, val_error, latency_ms); otherwise larger is.
LOWER_IS_BETTER = {
    "loss", "error", "err", "errors", "rmse", "mse", "mae", "mape", "smape", "wer", "cer", "perplexity", "latency",
    "duration", "time", "seconds", "ms", "fpr", "fnr", "brier", "logloss", "cost",
}  # fmt: skip


# --- Helpers -------------------------------------------------------------------------------------------------------


def _model_or_404(name: str) -> RegisteredModel:
    try:
        return services.get_model(name)
    except services.RegistryError as exc:
        raise Http404(exc.message) from None


def _version_or_404(model: RegisteredModel, number: int) -> ModelVersion:
    try:
        version = services.get_version(model, number)
    except services.RegistryError as exc:
        raise Http404(exc.message) from None
    version.model = model
    return version


def _add_error(form: forms.Form, exc: services.RegistryError, fields: dict[str, str] | None = None) -> None:
    """A service's error on the form field it names (or the form as a whole)."""
    field = (fields or {}).get(exc.field, exc.field)
    form.add_error(field if field in form.fields else None, exc.message)


def _apply(form: forms.Form, change, fields: dict[str, str] | None = None):
    """Run `change(cleaned_data)` for a valid form. Returns (True, its result), or (False, None) with the
    form's own errors or the service's error on the field it names."""
    if not form.is_valid():
        return False, None
    try:
        return True, change(form.cleaned_data)
    except services.RegistryError as exc:
        _add_error(form, exc, fields)
        return False, None


def _pending_link(approval: ApprovalRequest) -> SafeString:
    """The message naming a request that now waits for an admin, linked to its row in the queue."""
    number = approval.version.version
    change = (
        f"pointing alias @{approval.alias} at version {number}"
        if approval.kind == ApprovalRequest.Kind.ALIAS
        else f"moving version {number} to {approval.target_stage}"
    )
    return format_html(
        '<a href="{}">Approval request #{}</a> is pending: {} needs an admin\'s approval.',
        approval.get_absolute_url(),
        approval.pk,
        change,
    )


def _transition_message(request: HttpRequest, result: services.TransitionResult, done: str) -> None:
    if result.request is not None:
        messages.info(request, _pending_link(result.request))
        return
    text = done
    if result.archived:
        text += f" Archived version{'s' if len(result.archived) > 1 else ''} {', '.join(map(str, result.archived))}."
    messages.success(request, text)


def _version_stats(model_ids: list[int]) -> dict[int, dict]:
    """Per model: how many versions, the newest, and how many (and the newest) in Production and Staging."""
    rows = (
        ModelVersion.objects.filter(model_id__in=model_ids)
        .values("model_id")
        .annotate(
            count=Count("id"),
            latest=Max("version"),
            production=Count("id", filter=Q(stage=Stage.PRODUCTION)),
            production_version=Max("version", filter=Q(stage=Stage.PRODUCTION)),
            staging=Count("id", filter=Q(stage=Stage.STAGING)),
            staging_version=Max("version", filter=Q(stage=Stage.STAGING)),
        )
        .order_by()
    )
    return {row["model_id"]: row for row in rows}


# --- Model list ----------------------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def index(request: HttpRequest) -> HttpResponse:
    """Registered models: search, filters, sorting; operators register new ones here."""
    register_form = RegisterModelForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Registering a model")
        register_form = RegisterModelForm(request.POST, prefix="new")
        if register_form.is_valid():
            try:
                model = services.create_model(actor=request.user, **register_form.cleaned_data)
            except services.RegistryError as exc:
                _add_error(register_form, exc, {"alias": "protected_aliases", "key": "tags", "value": "tags"})
            else:
                messages.success(request, f"Registered model {model.name}. Register its first version below.")
                return redirect(model)

    teams = list(
        RegisteredModel.objects.exclude(owner_team="").values_list("owner_team", flat=True).distinct().order_by()
    )
    search = ModelSearchForm(request.GET, teams=sorted(teams))
    search.is_valid()
    data = search.cleaned_data
    models = RegisteredModel.objects.all()
    if q := (data.get("q") or "").strip():
        match = Q(name__icontains=q)
        if tag := search.tag_filter():
            key, value = tag
            tags = RegisteredModelTag.objects.filter(model=OuterRef("pk"), key=key)
            match |= Exists(tags.filter(value=value) if value else tags)
        models = models.filter(match)
    # A team or stage that isn't offered (any more) matches nothing, and the form says why.
    if team := request.GET.get("team", ""):
        models = models.filter(owner_team=team)
    if stage := request.GET.get("stage", ""):
        models = models.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), stage=stage)))
    sort = data.get("sort") or "name"
    if "versions" in sort:
        counted = ModelVersion.objects.filter(model=OuterRef("pk")).order_by().values("model").annotate(n=Count("id"))
        models = models.annotate(version_count=Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), 0))
    models = models.order_by(*SORTS[sort][1]).prefetch_related(
        "tags", Prefetch("aliases", queryset=ModelAlias.objects.select_related("version").order_by("alias"))
    )
    page = Paginator(models, MODEL_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    stats = _version_stats([m.pk for m in page.object_list])
    for model in page.object_list:
        model.stats = stats.get(model.pk, {"count": 0})

    context = {
        "search": search,
        "sort": sort,
        "page": page,
        "query": query_without(request, "page"),
        "sort_query": query_without(request, "page", "sort"),
        "pending_count": ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).count(),
        "register_form": register_form,
        "recent_events": VersionEvent.objects.select_related("model", "version")[:10],
    }
    if request.method == "POST":  # the registration form had a problem: show it, filled in as it was
        return render(request, "mlops/model_list.html", context, status=400)
    return render_page_or_partial(request, "mlops/model_list.html", "mlops/partials/model_table.html", context)


# --- A registered model --------------------------------------------------------------------------------------------


def _key_metrics(versions: list[ModelVersion]) -> list[str]:
    """The metric names most versions on the page report (the columns of the versions table)."""
    counts = Counter(key for version in versions for key in (version.metrics or {}))
    return [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:KEY_METRIC_COLUMNS]]


def _model_page(request: HttpRequest, model: RegisteredModel, status: int = 200, **forms) -> HttpResponse:
    versions = (
        ModelVersion.objects.filter(model=model)
        .select_related("created_by")
        .prefetch_related(Prefetch("aliases", queryset=ModelAlias.objects.order_by("alias")))
        .order_by("-version")
    )
    page = Paginator(versions, VERSION_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    key_metrics = _key_metrics(page.object_list)
    for version in page.object_list:
        version.key_values = [(version.metrics or {}).get(key) for key in key_metrics]
    is_operator = has_role(request.user, Role.OPERATOR)
    defaults = {
        "details_form": ModelDetailsForm(
            prefix="details", initial={"description": model.description, "owner_team": model.owner_team}
        ),
        "policy_form": PolicyForm(
            prefix="policy",
            initial={
                "approval_required": model.approval_required,
                "protected_aliases": model.protected_aliases,
                "archive_on_promotion": model.archive_on_promotion,
            },
        ),
        "tag_form": TagForm(prefix="tag"),
        "version_form": RegisterVersionForm(prefix="version"),
        "alias_form": AliasForm(prefix="alias"),
        "rollback_form": RollbackForm(prefix="rollback"),
        "rename_form": RenameForm(prefix="rename", initial={"new_name": model.name}),
        "delete_form": DeleteModelForm(prefix="delete"),
    }
    defaults.update(forms)
    context = {
        "model": model,
        "page": page,
        "key_metrics": key_metrics,
        "tags": list(model.tags.all()),
        "aliases": list(ModelAlias.objects.filter(model=model).select_related("version").order_by("alias")),
        "latest": services.latest_versions(model),
        "pending": list(
            ApprovalRequest.objects.filter(version__model=model, status=ApprovalRequest.Status.PENDING)
            .select_related("version", "requested_by")
            .order_by("requested_at")
        ),
        "rollback_candidates": services.rollback_candidates(model) if is_operator else [],
        "events": list(model.events.select_related("version")[:HISTORY_LIMIT]),
        "created_by": model.created_by.get_username() if model.created_by_id and model.created_by else "",
        "open_forms": [name for name, form in forms.items() if form.is_bound],
        **defaults,
    }
    return render(request, "mlops/model_detail.html", context, status=status)


@role_required(Role.VIEWER)
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    return _model_page(request, _model_or_404(name))


MODEL_ADMIN_ACTIONS = {"policy", "rename", "delete"}


@require_POST
@role_required(Role.OPERATOR)
def model_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """Changes to a model: details, policy, tags, a new version, aliases, rollback, rename, delete."""
    model = _model_or_404(name)
    if action in MODEL_ADMIN_ACTIONS:
        require_role(request, Role.ADMIN, "Changing the approval policy, renaming or deleting a model")
    user = request.user
    if action == "details":
        form = ModelDetailsForm(request.POST, prefix="details")
        if _apply(form, lambda data: services.update_model(model=model, actor=user, **data))[0]:
            messages.success(request, "Description and owner team saved.")
            return redirect(model)
        return _model_page(request, model, 400, details_form=form)
    if action == "policy":
        form = PolicyForm(request.POST, prefix="policy")
        change = lambda data: services.update_model(model=model, actor=user, **data)  # noqa: E731
        if _apply(form, change, {"alias": "protected_aliases"})[0]:
            messages.success(request, "Approval policy saved.")
            return redirect(model)
        return _model_page(request, model, 400, policy_form=form)
    if action == "tag":
        form = TagForm(request.POST, prefix="tag")
        if _apply(form, lambda data: services.set_model_tag(model=model, actor=user, **data))[0]:
            messages.success(request, f"Tag {form.cleaned_data['key']} set.")
            return redirect(model)
        return _model_page(request, model, 400, tag_form=form)
    if action == "delete-tag":
        try:
            services.delete_model_tag(model=model, key=request.POST.get("key", ""), actor=user)
        except services.RegistryError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Tag {request.POST['key']} deleted.")
        return redirect(model)
    if action == "register-version":
        form = RegisterVersionForm(request.POST, prefix="version")
        change = lambda data: services.create_version(model=model, actor=user, **data)  # noqa: E731
        done, version = _apply(form, change, {"key": "tags", "value": "tags"})
        if done:
            messages.success(request, f"Registered version {version.version} of {model.name}.")
            return redirect(version)
        return _model_page(request, model, 400, version_form=form)
    if action == "alias":
        form = AliasForm(request.POST, prefix="alias")

        def point(data: dict) -> services.TransitionResult:
            version = services.get_version(model, data["version"])
            return services.set_alias(model=model, alias=data["alias"], version=version, actor=user)

        done, result = _apply(form, point)
        if done:
            alias, number = form.cleaned_data["alias"], result.version.version
            _transition_message(request, result, f"Alias @{alias} points at version {number}.")
            return redirect(model)
        return _model_page(request, model, 400, alias_form=form)
    if action == "delete-alias":
        try:
            services.delete_alias(model=model, alias=request.POST.get("alias", ""), actor=user)
        except services.RegistryError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Alias @{request.POST['alias']} removed.")
        return redirect(model)
    if action == "rollback":
        form = RollbackForm(request.POST, prefix="rollback")
        if not form.is_valid():
            messages.error(request, form_problem(form))
            return redirect(model)
        try:
            version = services.get_version(model, form.cleaned_data["version"])
            result = services.rollback(model=model, to_version=version, actor=user, reason=form.cleaned_data["reason"])
        except services.RegistryError as exc:
            messages.error(request, exc.message)
        else:
            _transition_message(request, result, f"Rolled back: version {version.version} is in Production again.")
        return redirect(model)
    if action == "rename":
        form = RenameForm(request.POST, prefix="rename")
        done, renamed = _apply(form, lambda data: services.rename_model(model=model, new_name=data["new_name"],
                                                                        actor=user))  # fmt: skip
        if done:
            messages.success(request, f"Renamed to {renamed.name}.")
            return redirect(renamed)
        return _model_page(request, model, 400, rename_form=form)
    if action == "delete":
        form = DeleteModelForm(request.POST, prefix="delete")
        if form.is_valid() and form.cleaned_data["confirm"].strip() == model.name:
            services.delete_model(model=model, actor=user)
            messages.success(request, f"Deleted model {model.name} with its versions and artifacts.")
            return redirect("mlops:index")
        if form.is_valid():
            form.add_error("confirm", f"Type {model.name} exactly to delete this model.")
        return _model_page(request, model, 400, delete_form=form)
    raise Http404(f"Unknown action {action!r}.")


# --- A model version -----------------------------------------------------------------------------------------------


def _version_page(request: HttpRequest, version: ModelVersion, status: int = 200, **forms) -> HttpResponse:
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
    model = _model_or_404(name)
    return _version_page(request, _version_or_404(model, version))


@require_POST
@role_required(Role.OPERATOR)
def version_action(request: HttpRequest, name: str, version: int, action: str) -> HttpResponse:
    """Changes to a version: stage, promotion request, details, tags, alias, artifact upload, delete."""
    model = _model_or_404(name)
    version = _version_or_404(model, version)
    user = request.user
    if action == "transition":
        form = TransitionForm(request.POST, prefix="transition", current=version.stage)
        done, result = _apply(form, lambda data: services.transition_stage(version=version, actor=user, **data))
        if done:
            stage = form.cleaned_data["stage"]
            _transition_message(request, result, f"Version {version.version} moved to {stage}.")
            return redirect(version)
        return _version_page(request, version, 400, transition_form=form)
    if action == "request-promotion":
        form = PromotionRequestForm(request.POST, prefix="promotion")
        change = lambda data: services.request_promotion(version=version, actor=user, reason=data["reason"])  # noqa: E731
        done, approval = _apply(form, change)
        if done:
            messages.info(request, _pending_link(approval))
            return redirect(version)
        return _version_page(request, version, 400, promotion_form=form)
    if action == "edit":
        form = EditVersionForm(request.POST, prefix="edit")
        if _apply(form, lambda data: services.update_version(version=version, actor=user, **data))[0]:
            messages.success(request, f"Version {version.version} saved.")
            return redirect(version)
        return _version_page(request, version, 400, edit_form=form)
    if action == "tag":
        form = TagForm(request.POST, prefix="tag")
        if _apply(form, lambda data: services.set_version_tag(version=version, actor=user, **data))[0]:
            messages.success(request, f"Tag {form.cleaned_data['key']} set.")
            return redirect(version)
        return _version_page(request, version, 400, tag_form=form)
    if action == "delete-tag":
        try:
            services.delete_version_tag(version=version, key=request.POST.get("key", ""), actor=user)
        except services.RegistryError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Tag {request.POST['key']} deleted.")
        return redirect(version)
    if action == "alias":
        form = VersionAliasForm(request.POST, prefix="alias")
        change = lambda data: services.set_alias(model=model, alias=data["alias"], version=version, actor=user)  # noqa: E731
        done, result = _apply(form, change)
        if done:
            alias = form.cleaned_data["alias"]
            _transition_message(request, result, f"Alias @{alias} points at version {version.version}.")
            return redirect(version)
        return _version_page(request, version, 400, alias_form=form)
    if action == "upload":
        # A file input can't be filled in again, so problems come back as a message above the page.
        form = ArtifactForm(request.POST, request.FILES, prefix="artifact")
        if not form.is_valid():
            messages.error(request, form_problem(form))
            return redirect(version)
        upload = form.cleaned_data["file"]
        try:
            artifact = services.upload_artifact(
                version=version, upload=upload, path=form.cleaned_data["path"], actor=user
            )
        except services.RegistryError as exc:
            messages.error(request, f"Not uploaded: {exc.message}")
        else:
            messages.success(request, f"Uploaded {artifact.path} ({artifact.size:,} bytes, SHA-256 {artifact.sha256}).")
        return redirect(version)
    if action == "delete":
        require_role(request, Role.ADMIN, "Deleting a version")
        form = DeleteVersionForm(request.POST, prefix="delete")
        if form.is_valid() and form.cleaned_data["confirm"] == version.version:
            services.delete_version(version=version, actor=user)
            messages.success(request, f"Deleted version {version.version} of {model.name}.")
            return redirect(model)
        if form.is_valid():
            form.add_error("confirm", f"Type {version.version} to delete this version.")
        return _version_page(request, version, 400, delete_form=form)
    raise Http404(f"Unknown action {action!r}.")


@require_GET
@role_required(Role.VIEWER)
def artifact_download(request: HttpRequest, name: str, version: int, pk: int) -> FileResponse:
    """The stored file, streamed from storage as an attachment under its own name."""
    model = _model_or_404(name)
    artifact = get_object_or_404(Artifact, pk=pk, version=_version_or_404(model, version))
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


# --- Comparing versions --------------------------------------------------------------------------------------------


def _same(values: list) -> bool:
    """All equal; 1000 and 1000.0 count as the same number, a missing value differs from any value."""

    def key(value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return repr(float(value))
        return json.dumps(value, sort_keys=True)

    return len({key(value) for value in values}) == 1


def lower_is_better(metric: str) -> bool:
    words = re.split(r"[^a-z0-9]+", metric.lower())
    return any(word in LOWER_IS_BETTER or word.endswith(("loss", "error")) for word in words)


def _metric_rows(versions: list[ModelVersion]) -> list[dict]:
    rows = []
    for key in sorted({key for v in versions for key in (v.metrics or {})}):
        values = [(v.metrics or {}).get(key) for v in versions]
        numbers = [value for value in values if isinstance(value, int | float)]
        lower = lower_is_better(key)
        differs = not _same(values)
        best = (min(numbers) if lower else max(numbers)) if numbers and differs else None
        base = values[0]
        cells = []
        for value in values:
            delta = value - base if isinstance(value, int | float) and isinstance(base, int | float) else None
            cells.append({"value": value, "best": best is not None and value == best, "delta": delta})
        rows.append({"key": key, "cells": cells, "differs": differs, "lower_is_better": lower})
    return rows


def _param_rows(versions: list[ModelVersion]) -> list[dict]:
    rows = []
    for key in sorted({key for v in versions for key in (v.params or {})}):
        values = [(v.params or {}).get(key) for v in versions]
        rows.append({"key": key, "cells": [{"value": value} for value in values], "differs": not _same(values)})
    return rows


def _detail_rows(versions: list[ModelVersion]) -> list[dict]:
    fields = [
        ("Stage", "stage"),
        ("Framework", "framework"),
        ("Source", "source"),
        ("Run ID", "run_id"),
        ("Dataset", "dataset"),
        ("Code version", "code_version"),
    ]
    rows = []
    for label, attr in fields:
        values = [getattr(v, attr) for v in versions]
        rows.append({"key": label, "cells": [{"value": value} for value in values], "differs": not _same(values)})
    return rows


@role_required(Role.VIEWER)
def compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two or more versions side by side (?v=1&v=2...): details, parameters, metrics and a chart."""
    model = _model_or_404(name)
    numbers: list[int] = []
    problems = []
    for raw in request.GET.getlist("v"):
        if raw.strip().isdigit() and int(raw) > 0:
            if int(raw) not in numbers:
                numbers.append(int(raw))
        else:
            problems.append(f"“{raw}” is not a version number.")
    if len(numbers) > MAX_COMPARED:
        problems.append(f"Compare at most {MAX_COMPARED} versions at a time; showing the first {MAX_COMPARED}.")
        numbers = numbers[:MAX_COMPARED]
    versions = list(ModelVersion.objects.filter(model=model, version__in=numbers).order_by("version"))
    missing = sorted(set(numbers) - {v.version for v in versions})
    if missing:
        problems.append(f"{model.name} has no version {', '.join(map(str, missing))}.")
    only_differences = request.GET.get("diff") == "1"
    context = {
        "model": model,
        "versions": versions,
        "problems": problems,
        "only_differences": only_differences,
        "query_all": query_without(request, "diff"),
        "choices": list(
            ModelVersion.objects.filter(model=model).order_by("-version").values_list("version", "stage")[:100]
        ),
        "selected": {v.version for v in versions},
    }
    if len(versions) >= 2:
        for version in versions:
            version.model = model
        details, params, metrics = _detail_rows(versions), _param_rows(versions), _metric_rows(versions)
        context.update(
            {
                "details": [r for r in details if r["differs"]] if only_differences else details,
                "params": [r for r in params if r["differs"]] if only_differences else params,
                "metrics": [r for r in metrics if r["differs"]] if only_differences else metrics,
                "differing": sum(r["differs"] for r in params + metrics),
                "chart": figure_data(charts.compare_metrics(versions)) if metrics else None,
            }
        )
    return render(request, "mlops/compare.html", context)


# --- Approvals -----------------------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def approvals(request: HttpRequest) -> HttpResponse:
    """The queue of pending promotion requests (oldest first) and the latest decisions."""
    pending = Paginator(
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
        .select_related("version__model", "requested_by")
        .order_by("requested_at", "id"),
        50,
    ).get_page(request.GET.get("page"))
    model_ids = {r.version.model_id for r in pending.object_list}
    production: dict[int, list[int]] = {}
    for model_id, number in (
        ModelVersion.objects.filter(model_id__in=model_ids, stage=Stage.PRODUCTION)
        .order_by("version")
        .values_list("model_id", "version")
    ):
        production.setdefault(model_id, []).append(number)
    for approval in pending.object_list:
        approval.current_production = production.get(approval.version.model_id, [])
    decided = (
        ApprovalRequest.objects.exclude(status=ApprovalRequest.Status.PENDING)
        .select_related("version__model", "requested_by", "decided_by")
        .order_by("-decided_at", "-id")[:50]
    )
    return render(
        request,
        "mlops/approvals.html",
        {"page": pending, "decided": decided, "decision_form": DecisionForm(), "query": ""},
    )


@require_POST
@role_required(Role.OPERATOR)
def approval_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """approve / reject (admins; a rejection says why) / cancel (the requester or an admin)."""
    if action in ("approve", "reject"):
        require_role(request, Role.ADMIN, "Approving or rejecting a promotion")
    approval = get_object_or_404(ApprovalRequest.objects.select_related("version__model"), pk=pk)
    form = DecisionForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    version = approval.version
    try:
        if action == "approve":
            services.approve(request=approval, actor=request.user, comment=comment)
            version.refresh_from_db(fields=["stage"])
            what = (
                f"version {version.version} is now in {version.stage}"
                if not approval.alias
                else (f"alias @{approval.alias} points at version {version.version}")
            )
            messages.success(request, f"Approved request #{approval.pk}: {version.model.name} {what}.")
        elif action == "reject":
            services.reject(request=approval, actor=request.user, comment=comment)
            messages.success(request, f"Rejected request #{approval.pk}.")
        elif action == "cancel":
            services.cancel_request(request=approval, actor=request.user)
            messages.success(request, f"Cancelled request #{approval.pk}.")
        else:
            raise Http404(f"Unknown action {action!r}.")
    except services.NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except services.RegistryError as exc:
        messages.error(request, f"Request #{approval.pk}: {exc.message}")
    return redirect(safe_next(request, reverse("mlops:approvals")))


# --- Webhooks ------------------------------------------------------------------------------------------------------

RECENT_DELIVERIES = 10


@never_cache  # it may show a secret
@role_required(Role.ADMIN)
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Registry webhooks with their latest deliveries; a new webhook's secret is shown once."""
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        model = None
        if data["model"]:
            model = RegisteredModel.objects.filter(name=data["model"].strip()).first()
            if model is None:
                form.add_error("model", f"There is no model named {data['model']}.")
        if not form.errors:
            try:
                hook, secret = webhooks.create_webhook(
                    name=data["name"], url=data["url"], events=data["events"], model=model, actor=request.user
                )
            except webhooks.WebhookInvalid as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                request.session["mlops.webhook-secret"] = [hook.pk, secret]
                messages.success(request, f"Webhook {hook.name} created.")
                return redirect(reverse("mlops:webhooks") + f"#webhook-{hook.pk}")
    hooks = Webhook.objects.select_related("model").prefetch_related(
        Prefetch(
            "deliveries",
            queryset=WebhookDelivery.objects.order_by("-created_at", "-id")[:RECENT_DELIVERIES],
            to_attr="recent_deliveries",
        )
    )
    hooks = list(hooks)
    labels = dict(Webhook.Event.choices)
    for hook in hooks:
        hook.event_labels = [labels.get(event, event) for event in hook.events]
    secret = request.session.pop("mlops.webhook-secret", None)
    return render(
        request,
        "mlops/webhooks.html",
        {
            "form": form,
            "hooks": hooks,
            "new_secret": {"pk": secret[0], "secret": secret[1]} if secret else None,
        },
        status=400 if form.errors else 200,
    )


@require_POST
@role_required(Role.ADMIN)
def webhook_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    hook = get_object_or_404(Webhook, pk=pk)
    if action == "toggle":
        webhooks.update_webhook(webhook=hook, actor=request.user, enabled=not hook.enabled)
        messages.success(request, f"Webhook {hook.name} {'enabled' if hook.enabled else 'disabled'}.")
    elif action == "delete":
        webhooks.delete_webhook(webhook=hook, actor=request.user)
        messages.success(request, f"Webhook {hook.name} deleted.")
    else:
        raise Http404(f"Unknown action {action!r}.")
    return redirect("mlops:webhooks")
