"""Version pages of a prompt: a new version (messages editor), one version (messages, preview, runs), the diff
of two versions side by side."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from opsportal.accounts.roles import Role, require_role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import add_service_error

from .. import services, templating, trace_queries
from ..compare import side_by_side
from ..forms import MessageFormSet, PreviewForm, VersionForm
from ..models import DatasetItem, Prompt, PromptVersion, RunColumn
from .common import editor_rows, posted_initial, row_error
from .prompts import version_or_404, whole_path_prompt

MESSAGE_FIELDS = ("role", "content")
# Where a version's parameter problems are shown on the version form.
PARAMETER_FIELDS = {
    "parameters": "other_parameters",
    "parameters.temperature": "temperature",
    "parameters.max_tokens": "max_tokens",
    "parameters.response_format": "response_format",
}


def _version_editor(request: HttpRequest) -> tuple[VersionForm, object]:
    """The version form and its messages after an editor action (add or remove a message), unvalidated."""
    editor = request.POST["editor"]
    rows = editor_rows(request.POST, "messages", MESSAGE_FIELDS)
    if editor == "add-message":
        rows.append({"role": "user" if not rows or rows[-1]["role"] != "user" else "assistant", "content": ""})
    elif editor.startswith("remove-message-") and editor[15:].isdigit() and len(rows) > 1:
        rows.pop(min(int(editor[15:]), len(rows) - 1))
    return VersionForm(initial=posted_initial(request)), MessageFormSet(prefix="messages", initial=rows)


def _create_version(request: HttpRequest, prompt: Prompt, form: VersionForm, formset) -> PromptVersion | None:
    """Save the posted version; None with the problems on the form or the message rows."""
    if not (form.is_valid() and formset.is_valid()):
        return None
    messages_ = [{"role": f.cleaned_data["role"], "content": f.cleaned_data["content"]} for f in formset]
    try:
        return services.create_version(prompt=prompt, actor=request.user, messages=messages_,
                                       model=form.cleaned_data["model"], parameters=form.parameters(),
                                       commit_message=form.cleaned_data["commit_message"])  # fmt: skip
    except ServiceError as exc:
        if not row_error(formset.forms, exc, "messages"):
            add_service_error(form, exc, PARAMETER_FIELDS)
        return None


@role_required(Role.VIEWER)
def prompt_new_version(request: HttpRequest, name: str) -> HttpResponse:
    """A new version, prefilled from the latest one (or ?from=N): messages editor, model, parameters, message."""
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        return whole_path_prompt(request)
    require_role(request, Role.OPERATOR, "Creating a prompt version")
    versions = PromptVersion.objects.filter(prompt=prompt)
    base = None
    if request.GET.get("from", "").isdigit():
        base = versions.filter(version=int(request.GET["from"])).first()
    base = base or versions.order_by("-version").first()
    status = 200
    if request.method == "POST" and request.POST.get("editor"):
        form, formset = _version_editor(request)
    elif request.method == "POST":
        form = VersionForm(request.POST)
        formset = MessageFormSet(request.POST, prefix="messages")
        version = _create_version(request, prompt, form, formset)
        if version is not None:
            messages.success(request, f"Saved {prompt.name} v{version.version}.")
            return redirect(version)
        status = 400
    else:
        initial_rows = [dict(m) for m in (base.messages if base else [{"role": "user", "content": ""}])]
        form = VersionForm(initial=VersionForm.initial_for(base))
        formset = MessageFormSet(prefix="messages", initial=initial_rows)
    context = {"prompt": prompt, "base": base, "form": form, "formset": formset}
    return render(request, "llmops/prompt_version_form.html", context, status=status)


@role_required(Role.VIEWER)
def prompt_version(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """A version: its messages with placeholders marked, parameters, labels, the runs that used it, a preview."""
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        return whole_path_prompt(request)
    version = version_or_404(prompt, version)
    version.prompt = prompt
    preview_form = PreviewForm(request.GET if "variables" in request.GET else None)
    preview, preview_error = None, ""
    item_id = request.GET.get("item", "")
    example = None
    if item_id.isdigit():
        example = DatasetItem.objects.filter(pk=int(item_id)).first()
        if example is not None:
            preview_form = PreviewForm(initial={"variables": json.dumps(example.input, indent=2, ensure_ascii=False)})
            variables = example.input
    if preview_form.is_bound and preview_form.is_valid():
        variables = preview_form.cleaned_data["variables"]
        example = True
    if example:
        try:
            preview = templating.render(version.messages, variables)
        except templating.TemplateError as exc:
            preview_error = str(exc)
    numbers = list(PromptVersion.objects.filter(prompt=prompt).order_by("version").values_list("version", flat=True))
    position = numbers.index(version.version)
    columns = (
        RunColumn.objects.filter(prompt_version=version)
        .select_related("run__dataset", "model__provider")
        .order_by("-run__created_at", "position")[:50]
    )
    sample_items = []
    if prompt.gate_dataset_id:
        sample_items = list(DatasetItem.objects.filter(dataset_id=prompt.gate_dataset_id).order_by("id")[:5])
    context = {
        "prompt": prompt,
        "version": version,
        "labels": list(version.labels.select_related("version").order_by("name")),
        "previous": numbers[position - 1] if position > 0 else None,
        "next": numbers[position + 1] if position + 1 < len(numbers) else None,
        "latest": numbers[-1],
        "parameters": sorted((version.parameters or {}).items()),
        "columns": columns,
        "preview_form": preview_form,
        "preview": preview,
        "preview_error": preview_error,
        "sample_items": sample_items,
        "api_path": f"/api/v1/llmops/prompts/{prompt.name}/",
        "production": trace_queries.production_quality(version),
    }
    return render(request, "llmops/prompt_version.html", context)


@role_required(Role.VIEWER)
def prompt_diff(request: HttpRequest, name: str) -> HttpResponse:
    """Two versions side by side: each message, the model and the parameters, changed lines and words marked."""
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        return whole_path_prompt(request)
    numbers = list(PromptVersion.objects.filter(prompt=prompt).order_by("version").values_list("version", flat=True))
    if not numbers:
        raise Http404(f"{prompt.name} has no versions.")

    def number(key: str, default: int) -> int:
        value = request.GET.get(key, "")
        return int(value) if value.isdigit() else default

    right_number = number("b", numbers[-1])
    left_default = max([n for n in numbers if n < right_number], default=right_number)
    left_number = number("a", left_default)
    left, right = version_or_404(prompt, left_number), version_or_404(prompt, right_number)
    sections = []
    count = max(len(left.messages), len(right.messages))
    changed = 0
    for index in range(count):
        old = left.messages[index] if index < len(left.messages) else None
        new = right.messages[index] if index < len(right.messages) else None
        rows = side_by_side(old["content"] if old else "", new["content"] if new else "")
        differs = old != new
        changed += differs
        sections.append(
            {
                "title": f"Message {index + 1}",
                "left_role": old["role"] if old else None,
                "right_role": new["role"] if new else None,
                "rows": rows,
                "differs": differs,
            }
        )
    settings_left = json.dumps({"model": left.model, "parameters": left.parameters}, indent=2, sort_keys=True)
    settings_right = json.dumps({"model": right.model, "parameters": right.parameters}, indent=2, sort_keys=True)
    settings_differ = settings_left != settings_right
    changed += settings_differ
    sections.append(
        {
            "title": "Model and parameters",
            "left_role": None,
            "right_role": None,
            "rows": side_by_side(settings_left, settings_right),
            "differs": settings_differ,
        }
    )
    context = {
        "prompt": prompt,
        "left": left,
        "right": right,
        "numbers": numbers,
        "sections": sections,
        "changed": changed,
    }
    return render(request, "llmops/prompt_diff.html", context)
