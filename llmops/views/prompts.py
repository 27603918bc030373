"""Prompt pages: the list (search, create), a prompt (versions, labels, release gate, history), a new version,
a version (messages, preview), and the diff of two versions.

Prompt names may hold '/', so a sub-page URL can be the page of a prompt whose name ends like the sub-page
("x/diff"): the sub-page views fall back to the prompt named by the whole path.
"""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.db.models import Exists, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from opsportal.accounts.roles import Role, has_role, require_role, role_required
from opsportal.errors import ServiceError
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.actions import PageAction, add_service_error, dispatch
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without

from .. import services
from ..forms import LABEL_SUGGESTIONS, GateForm, LabelForm, PromptCreateForm, PromptDetailsForm, PromptSearchForm
from ..models import EvalRun, Prompt, PromptLabel, PromptVersion, RunColumn
from .common import PAGE_SIZE, prompts_with_stats

HISTORY_PAGE_SIZE = 30


def version_or_404(prompt: Prompt, number: int) -> PromptVersion:
    try:
        return services.get_version(prompt=prompt, number=number)
    except ServiceError as exc:
        raise Http404(exc.message) from None


def whole_path_prompt(request: HttpRequest) -> HttpResponse:
    """A sub-page URL that is really the page of a prompt whose name ends like a sub-page ("x/diff")."""
    prefix = reverse("llmops:prompts")
    path = request.path_info
    name = path[len(prefix) :].rstrip("/") if path.startswith(prefix) else ""
    prompt = Prompt.objects.filter(name=name).first() if name else None
    if prompt is None or request.method != "GET":
        raise Http404(f"No prompt named {name!r}.")
    return _prompt_page(request, prompt)


def _create_prompt(request: HttpRequest, form: PromptCreateForm) -> Prompt | None:
    """Create the prompt the form describes; None with the problem on the form."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        return services.create_prompt(name=data["name"].strip(), description=data["description"],
                                      messages=form.messages(), model=data["model"], actor=request.user)  # fmt: skip
    except ServiceError as exc:
        if exc.field.startswith("messages["):
            # messages[0] is the system message when there is one, else the user message.
            first = exc.field.startswith("messages[0]")
            form.add_error("system" if first and data["system"].strip() else "user", str(exc))
        else:
            add_service_error(form, exc)
        return None


@role_required(Role.VIEWER)
def prompt_list(request: HttpRequest) -> HttpResponse:
    """Prompts with their labels and latest scores; search by name or description; operators create them."""
    create_form = PromptCreateForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Creating a prompt")
        create_form = PromptCreateForm(request.POST, prefix="new")
        prompt = _create_prompt(request, create_form)
        if prompt is not None:
            messages.success(request, f"Prompt {prompt.name} created with version 1.")
            return redirect(prompt)
    search = PromptSearchForm(request.GET)
    search.is_valid()
    q = (search.cleaned_data.get("q") or "").strip()
    label = (search.cleaned_data.get("label") or "").strip()
    prompts = Prompt.objects.order_by("name")
    if q:
        prompts = prompts.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if label:
        prompts = prompts.filter(Exists(PromptLabel.objects.filter(prompt=OuterRef("pk"), name=label)))
    page = Paginator(prompts_with_stats(prompts), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "search": search,
        "page": page,
        "query": query_without(request, "page"),
        "create_form": create_form,
        "label_names": list(PromptLabel.objects.values_list("name", flat=True).distinct().order_by("name")),
    }
    if request.method == "POST":
        return render(request, "llmops/prompt_list.html", context, status=400)
    return render_page_or_partial(request, "llmops/prompt_list.html", "llmops/_prompt_table.html", context)


def _gate_results(prompt: Prompt, version_ids: list[int]) -> dict[int, float | None]:
    """Per version: the best pass rate of its finished runs on the gate dataset (one query)."""
    if not prompt.has_gate or not version_ids:
        return {}
    rows = (
        RunColumn.objects.filter(
            prompt_version_id__in=version_ids,
            run__dataset_id=prompt.gate_dataset_id,
            run__status=EvalRun.Status.COMPLETED,
        )
        .values("prompt_version_id")
        .annotate(best=Coalesce(Max("pass_rate"), 0.0))
        .order_by()
    )
    return {row["prompt_version_id"]: row["best"] for row in rows}


def _version_numbers(prompt: Prompt, newest_first: bool = True) -> list[int]:
    order = "-version" if newest_first else "version"
    return list(PromptVersion.objects.filter(prompt=prompt).order_by(order).values_list("version", flat=True))


def _prompt_page(request: HttpRequest, prompt: Prompt, status: int = 200, **forms) -> HttpResponse:
    version_runs = RunColumn.objects.filter(prompt_version=OuterRef("pk"), run__status=EvalRun.Status.COMPLETED)
    version_runs = version_runs.order_by(F("run__finished_at").desc(nulls_last=True), "-run_id", "position")
    versions = (
        PromptVersion.objects.filter(prompt=prompt)
        .select_related("author")
        .annotate(
            run_pass_rate=Subquery(version_runs.values("pass_rate")[:1]),
            run_id=Subquery(version_runs.values("run_id")[:1]),
        )
        .order_by("-version")
    )
    page = Paginator(versions, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    labels = list(PromptLabel.objects.filter(prompt=prompt).select_related("version").order_by("name"))
    by_version = defaultdict(list)
    for label in labels:
        by_version[label.version_id].append(label.name)
    gate = _gate_results(prompt, [v.pk for v in page.object_list])
    for version in page.object_list:
        version.label_names = by_version.get(version.pk, [])
        version.gate_rate = gate.get(version.pk)
        version.gate_ok = (
            version.gate_rate is not None and version.gate_rate >= prompt.gate_min_pass_rate
            if prompt.has_gate
            else None
        )
    numbers = _version_numbers(prompt)
    is_admin = has_role(request.user, Role.ADMIN)
    gate_initial = {
        "gate_dataset": prompt.gate_dataset_id,
        "gate_min_pass_rate": round(prompt.gate_min_pass_rate * 100, 2)
        if prompt.gate_min_pass_rate is not None
        else None,
    }
    context = {
        "prompt": prompt,
        "page": page,
        "latest": numbers[0] if numbers else None,
        "labels": labels,
        "label_form": forms.get("label_form")
        or LabelForm(
            prefix="label", versions=numbers, is_admin=is_admin, initial={"version": numbers[0] if numbers else None}
        ),
        "gate_form": forms.get("gate_form") or GateForm(prefix="gate", initial=gate_initial),
        "details_form": forms.get("details_form")
        or PromptDetailsForm(prefix="details", initial={"description": prompt.description}),
        "label_suggestions": LABEL_SUGGESTIONS,
        "moves": list(prompt.label_moves.select_related("actor")[:20]),
        "gate_refusal": forms.get("gate_refusal"),
        "runs": EvalRun.objects.filter(columns__prompt_version__prompt=prompt)
        .select_related("dataset")
        .distinct()
        .order_by("-created_at")[:10],
    }
    return render(request, "llmops/prompt_detail.html", context, status=status)


@role_required(Role.VIEWER)
def prompt_detail(request: HttpRequest, name: str) -> HttpResponse:
    prompt = Prompt.objects.select_related("gate_dataset", "created_by").filter(name=name).first()
    if prompt is None:
        raise Http404(f"No prompt named {name!r}.")
    return _prompt_page(request, prompt)


class GateRefusal(Exception):
    """The release gate refused a label move: the page shows why above the form (409), not as a form error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _move_label(request: HttpRequest, prompt: Prompt, data: dict) -> PromptLabel:
    version = services.get_version(prompt=prompt, number=data["version"])
    try:
        return services.move_label(prompt=prompt, label=data["label"], version=version, actor=request.user,
                                   override=data.get("override", False), reason=data.get("reason", ""))  # fmt: skip
    except (services.GateRefused, services.NotAllowed) as exc:
        raise GateRefusal(exc.message) from None


