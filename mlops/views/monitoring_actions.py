"""The Monitoring tab's forms: monitors, reference data, schema, checks, retraining hooks and batch uploads.

Each action binds its form, calls the monitoring service and redirects to the tab with a message; a form
with a problem (the form's or the service's, put on the field it names) is shown again, open, with
status 400. The upload forms post through htmx (for their progress bar): a success then answers
`HX-Redirect`, a refusal the page, from which htmx takes the form.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, require_role, role_required
from opsportal.errors import InvalidInput, ServiceError
from opsportal.portal.actions import apply_form

from .. import services
from ..models import ModelVersion, Monitor, MonitorCheck, RegisteredModel, RetrainingHook
from ..monitoring_forms import (
    BatchUploadForm,
    CheckForm,
    EditMonitorForm,
    MonitorForm,
    ReferenceUploadForm,
    RetrainingHookForm,
    SchemaForm,
)
from ..services import monitor_checks, retraining
from .common import model_or_404
from .monitoring_common import monitoring_url
from .monitoring_pages import NEW_SECRET_KEY, monitoring_page

ADMIN_WHY = "Changing monitors, reference data, schemas, checks and retraining hooks"
PARQUET_SUFFIXES = (".parquet", ".pq")


def _monitor(request: HttpRequest, model: RegisteredModel) -> Monitor:
    """The monitor the form is for (`monitor` in the POST), 404 when it is not one of the model's."""
    try:
        pk = int(request.POST.get("monitor", ""))
    except ValueError:
        raise Http404("Which monitor? The form names none.") from None
    monitor = Monitor.objects.filter(model=model, pk=pk).select_related("reference").first()
    if monitor is None:
        raise Http404(f"{model.name} has no monitor #{pk}.")
    monitor.model = model
    return monitor


def _one_of(request: HttpRequest, queryset, key: str, what: str):
    try:
        pk = int(request.POST.get(key, ""))
    except ValueError:
        raise Http404(f"Which {what}? The form names none.") from None
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404(f"No {what} #{pk} here.")
    return obj


def _done(request: HttpRequest, url: str, text: str) -> HttpResponse:
    messages.success(request, text)
    if request.htmx:
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _again(request: HttpRequest, model: RegisteredModel, monitor: Monitor | None, form_name: str, form) -> HttpResponse:
    """The tab again (for this monitor), with the bound form open and its errors."""
    request.GET = request.GET.copy()
    if monitor is not None:
        request.GET["monitor"] = str(monitor.pk)
    return monitoring_page(request, model, 400, **{form_name: form})


def _run(
    request: HttpRequest,
    model: RegisteredModel,
    monitor: Monitor | None,
    form_name: str,
    form: forms.Form,
    change: Callable[[dict], object],
    success: Callable[[object], tuple[str, str]],
) -> HttpResponse:
    done, result = apply_form(form, change)
    if not done:
        return _again(request, model, monitor, form_name, form)
    url, text = success(result)
    return _done(request, url, text)