def _label_moved(prompt: Prompt, row: PromptLabel, data: dict) -> str:
    text = f"@{data['label']} now points at v{row.version.version}."
    overridden = data.get("override") and data["label"] == services.PRODUCTION
    if overridden and prompt.label_moves.filter(gate_overridden=True, to_version=row.version.version).exists():
        text += " The release gate was overridden; the reason is in the history."
    return text


def _delete_label(request: HttpRequest, prompt: Prompt, data: dict) -> str:
    label = request.POST.get("label", "")
    services.delete_label(prompt=prompt, label=label, actor=request.user)
    return label


def _back_to_prompt(prompt: Prompt, result: object) -> str:
    return prompt.get_absolute_url()


def _prompt_actions(request: HttpRequest, prompt: Prompt) -> dict[str, PageAction]:
    """The prompt page's actions; the label form offers this prompt's versions (and the override to admins)."""
    is_admin = has_role(request.user, Role.ADMIN)
    numbers = _version_numbers(prompt)
    return {
        "label": PageAction(
            form=lambda data, prefix=None: LabelForm(data, prefix="label", versions=numbers, is_admin=is_admin),
            run=_move_label,
            success=_label_moved,
            next=_back_to_prompt,
        ),
        "delete-label": PageAction(
            run=_delete_label, success=lambda prompt, label, data: f"Label @{label} removed.", next=_back_to_prompt
        ),
        "gate": PageAction(
            form=GateForm,
            prefix="gate",
            role=Role.ADMIN,
            why="Changing the release gate",
            run=lambda request, prompt, data: services.update_prompt(
                prompt=prompt, actor=request.user, **GateForm.values(data)
            ),
            success=lambda prompt, result, data: (
                "Release gate saved." if prompt.has_gate else "Release gate removed: production moves freely."
            ),
            next=_back_to_prompt,
        ),
        "details": PageAction(
            form=PromptDetailsForm,
            prefix="details",
            run=lambda request, prompt, data: services.update_prompt(
                prompt=prompt, actor=request.user, description=data["description"]
            ),
            success="Description saved.",
            next=_back_to_prompt,
        ),
    }


# Where each action's form is shown again when it is refused.
PROMPT_FORMS = {"label": "label_form", "gate": "gate_form", "details": "details_form"}


@role_required(Role.VIEWER)
def prompt_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """label / delete-label / gate / details (operators; the gate: admins)."""
    prompt = Prompt.objects.select_related("gate_dataset", "created_by").filter(name=name).first()
    if request.method != "POST" or prompt is None:
        return whole_path_prompt(request)
    require_role(request, Role.OPERATOR, "Changing a prompt")
    actions = _prompt_actions(request, prompt)

    def invalid(form) -> HttpResponse:
        prompt.refresh_from_db()  # a refused gate change may have changed the instance
        return _prompt_page(request, prompt, 400, **{PROMPT_FORMS[action]: form})

    try:
        return dispatch(request, actions, action, prompt, invalid=invalid)
    except GateRefusal as refusal:
        form = actions["label"].form(request.POST)
        form.is_valid()
        return _prompt_page(request, prompt, 409, label_form=form, gate_refusal=refusal.message)