def _create_monitor(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    form = MonitorForm(request.POST, prefix="monitor")
    return _run(
        request, model, None, "monitor_form", form,
        lambda data: services.create_monitor(model=model, actor=request.user, **data),
        lambda monitor: (monitor.get_absolute_url(), f"Monitor {monitor.name} created. Upload its reference data."),
    )  # fmt: skip


def _edit_monitor(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    form = EditMonitorForm(request.POST, prefix="edit")
    return _run(
        request, model, monitor, "edit_form", form,
        lambda data: services.update_monitor(monitor=monitor, actor=request.user, **data),
        lambda updated: (monitoring_url(model, monitor=monitor.pk), f"Monitor {updated.name} saved."),
    )  # fmt: skip


def _delete_monitor(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    if request.POST.get("confirm", "").strip() != monitor.name:
        messages.error(request, f"Type {monitor.name} exactly to delete this monitor.")
        return redirect(monitoring_url(model, monitor=monitor.pk))
    try:
        services.delete_monitor(monitor=monitor, actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect(monitoring_url(model, monitor=monitor.pk))
    return _done(request, monitoring_url(model), f"Monitor {monitor.name} deleted with its batches and checks.")


def _version(model: RegisteredModel, number: int | None) -> ModelVersion | None:
    if number is None:
        return None
    version = ModelVersion.objects.filter(model=model, version=number).first()
    if version is None:
        raise InvalidInput(f"{model.name} has no version {number}.", field="version")
    return version


def _upload_reference(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    form = ReferenceUploadForm(request.POST, request.FILES, prefix="reference")

    def upload(data: dict):
        upload = data["file"]
        return services.upload_reference(
            monitor=monitor, actor=request.user, file=upload, name=upload.name, version=_version(model, data["version"])
        )

    return _run(
        request, model, monitor, "reference_form", form, upload,
        lambda reference: (
            monitoring_url(model, monitor=monitor.pk),
            f"Reference data {reference.name} ({reference.rows:,} rows) is now what {monitor.name} compares against.",
        ),
    )  # fmt: skip


def _schema(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    schema = monitor.schema or (monitor.reference.schema if monitor.reference else {}) or {}
    form = SchemaForm(request.POST, prefix="schema", schema=schema)
    return _run(
        request, model, monitor, "schema_form", form,
        lambda data: services.update_schema(monitor=monitor, actor=request.user, types=form.types()),
        lambda updated: (monitoring_url(model, monitor=monitor.pk), "Column types saved; reference re-profiled."),
    )  # fmt: skip


def _check_form(request: HttpRequest, model: RegisteredModel, monitor: Monitor, prefix: str) -> CheckForm:
    schema = monitor.schema or (monitor.reference.schema if monitor.reference else {}) or {}
    hooks = list(RetrainingHook.objects.filter(model=model).order_by("name"))
    auto_id = f"id_check{request.POST.get('check', '')}_%s"
    return CheckForm(request.POST, prefix=prefix, auto_id=auto_id, columns=list(schema), model=model, hooks=hooks)


def _save_check(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    existing = None
    if request.POST.get("check"):
        existing = _one_of(request, MonitorCheck.objects.filter(monitor=monitor), "check", "check")
    form = _check_form(request, model, monitor, "check")
    name = "edit_check" if existing else "check_form"
    if existing is not None:
        form.check_pk = existing.pk
    return _run(
        request, model, monitor, name, form,
        lambda data: monitor_checks.save_check(monitor=monitor, actor=request.user, check=existing, **data),
        lambda check: (
            monitoring_url(model, monitor=monitor.pk) + f"#check-{check.pk}",
            f"Check {check.name} {'saved' if existing else 'added'}.",
        ),
    )  # fmt: skip


def _delete_check(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    check = _one_of(request, MonitorCheck.objects.filter(monitor=monitor), "check", "check")
    monitor_checks.delete_check(check=check, actor=request.user)
    return _done(request, monitoring_url(model, monitor=monitor.pk) + "#checks-h", f"Check {check.name} deleted.")


def _monitor_or_none(request: HttpRequest, model: RegisteredModel) -> Monitor | None:
    return _monitor(request, model) if request.POST.get("monitor") else None


def _save_hook(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor_or_none(request, model)
    existing = None
    if request.POST.get("hook"):
        existing = _one_of(request, RetrainingHook.objects.filter(model=model), "hook", "retraining hook")
    form = RetrainingHookForm(request.POST, prefix="hook", auto_id=f"id_hook{request.POST.get('hook', '')}_%s")
    if existing is not None:
        form.hook_pk = existing.pk

    def save(data: dict) -> RetrainingHook:
        # An empty secret or token field keeps the stored one: they are never sent back to the browser.
        fields = {k: v for k, v in data.items() if not (k in ("secret", "token") and not v and existing)}
        return retraining.save_retraining_hook(model=model, actor=request.user, hook=existing, **fields)

    def said(hook: RetrainingHook) -> tuple[str, str]:
        if getattr(hook, "new_secret", ""):
            request.session[NEW_SECRET_KEY] = [hook.pk, hook.new_secret]
        url = monitoring_url(model, monitor=monitor.pk if monitor else None) + f"#hook-{hook.pk}"
        kept = " Its secret and token are stored encrypted and never shown again." if data_has_secret(form) else ""
        return url, f"Retraining hook {hook.name} {'saved' if existing else 'added'}.{kept}"

    return _run(request, model, monitor, "edit_hook" if existing else "hook_form", form, save, said)


def data_has_secret(form: RetrainingHookForm) -> bool:
    return bool(form.cleaned_data.get("secret") or form.cleaned_data.get("token"))


def _delete_hook(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor_or_none(request, model)
    hook = _one_of(request, RetrainingHook.objects.filter(model=model), "hook", "retraining hook")
    retraining.delete_retraining_hook(hook=hook, actor=request.user)
    url = monitoring_url(model, monitor=monitor.pk if monitor else None) + "#hooks-h"
    return _done(request, url, f"Retraining hook {hook.name} deleted.")


def _test_hook(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor_or_none(request, model)
    hook = _one_of(request, RetrainingHook.objects.filter(model=model), "hook", "retraining hook")
    url = monitoring_url(model, monitor=monitor.pk if monitor else None) + f"#hook-{hook.pk}"
    try:
        call = retraining.test_retraining_hook(hook=hook, actor=request.user)
    except ServiceError as exc:
        messages.error(request, f"Test call of {hook.name} not sent: {exc}")
        return redirect(url)
    answer = f"HTTP {call.response_code}" if call.response_code else (call.last_error or "no answer")
    if call.status == "sent":
        messages.success(request, f"Test call of {hook.name} answered {answer}.")
    else:
        messages.error(request, f"Test call of {hook.name} failed: {answer}.")
    return redirect(url)


def _upload_batch(request: HttpRequest, model: RegisteredModel) -> HttpResponse:
    monitor = _monitor(request, model)
    form = BatchUploadForm(request.POST, request.FILES, prefix="batch")

    def record(data: dict):
        upload = data["file"]
        table = services.table_from_upload(upload, upload.name)
        source = "parquet" if PurePath(upload.name).suffix.lower() in PARQUET_SUFFIXES else "csv"
        return services.record_batch(
            monitor=monitor, table=table, source=source, name=data["name"] or upload.name, actor=request.user
        )

    return _run(
        request, model, monitor, "batch_form", form, record,
        lambda batch: (
            batch.get_absolute_url(),
            f"Batch #{batch.pk}: {batch.rows:,} rows, "
            + (f"drift in {len(batch.drifted_columns)} column(s)." if batch.drifted_columns else "no column drifted."),
        ),
    )  # fmt: skip


# action -> (role needed, handler)
ACTIONS: dict[str, tuple[Role, Callable[[HttpRequest, RegisteredModel], HttpResponse]]] = {
    "create-monitor": (Role.ADMIN, _create_monitor),
    "edit-monitor": (Role.ADMIN, _edit_monitor),
    "delete-monitor": (Role.ADMIN, _delete_monitor),
    "reference": (Role.ADMIN, _upload_reference),
    "schema": (Role.ADMIN, _schema),
    "save-check": (Role.ADMIN, _save_check),
    "delete-check": (Role.ADMIN, _delete_check),
    "save-hook": (Role.ADMIN, _save_hook),
    "delete-hook": (Role.ADMIN, _delete_hook),
    "test-hook": (Role.ADMIN, _test_hook),
    "upload-batch": (Role.OPERATOR, _upload_batch),
}


@require_POST
@role_required(Role.OPERATOR)
def monitoring_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """One form of the Monitoring tab (`ACTIONS`): admins configure, operators upload batches."""
    model = model_or_404(name)
    if action not in ACTIONS:
        raise Http404(f"Unknown action {action!r}.")
    role, handler = ACTIONS[action]
    if role is not Role.OPERATOR:
        require_role(request, role, ADMIN_WHY)
    return handler(request, model)
