"""LLMOps pages: the overview, providers and prices, prompts (versions, labels, release gate, diff), datasets
(items, import with preview, export), evaluation runs (live progress, results, charts) and run comparison.

Every change goes through `llmops.services`; an `LLMOpsError` is shown next to the field it names (or as a
message), and a successful POST redirects.
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import json
import re
import secrets
import zlib
from collections import defaultdict
from collections.abc import Iterator

from django.contrib import messages
from django.core.paginator import Paginator as ListPaginator
from django.db.models import Count, Exists, F, IntegerField, Max, OuterRef, Prefetch, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, has_role, require_role, role_required
from opsportal.audit.models import AuditEntry
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.charts import figure_data
from opsportal.portal.htmx import render_page_or_partial, wants_partial
from opsportal.portal.requests import on_site, query_without, safe_next

from . import charts, engine, importers, services, templating
from .forms import (
    LABEL_SUGGESTIONS,
    AddModelForm,
    DatasetForm,
    DeleteConfirmForm,
    GateForm,
    ImportForm,
    ItemForm,
    LabelForm,
    MessageFormSet,
    ModelPriceForm,
    PreviewForm,
    PriceForm,
    PromptCreateForm,
    PromptDetailsForm,
    PromptSearchForm,
    ProviderForm,
    RunFilterForm,
    RunForm,
    ScorerForm,
    ScorerFormSet,
    ScoreRunForm,
    TestConnectionForm,
    VersionForm,
)
from .models import (
    Dataset,
    DatasetItem,
    EvalRun,
    LLMModel,
    PriceEntry,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
    RunColumn,
    RunItem,
    RunResult,
)

PAGE_SIZE = 50
ITEMS_PAGE_SIZE = 50
RESULTS_PAGE_SIZE = 25
COMPARE_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 30
PREVIEW_ROWS = 20
SHOWN_IMPORT_ERRORS = 100
# Charts of a run are drawn from at most this many results per column (the tables count every result).
CHART_SAMPLE = 20_000
# Texts longer than this are compared line by line only: word diffs of huge outputs cost too much.
WORD_DIFF_LIMIT = 20_000
TEST_TIMEOUT_SECONDS = 20.0
IMPORT_SESSION_KEY = "llmops.pending-import"
COMPARE_SHOW = {
    "all": "All items",
    "changed": "Changed only",
    "regressions": "Regressions",
    "improvements": "Improvements",
}
RESULT_FILTERS = {"all": "All items", "failed": "Failed only", "errors": "Errors only"}
DIFF_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


# --- Helpers -------------------------------------------------------------------------------------------------------


def _field_of(error_field: str) -> str:
    """The form field a service error names: "parameters.temperature" -> "temperature", "scorers[0]" -> "scorers"."""
    field = error_field.split("[", 1)[0]
    return field.rsplit(".", 1)[-1] if field.startswith("parameters.") else field


def _add_error(form, exc: services.LLMOpsError, fields: dict[str, str] | None = None) -> None:
    """A service's error on the form field it names, else on the form as a whole."""
    field = (fields or {}).get(exc.field, _field_of(exc.field or ""))
    form.add_error(field if field in form.fields else None, exc.message)


def _posted_initial(request: HttpRequest, multiple: tuple[str, ...] = ()) -> dict:
    """The POST as a form's initial data, to show a form again as it was without its errors."""
    return {key: values if key in multiple else values[-1] for key, values in request.POST.lists()}


def _editor_rows(data, prefix: str, fields: tuple[str, ...], limit: int = 50) -> list[dict]:
    """The rows of a formset as posted, for editing the rows (add, remove) before it is submitted."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS") or 0), limit)
    except ValueError:
        total = 0
    return [{name: data.get(f"{prefix}-{index}-{name}", "") for name in fields} for index in range(total)]


def _row_error(forms_: list, exc: services.LLMOpsError, prefix: str) -> bool:
    """Put an error naming a row ("messages[1].content") on that row's field; False when it names no row."""
    match = re.match(rf"^{prefix}\[(\d+)\]\.?([\w.]*)", exc.field or "")
    if not match or int(match.group(1)) >= len(forms_):
        return False
    form = forms_[int(match.group(1))]
    field = (match.group(2) or "").split(".", 1)[0]
    form.add_error(field if field in form.fields else None, exc.message)
    return True


def _word_diff(a: str, b: str) -> tuple[SafeString, SafeString]:
    """Both texts, escaped, with the words only `a` has in <del> and those only `b` has in <ins>."""
    if len(a) + len(b) > WORD_DIFF_LIMIT:
        return escape(a), escape(b)
    left_tokens, right_tokens = DIFF_TOKEN.findall(a), DIFF_TOKEN.findall(b)
    left, right = [], []
    matcher = difflib.SequenceMatcher(None, left_tokens, right_tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = "".join(left_tokens[i1:i2]), "".join(right_tokens[j1:j2])
        if tag == "equal":
            left.append(escape(old))
            right.append(escape(new))
            continue
        if old:
            left.append(format_html("<del>{}</del>", old))
        if new:
            right.append(format_html("<ins>{}</ins>", new))
    return mark_safe("".join(left)), mark_safe("".join(right))  # noqa: S308 - built from escaped parts


def side_by_side(a: str, b: str) -> list[dict]:
    """Rows of a side-by-side line diff: each side's line number, text (changed words marked) and kind."""
    left_lines, right_lines = (a or "").splitlines(), (b or "").splitlines()
    rows = []
    matcher = difflib.SequenceMatcher(None, left_lines, right_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                text = escape(left_lines[i1 + k])
                rows.append({"left_no": i1 + k + 1, "left": text, "left_kind": "same",
                             "right_no": j1 + k + 1, "right": text, "right_kind": "same"})  # fmt: skip
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            old = left_lines[i1 + k] if i1 + k < i2 else None
            new = right_lines[j1 + k] if j1 + k < j2 else None
            if old is not None and new is not None:
                old_html, new_html = _word_diff(old, new)
            else:
                old_html, new_html = escape(old or ""), escape(new or "")
            rows.append(
                {
                    "left_no": i1 + k + 1 if old is not None else None,
                    "left": old_html,
                    "left_kind": "removed" if old is not None else "empty",
                    "right_no": j1 + k + 1 if new is not None else None,
                    "right": new_html,
                    "right_kind": "added" if new is not None else "empty",
                }
            )
    return rows


def _scorer_names(specs: list[dict]) -> list[str]:
    """The names results carry for a run's scorers (as the engine names them), in order, without repeats."""
    from . import scorers

    names = []
    for data in specs:
        try:
            spec = scorers.parse_spec(data)
        except scorers.ScorerConfigError:
            continue
        name = spec.display_name
        if name not in names:
            names.append(name)
    return names


def _scorer_catalogue() -> list:
    from . import scorers

    return list(scorers.SCORERS.values())


# --- Overview ------------------------------------------------------------------------------------------------------


def _latest_column(prompt_ref) -> Subquery:
    return RunColumn.objects.filter(prompt_version__prompt=prompt_ref, run__status=EvalRun.Status.COMPLETED).order_by(
        F("run__finished_at").desc(nulls_last=True), "-run_id", "position"
    )


def _prompts_with_stats(queryset):
    """Prompts with their newest version, labels and the pass rate of their latest finished run (constant queries)."""
    latest = _latest_column(OuterRef("pk"))
    newest = PromptVersion.objects.filter(prompt=OuterRef("pk")).order_by("-version")
    return queryset.annotate(
        latest_version=Subquery(newest.values("version")[:1]),
        latest_pass_rate=Subquery(latest.values("pass_rate")[:1]),
        latest_run_id=Subquery(latest.values("run_id")[:1]),
        latest_column=Subquery(latest.values("label")[:1]),
    ).prefetch_related(Prefetch("labels", queryset=PromptLabel.objects.select_related("version").order_by("name")))


def _runs_queryset():
    columns = RunColumn.objects.filter(run=OuterRef("pk")).order_by().values("run").annotate(n=Count("id"))
    return EvalRun.objects.select_related("dataset", "created_by").annotate(
        column_count=Coalesce(Subquery(columns.values("n"), output_field=IntegerField()), 0)
    )


@role_required(Role.VIEWER)
def index(request: HttpRequest) -> HttpResponse:
    """The app at a glance: figures, charts, prompts with their labels and scores, recent runs."""
    runs = list(_runs_queryset()[:10])
    context = {"runs": runs, "runs_active": any(not run.finished for run in runs)}
    if wants_partial(request):
        return render_page_or_partial(request, "llmops/index.html", "llmops/_recent_runs.html", context)
    summary = services.overview(with_charts=True)
    context.update(
        {
            "app": summary,
            "prompts": list(_prompts_with_stats(Prompt.objects.order_by("-updated_at"))[:10]),
            "prompt_count": Prompt.objects.count(),
            "datasets": Dataset.objects.count(),
            "providers": Provider.objects.filter(enabled=True).count(),
            "models": LLMModel.objects.count(),
            "recent": AuditEntry.objects.filter(app_label="llmops")[:10],
        }
    )
    return render_page_or_partial(request, "llmops/index.html", "llmops/_recent_runs.html", context)


# --- Providers and prices ------------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def provider_list(request: HttpRequest) -> HttpResponse:
    """Providers with their models and prices; admins add providers here."""
    form = ProviderForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.ADMIN, "Adding a provider")
        form = ProviderForm(request.POST, prefix="new")
        if form.is_valid():
            data = form.cleaned_data
            try:
                provider = services.create_provider(
                    actor=request.user,
                    name=data["name"].strip(),
                    base_url=data["base_url"],
                    api_key=data["api_key"],
                    default_headers=data["default_headers"],
                    timeout_seconds=data["timeout_seconds"],
                    max_concurrency=data["max_concurrency"],
                    max_retries=data["max_retries"],
                )
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Provider {provider.name} added. Add its models below.")
                return redirect("llmops:provider", provider.pk)
    providers = Provider.objects.prefetch_related(Prefetch("models", queryset=LLMModel.objects.order_by("name")))
    return render(
        request,
        "llmops/provider_list.html",
        {"providers": providers, "form": form},
        status=400 if form.errors else 200,
    )


def _provider_page(request: HttpRequest, provider: Provider, status: int = 200, **forms) -> HttpResponse:
    models = list(provider.models.order_by("name"))
    for model in models:
        model.price_form = ModelPriceForm(
            prefix=f"price-{model.pk}",
            initial={"input_per_million": model.input_per_million, "output_per_million": model.output_per_million},
        )
        if forms.get("price_model") == model.pk:
            model.price_form = forms["price_form"]
    context = {
        "provider": provider,
        "models": models,
        "edit_form": forms.get("edit_form")
        or ProviderForm(prefix="edit", creating=False, initial=ProviderForm.initial_for(provider)),
        "model_form": forms.get("model_form") or AddModelForm(prefix="model"),
        "test_form": TestConnectionForm(initial={"model_name": models[0].name if models else ""}),
        "delete_form": forms.get("delete_form") or DeleteConfirmForm(prefix="delete"),
        "runs": EvalRun.objects.filter(columns__model__provider=provider).distinct().order_by("-created_at")[:10],
    }
    return render(request, "llmops/provider_detail.html", context, status=status)


@never_cache
@role_required(Role.VIEWER)
def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _provider_page(request, get_object_or_404(Provider, pk=pk))


@require_POST
@role_required(Role.ADMIN)
def provider_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """edit / add-model / price / delete."""
    provider = get_object_or_404(Provider, pk=pk)
    user = request.user
    if action == "edit":
        form = ProviderForm(request.POST, prefix="edit", creating=False)
        if form.is_valid():
            data = dict(form.cleaned_data)
            remove, key = data.pop("remove_api_key"), data.pop("api_key")
            # Empty keeps the stored key; the box removes it; anything typed replaces it.
            api_key = "" if remove else (key or None)
            data["name"] = data["name"].strip()
            try:
                services.update_provider(provider=provider, actor=user, api_key=api_key, **data)
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Provider {provider.name} saved.")
                return redirect("llmops:provider", provider.pk)
        provider.refresh_from_db()
        return _provider_page(request, provider, 400, edit_form=form)
    if action == "add-model":
        form = AddModelForm(request.POST, prefix="model")
        if form.is_valid():
            try:
                model = services.add_model(provider=provider, actor=user, **form.cleaned_data)
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(
                    request,
                    f"Model {model.name} added at ${model.input_per_million} in / ${model.output_per_million} out "
                    "per 1M tokens.",
                )
                return redirect("llmops:provider", provider.pk)
        return _provider_page(request, provider, 400, model_form=form)
    if action == "price":
        model = get_object_or_404(LLMModel, pk=request.POST.get("model", "0") or 0, provider=provider)
        form = ModelPriceForm(request.POST, prefix=f"price-{model.pk}")
        if form.is_valid():
            try:
                services.update_model_prices(model=model, actor=user, **form.cleaned_data)
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Prices of {model.name} saved.")
                return redirect("llmops:provider", provider.pk)
        return _provider_page(request, provider, 400, price_model=model.pk, price_form=form)
    if action == "delete":
        form = DeleteConfirmForm(request.POST, prefix="delete")
        if form.is_valid() and form.cleaned_data["confirm"].strip() == provider.name:
            services.delete_provider(provider=provider, actor=user)
            messages.success(request, f"Provider {provider.name} deleted with its models.")
            return redirect("llmops:providers")
        if form.is_valid():
            form.add_error("confirm", f"Type {provider.name} exactly to delete this provider.")
        return _provider_page(request, provider, 400, delete_form=form)
    raise Http404(f"Unknown action {action!r}.")


@require_POST
@role_required(Role.ADMIN)
def provider_test(request: HttpRequest, pk: int) -> HttpResponse:
    """One small call to the provider; shows the model's answer or the exact error."""
    provider = get_object_or_404(Provider, pk=pk)
    form = TestConnectionForm(request.POST)
    if not form.is_valid():
        ok, text, model_name = False, "Give the model id to call.", ""
    else:
        model_name = form.cleaned_data["model_name"].strip()
        # A page waits for the answer: never as long as a run would.
        provider.timeout_seconds = min(provider.timeout_seconds, TEST_TIMEOUT_SECONDS)
        ok, text = asyncio.run(engine.test_connection(provider, model_name))
    context = {"ok": ok, "text": text, "model_name": model_name, "provider": provider}
    if request.htmx:
        return render(request, "llmops/_test_result.html", context)
    (messages.success if ok else messages.error)(request, f"{provider.name}/{model_name}: {text}")
    return redirect("llmops:provider", provider.pk)


@role_required(Role.VIEWER)
def price_list(request: HttpRequest) -> HttpResponse:
    """The price table new models take their prices from; admins edit it."""
    editing = request.GET.get("edit", "")
    entry = PriceEntry.objects.filter(model_name=editing).first() if editing else None
    initial = {}
    if entry is not None:
        initial = {"model_name": entry.model_name, "input_per_million": entry.input_per_million,
                   "output_per_million": entry.output_per_million}  # fmt: skip
    form = PriceForm(initial=initial)
    if request.method == "POST":
        require_role(request, Role.ADMIN, "Editing the price table")
        form = PriceForm(request.POST)
        if form.is_valid():
            try:
                entry = services.set_price(actor=request.user, **form.cleaned_data)
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Price of {entry.model_name} saved.")
                return redirect("llmops:prices")
    q = request.GET.get("q", "").strip()
    entries = PriceEntry.objects.all()
    if q:
        entries = entries.filter(model_name__icontains=q)
    return render(
        request,
        "llmops/price_list.html",
        {"entries": entries, "form": form, "editing": entry, "q": q},
        status=400 if form.errors else 200,
    )


@require_GET
@role_required(Role.ADMIN)
def price_lookup(request: HttpRequest) -> HttpResponse:
    """The add-model form's price fields, filled from the price table's entry for the typed model id."""
    name = request.GET.get("model-name", "").strip()
    entry = services.price_for(name) if name else None
    initial = {}
    if entry is not None:
        initial = {"input_per_million": entry.input_per_million, "output_per_million": entry.output_per_million}
    form = AddModelForm(prefix="model", initial={"name": name, **initial})
    return render(request, "llmops/_model_prices.html", {"model_form": form, "entry": entry, "looked_up": name})


# --- Prompts -------------------------------------------------------------------------------------------------------


def _prompt_or_404(name: str) -> Prompt:
    try:
        return services.get_prompt(name)
    except services.NotFound as exc:
        raise Http404(exc.message) from None


def _version_or_404(prompt: Prompt, number: int) -> PromptVersion:
    try:
        return services.get_version(prompt, number)
    except services.LLMOpsError as exc:
        raise Http404(exc.message) from None


def _whole_path_prompt(request: HttpRequest) -> HttpResponse:
    """A sub-page URL that is really the page of a prompt whose name ends like a sub-page ("x/diff")."""
    prefix = reverse("llmops:prompts")
    path = request.path_info
    name = path[len(prefix) :].rstrip("/") if path.startswith(prefix) else ""
    prompt = Prompt.objects.filter(name=name).first() if name else None
    if prompt is None or request.method != "GET":
        raise Http404(f"No prompt named {name!r}.")
    return _prompt_page(request, prompt)


@role_required(Role.VIEWER)
def prompt_list(request: HttpRequest) -> HttpResponse:
    """Prompts with their labels and latest scores; search by name or description; operators create them."""
    create_form = PromptCreateForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Creating a prompt")
        create_form = PromptCreateForm(request.POST, prefix="new")
        if create_form.is_valid():
            data = create_form.cleaned_data
            try:
                prompt = services.create_prompt(
                    name=data["name"].strip(),
                    description=data["description"],
                    messages=create_form.messages(),
                    model=data["model"],
                    actor=request.user,
                )
            except services.LLMOpsError as exc:
                field = exc.field or ""
                if field.startswith("messages["):
                    index = int(re.match(r"messages\[(\d+)\]", field).group(1))
                    has_system = bool(data["system"].strip())
                    create_form.add_error("system" if has_system and index == 0 else "user", exc.message)
                else:
                    _add_error(create_form, exc)
            else:
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
    page = Paginator(_prompts_with_stats(prompts), PAGE_SIZE).get_page(request.GET.get("page"))
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
    numbers = list(PromptVersion.objects.filter(prompt=prompt).order_by("-version").values_list("version", flat=True))
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


@role_required(Role.VIEWER)
def prompt_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """label / delete-label / gate / details (operators; the gate: admins)."""
    prompt = Prompt.objects.select_related("gate_dataset", "created_by").filter(name=name).first()
    if request.method != "POST" or prompt is None:
        return _whole_path_prompt(request)
    require_role(request, Role.OPERATOR, "Changing a prompt")
    user = request.user
    numbers = list(PromptVersion.objects.filter(prompt=prompt).order_by("-version").values_list("version", flat=True))
    if action == "label":
        form = LabelForm(request.POST, prefix="label", versions=numbers, is_admin=has_role(user, Role.ADMIN))
        refusal = None
        if form.is_valid():
            data = form.cleaned_data
            try:
                version = services.get_version(prompt, data["version"])
                services.move_label(
                    prompt=prompt,
                    label=data["label"],
                    version=version,
                    actor=user,
                    override=data.get("override", False),
                    reason=data.get("reason", ""),
                )
            except services.GateRefused as exc:
                refusal = exc.message  # shown above the form, where it can't be missed
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                overridden = data.get("override") and data["label"] == services.PRODUCTION
                text = f"@{data['label']} now points at v{version.version}."
                if overridden and prompt.label_moves.filter(gate_overridden=True, to_version=version.version).exists():
                    text += " The release gate was overridden; the reason is in the history."
                messages.success(request, text)
                return redirect(prompt)
        return _prompt_page(request, prompt, 409 if refusal else 400, label_form=form, gate_refusal=refusal)
    if action == "delete-label":
        label = request.POST.get("label", "")
        try:
            services.delete_label(prompt=prompt, label=label, actor=user)
        except services.LLMOpsError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Label @{label} removed.")
        return redirect(prompt)
    if action == "gate":
        require_role(request, Role.ADMIN, "Changing the release gate")
        form = GateForm(request.POST, prefix="gate")
        if form.is_valid():
            try:
                services.update_prompt(prompt=prompt, actor=user, **form.values())
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(
                    request,
                    "Release gate saved." if prompt.has_gate else "Release gate removed: production moves freely.",
                )
                return redirect(prompt)
        prompt.refresh_from_db()
        return _prompt_page(request, prompt, 400, gate_form=form)
    if action == "details":
        form = PromptDetailsForm(request.POST, prefix="details")
        if form.is_valid():
            try:
                services.update_prompt(prompt=prompt, actor=user, description=form.cleaned_data["description"])
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, "Description saved.")
                return redirect(prompt)
        return _prompt_page(request, prompt, 400, details_form=form)
    raise Http404(f"Unknown action {action!r}.")


MESSAGE_FIELDS = ("role", "content")


@role_required(Role.VIEWER)
def prompt_new_version(request: HttpRequest, name: str) -> HttpResponse:
    """A new version, prefilled from the latest one (or ?from=N): messages editor, model, parameters, message."""
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        return _whole_path_prompt(request)
    require_role(request, Role.OPERATOR, "Creating a prompt version")
    versions = PromptVersion.objects.filter(prompt=prompt)
    base = None
    if request.GET.get("from", "").isdigit():
        base = versions.filter(version=int(request.GET["from"])).first()
    base = base or versions.order_by("-version").first()
    status = 200
    if request.method == "POST":
        editor = request.POST.get("editor", "")
        rows = _editor_rows(request.POST, "messages", MESSAGE_FIELDS)
        if editor:
            if editor == "add-message":
                rows.append({"role": "user" if not rows or rows[-1]["role"] != "user" else "assistant", "content": ""})
            elif editor.startswith("remove-message-") and editor[15:].isdigit() and len(rows) > 1:
                rows.pop(min(int(editor[15:]), len(rows) - 1))
            form = VersionForm(initial=_posted_initial(request))
            formset = MessageFormSet(prefix="messages", initial=rows)
        else:
            form = VersionForm(request.POST)
            formset = MessageFormSet(request.POST, prefix="messages")
            if form.is_valid() and formset.is_valid():
                messages_ = [{"role": f.cleaned_data["role"], "content": f.cleaned_data["content"]} for f in formset]
                try:
                    version = services.create_version(
                        prompt=prompt,
                        actor=request.user,
                        messages=messages_,
                        model=form.cleaned_data["model"],
                        parameters=form.parameters(),
                        commit_message=form.cleaned_data["commit_message"],
                    )
                except services.LLMOpsError as exc:
                    if not _row_error(formset.forms, exc, "messages"):
                        _add_error(form, exc, {"parameters": "other_parameters"})
                else:
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
        return _whole_path_prompt(request)
    version = _version_or_404(prompt, version)
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
    }
    return render(request, "llmops/prompt_version.html", context)


@role_required(Role.VIEWER)
def prompt_diff(request: HttpRequest, name: str) -> HttpResponse:
    """Two versions side by side: each message, the model and the parameters, changed lines and words marked."""
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        return _whole_path_prompt(request)
    numbers = list(PromptVersion.objects.filter(prompt=prompt).order_by("version").values_list("version", flat=True))
    if not numbers:
        raise Http404(f"{prompt.name} has no versions.")

    def number(key: str, default: int) -> int:
        value = request.GET.get(key, "")
        return int(value) if value.isdigit() else default

    right_number = number("b", numbers[-1])
    left_default = max([n for n in numbers if n < right_number], default=right_number)
    left_number = number("a", left_default)
    left, right = _version_or_404(prompt, left_number), _version_or_404(prompt, right_number)
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


# --- Datasets ------------------------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def dataset_list(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Creating a dataset")
        form = DatasetForm(request.POST, prefix="new")
        if form.is_valid():
            try:
                dataset = services.create_dataset(
                    name=form.cleaned_data["name"].strip(),
                    description=form.cleaned_data["description"],
                    actor=request.user,
                )
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Dataset {dataset.name} created. Add items or import a file.")
                return redirect(dataset)
    q = request.GET.get("q", "").strip()
    items = DatasetItem.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset").annotate(n=Count("id"))
    runs = EvalRun.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset").annotate(n=Count("id"))
    datasets = Dataset.objects.select_related("created_by").annotate(
        item_count=Coalesce(Subquery(items.values("n"), output_field=IntegerField()), 0),
        run_count=Coalesce(Subquery(runs.values("n"), output_field=IntegerField()), 0),
    )
    if q:
        datasets = datasets.filter(Q(name__icontains=q) | Q(description__icontains=q))
    page = Paginator(datasets.order_by("name"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "llmops/dataset_list.html",
        {"page": page, "form": form, "q": q, "query": query_without(request, "page")},
        status=400 if form.errors else 200,
    )


def _dataset_page(request: HttpRequest, dataset: Dataset, status: int = 200, **forms) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    tag = request.GET.get("tag", "").strip()
    items = dataset.items.order_by("id")
    if q:
        items = items.filter(Q(expected_output__icontains=q) | Q(context__icontains=q))
    if tag:
        items = items.filter(tags__contains=[tag]) if _json_contains_supported() else items.filter(tags__icontains=tag)
    page = Paginator(items, ITEMS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "dataset": dataset,
        "page": page,
        "q": q,
        "tag": tag,
        "query": query_without(request, "page"),
        "item_form": forms.get("item_form") or ItemForm(prefix="item"),
        "delete_form": forms.get("delete_form") or DeleteConfirmForm(prefix="delete"),
        "total": dataset.items.count(),
        "runs": _runs_queryset().filter(dataset=dataset)[:10],
        "gated": list(dataset.gated_prompts.order_by("name")),
    }
    return render(request, "llmops/dataset_detail.html", context, status=status)


def _json_contains_supported() -> bool:
    from django.db import connection

    return connection.features.supports_json_field_contains


@role_required(Role.VIEWER)
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Items (paginated, searchable), add an item, import, export, the runs on this dataset."""
    dataset = get_object_or_404(Dataset.objects.select_related("created_by"), pk=pk)
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Adding an item")
        form = ItemForm(request.POST, prefix="item")
        if form.is_valid():
            try:
                services.add_item(dataset=dataset, actor=request.user, **form.cleaned_data)
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, "Item added.")
                last_page = (dataset.items.count() - 1) // ITEMS_PAGE_SIZE + 1
                return redirect(f"{dataset.get_absolute_url()}?page={last_page}")
        return _dataset_page(request, dataset, 400, item_form=form)
    return _dataset_page(request, dataset)


@role_required(Role.VIEWER)
def dataset_item(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    """One item's edit form: inline in the table (htmx) or as a page."""
    dataset = get_object_or_404(Dataset, pk=pk)
    row = get_object_or_404(DatasetItem, pk=item, dataset=dataset)
    form = ItemForm(prefix=f"edit-{row.pk}", initial=ItemForm.initial_for(row))
    back = request.GET.get("next") or request.POST.get("next") or dataset.get_absolute_url()
    if not on_site(request, back):
        back = dataset.get_absolute_url()
    status = 200
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Editing an item")
        form = ItemForm(request.POST, prefix=f"edit-{row.pk}")
        if form.is_valid():
            try:
                services.update_item(item=row, actor=request.user, **form.cleaned_data)
            except services.LLMOpsError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Item {row.pk} saved.")
                return redirect(back)
        status = 400
    context = {"dataset": dataset, "item": row, "form": form, "next": back}
    if wants_partial(request) and request.method == "GET":
        return render(request, "llmops/_item_edit_row.html", context)
    return render(request, "llmops/dataset_item.html", context, status=status)


@require_POST
@role_required(Role.OPERATOR)
def dataset_item_delete(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    row = get_object_or_404(DatasetItem, pk=item, dataset=dataset)
    services.delete_item(item=row, actor=request.user)
    messages.success(request, f"Item {item} deleted.")
    return redirect(safe_next(request, dataset.get_absolute_url()))


@require_POST
@role_required(Role.ADMIN)
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    form = DeleteConfirmForm(request.POST, prefix="delete")
    if form.is_valid() and form.cleaned_data["confirm"].strip() == dataset.name:
        services.delete_dataset(dataset=dataset, actor=request.user)
        messages.success(request, f"Dataset {dataset.name} deleted; its runs keep their own copy of the items.")
        return redirect("llmops:datasets")
    if form.is_valid():
        form.add_error("confirm", f"Type {dataset.name} exactly to delete this dataset.")
    return _dataset_page(request, dataset, 400, delete_form=form)


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode()


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


@role_required(Role.OPERATOR)
def dataset_import(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload a CSV/JSONL file, see a preview with every bad row, then import all rows or none."""
    dataset = get_object_or_404(Dataset, pk=pk)
    form = ImportForm()
    context = {"dataset": dataset, "form": form}
    if request.method == "POST" and request.POST.get("cancel"):
        request.session.pop(IMPORT_SESSION_KEY, None)
        messages.info(request, "Import cancelled: nothing was imported.")
        return redirect(dataset)
    if request.method == "POST" and request.POST.get("confirm"):
        pending = request.session.get(IMPORT_SESSION_KEY) or {}
        if pending.get("token") != request.POST["confirm"] or pending.get("dataset") != dataset.pk:
            messages.error(request, "That preview has expired; upload the file again.")
            return redirect("llmops:dataset-import", dataset.pk)
        result = services.import_items(
            dataset=dataset, data=_unpack(pending["data"]), filename=pending["filename"], actor=request.user
        )
        request.session.pop(IMPORT_SESSION_KEY, None)
        if not result.ok:
            context.update(_preview_context(result, pending["filename"]))
            return render(request, "llmops/dataset_import.html", context, status=400)
        messages.success(request, f"Imported {len(result.rows)} items from {pending['filename']}.")
        return redirect(dataset)
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        context["form"] = form
        if not form.is_valid():
            return render(request, "llmops/dataset_import.html", context, status=400)
        upload = form.cleaned_data["file"]
        data = upload.read()
        result = services.preview_import(data, upload.name)
        context.update(_preview_context(result, upload.name))
        if result.ok:
            token = secrets.token_urlsafe(16)
            request.session[IMPORT_SESSION_KEY] = {
                "token": token, "dataset": dataset.pk, "filename": upload.name, "data": _pack(data),
            }  # fmt: skip
            context["token"] = token
        return render(request, "llmops/dataset_import.html", context, status=200 if result.ok else 400)
    return render(request, "llmops/dataset_import.html", context)


def _preview_context(result: importers.ImportResult, filename: str) -> dict:
    return {
        "result": result,
        "filename": filename,
        "preview_rows": result.rows[:PREVIEW_ROWS],
        "variables": sorted({key for row in result.rows[:PREVIEW_ROWS] for key in row.input}),
        "errors": result.errors[:SHOWN_IMPORT_ERRORS],
        "more_errors": max(0, len(result.errors) - SHOWN_IMPORT_ERRORS),
    }


def _download_name(name: str, extension: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") + extension


@require_GET
@role_required(Role.VIEWER)
def dataset_export(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    fmt = request.GET.get("format", "jsonl")
    items = dataset.items.order_by("id").iterator(chunk_size=2000)
    if fmt == "csv":
        response = HttpResponse(importers.export_csv(items), content_type="text/csv; charset=utf-8")
        extension = ".csv"
    else:
        response = HttpResponse(importers.export_jsonl(items), content_type="application/x-ndjson; charset=utf-8")
        extension = ".jsonl"
    response["Content-Disposition"] = f'attachment; filename="{_download_name(dataset.name, extension)}"'
    return response


# --- Runs ----------------------------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs with status, progress, pass rate and cost; the table refreshes itself while runs are active."""
    filters = RunFilterForm(request.GET)
    filters.is_valid()
    data = filters.cleaned_data
    runs = _runs_queryset()
    if data.get("q"):
        runs = runs.filter(name__icontains=data["q"].strip())
    if data.get("status"):
        runs = runs.filter(status=data["status"])
    if data.get("dataset"):
        runs = runs.filter(dataset=data["dataset"])
    page = Paginator(runs.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    context = {
        "filters": filters,
        "page": page,
        "query": query_without(request, "page"),
        "runs_active": any(not run.finished for run in page.object_list),
    }
    return render_page_or_partial(request, "llmops/run_list.html", "llmops/_run_table.html", context)


SCORER_FIELDS = ("type", "name", "config", "weight", "threshold", "negate")


def _config_template(type_name: str) -> str:
    """An empty config with the scorer's required options, as a starting point."""
    from . import scorers

    info = scorers.SCORERS.get(type_name)
    if info is None:
        return ""
    empty = {"string_list": [], "object": {}, "integer": 0, "number": 0, "boolean": False}
    template = {f.name: empty.get(f.kind, "") for f in info.config_fields if f.required}
    return json.dumps(template, ensure_ascii=False) if template else ""


def _scorer_editor(request: HttpRequest) -> tuple[list[dict], str]:
    """The scorer rows as posted, after the editor action (add, remove, type changed)."""
    editor = request.POST.get("editor", "")
    rows = _editor_rows(request.POST, "scorers", SCORER_FIELDS, limit=30)
    if editor == "add-scorer":
        rows.append({"type": "contains", "config": _config_template("contains"), "weight": 1})
    elif editor.startswith("remove-scorer-") and editor[14:].isdigit() and len(rows) > 1:
        rows.pop(min(int(editor[14:]), len(rows) - 1))
    for row in rows:
        if _config_fits(row.get("type", ""), row.get("config") or "") is False:
            row["config"] = _config_template(row.get("type", ""))
    return rows, editor


def _config_fits(type_name: str, config: str) -> bool | None:
    """Whether a config could belong to the scorer type (False: empty, or options of another type); None: not JSON."""
    from . import scorers

    if not config.strip():
        return False
    try:
        value = json.loads(config)
    except json.JSONDecodeError:
        return None
    info = scorers.SCORERS.get(type_name.removeprefix("not-"))
    if info is None or not isinstance(value, dict):
        return None
    return set(value) <= {option.name for option in info.config_fields}


def _scorer_forms_help(formset) -> None:
    """Attach each row's scorer description for the editor."""
    from . import scorers

    for form in formset:
        type_name = form["type"].value() or ""
        form.info = scorers.SCORERS.get(str(type_name).removeprefix("not-"))


def _scorer_specs(formset) -> list[dict]:
    return [form.spec() for form in formset]


def _run_initial(request: HttpRequest) -> tuple[dict, list[dict]]:
    """A new run prefilled from ?from=<run> (run it again), ?dataset=, ?version= and ?model=."""
    initial: dict = {}
    scorer_rows = [{"type": "contains", "config": "", "weight": 1}]
    source = request.GET.get("from", "")
    if source.isdigit():
        run = EvalRun.objects.filter(pk=int(source)).first()
        if run is not None:
            columns = list(run.columns.all())
            initial = {
                "dataset": run.dataset_id,
                "prompt_versions": sorted({c.prompt_version_id for c in columns if c.prompt_version_id}),
                "models": sorted({c.model_id for c in columns if c.model_id}),
                "judge_model": run.judge_model_id,
                "concurrency": run.concurrency,
            }
            scorer_rows = [ScorerForm.initial_for(spec) for spec in run.scorers] or scorer_rows
    if request.GET.get("dataset", "").isdigit():
        initial["dataset"] = int(request.GET["dataset"])
    if request.GET.getlist("version"):
        initial["prompt_versions"] = [int(v) for v in request.GET.getlist("version") if v.isdigit()]
    if request.GET.getlist("model"):
        initial["models"] = [int(v) for v in request.GET.getlist("model") if v.isdigit()]
    if "dataset" not in initial and initial.get("prompt_versions"):
        gate = Prompt.objects.filter(versions__pk=initial["prompt_versions"][0]).values("gate_dataset_id").first()
        if gate and gate["gate_dataset_id"]:
            initial["dataset"] = gate["gate_dataset_id"]
    if "models" not in initial and initial.get("prompt_versions"):
        defaults = PromptVersion.objects.filter(pk__in=initial["prompt_versions"]).values_list("model", flat=True)
        initial["models"] = list(
            LLMModel.objects.filter(name__in=[m for m in defaults if m], provider__enabled=True).values_list(
                "pk", flat=True
            )
        )
    for row in scorer_rows:
        if not row.get("config"):
            row["config"] = _config_template(row.get("type", ""))
    return initial, scorer_rows


@role_required(Role.OPERATOR)
def run_new(request: HttpRequest) -> HttpResponse:
    """Start a run: dataset x prompt versions x models, with scorers."""
    status = 200
    if request.method == "POST":
        rows, editor = _scorer_editor(request)
        if editor:
            form = RunForm(initial=_posted_initial(request, ("prompt_versions", "models")))
            formset = ScorerFormSet(prefix="scorers", initial=rows)
        else:
            form = RunForm(request.POST)
            formset = ScorerFormSet(request.POST, prefix="scorers")
            if form.is_valid() and formset.is_valid():
                data = form.cleaned_data
                try:
                    run = services.create_run(
                        dataset=data["dataset"],
                        prompt_versions=data["prompt_versions"],
                        models=data["models"],
                        scorers=_scorer_specs(formset),
                        actor=request.user,
                        name=data["name"].strip(),
                        judge_model=data["judge_model"],
                        concurrency=data["concurrency"],
                    )
                except services.LLMOpsError as exc:
                    if not _row_error(formset.forms, exc, "scorers"):
                        _add_error(form, exc)
                else:
                    messages.success(request, f"Run #{run.pk} started: {run.total} results to generate.")
                    return redirect(run)
            status = 400
    else:
        initial, rows = _run_initial(request)
        form = RunForm(initial=initial)
        formset = ScorerFormSet(prefix="scorers", initial=rows)
    _scorer_forms_help(formset)
    context = {
        "form": form,
        "formset": formset,
        "catalogue": _scorer_catalogue(),
        "missing": [
            what
            for what, exists in (
                ("a dataset with items", DatasetItem.objects.exists()),
                ("a prompt version", PromptVersion.objects.exists()),
                ("a model of an enabled provider", LLMModel.objects.filter(provider__enabled=True).exists()),
            )
            if not exists
        ],
    }
    return render(request, "llmops/run_form.html", context, status=status)


@role_required(Role.OPERATOR)
def run_score(request: HttpRequest) -> HttpResponse:
    """Score outputs recorded elsewhere: upload them with the items, choose scorers."""
    status = 200
    import_errors = None
    if request.method == "POST":
        rows, editor = _scorer_editor(request)
        if editor:
            form = ScoreRunForm(initial=_posted_initial(request))
            formset = ScorerFormSet(prefix="scorers", initial=rows)
        else:
            form = ScoreRunForm(request.POST, request.FILES)
            formset = ScorerFormSet(request.POST, prefix="scorers")
            if form.is_valid() and formset.is_valid():
                data = form.cleaned_data
                upload = data["file"]
                try:
                    run, result = services.create_score_run(
                        data=upload.read(),
                        filename=upload.name,
                        scorers=_scorer_specs(formset),
                        actor=request.user,
                        name=data["name"].strip(),
                        dataset=data["dataset"],
                        judge_model=data["judge_model"],
                    )
                except services.LLMOpsError as exc:
                    if not _row_error(formset.forms, exc, "scorers"):
                        _add_error(form, exc)
                else:
                    if run is not None:
                        messages.success(request, f"Run #{run.pk} started: scoring {run.total} imported outputs.")
                        return redirect(run)
                    import_errors = result.errors[:SHOWN_IMPORT_ERRORS]
                    form.add_error("file", f"Nothing was scored: {len(result.errors)} row(s) have problems (below).")
            status = 400
    else:
        form = ScoreRunForm()
        formset = ScorerFormSet(prefix="scorers", initial=[{"type": "equals", "config": "", "weight": 1}])
    _scorer_forms_help(formset)
    context = {"form": form, "formset": formset, "catalogue": _scorer_catalogue(), "import_errors": import_errors}
    return render(request, "llmops/run_score.html", context, status=status)


def _column_summaries(run: EvalRun, columns: list[RunColumn], scorer_names: list[str]) -> None:
    """Per column: counts and cost so far (one query), and the per-scorer figures stored when the run finished."""
    live = {
        row["column_id"]: row
        for row in RunResult.objects.filter(run=run)
        .values("column_id")
        .annotate(
            results=Count("id"),
            errors=Count("id", filter=~Q(error="")),
            passed=Count("id", filter=Q(passed=True)),
            cost=Sum("cost"),
            tokens_in=Sum("input_tokens"),
            tokens_out=Sum("output_tokens"),
        )
        .order_by()
    }
    for column in columns:
        row = live.get(column.pk, {})
        stats = column.stats or {}
        column.results_count = row.get("results", 0)
        column.error_count = row.get("errors", 0)
        column.passed_count = row.get("passed", 0)
        scored = column.results_count - column.error_count
        column.current_pass_rate = column.passed_count / scored if scored else None
        column.cost_total = row.get("cost")
        column.tokens = (row.get("tokens_in") or 0) + (row.get("tokens_out") or 0)
        column.p50 = stats.get("latency_p50_ms")
        per_scorer = stats.get("scorers") or {}
        column.scorer_stats = [per_scorer.get(name) for name in scorer_names]


def _legend_on_top(figure):
    """The legend above the plot: below it, it covers the x axis's title."""
    return figure.update_layout(legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, margin={"t": 40})


def _run_charts(run: EvalRun, columns: list[RunColumn]) -> dict:
    labels = {column.pk: f"#{column.position + 1} {column.label}" for column in columns}
    scores: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in labels.values()}
    latencies: dict[str, list[float]] = {label: [] for label in labels.values()}
    for column in columns:
        label = labels[column.pk]
        rows = RunResult.objects.filter(column=column, error="").values_list("scores", "latency_ms")[:CHART_SAMPLE]
        for entries, latency in rows:
            for entry in entries or []:
                scores[label][entry.get("name", "?")].append(entry.get("score", 0))
            if latency is not None:
                latencies[label].append(round(latency, 1))
    costs: dict[str, float] = defaultdict(float)
    for column in columns:
        if column.cost_total:
            costs[column.model.name if column.model else column.label] += column.cost_total
    result = {}
    if any(values for by_scorer in scores.values() for values in by_scorer.values()):
        result["scores"] = figure_data(
            _legend_on_top(charts.score_distribution({k: dict(v) for k, v in scores.items()}))
        )
    if any(latencies.values()):
        result["latency"] = figure_data(
            _legend_on_top(charts.latency_histogram({k: v for k, v in latencies.items() if v}))
        )
    if costs:
        result["cost"] = figure_data(charts.cost_per_model(dict(costs)))
    return result


def _results_page(request: HttpRequest, run: EvalRun, columns: list[RunColumn]) -> dict:
    show = request.GET.get("show", "all")
    show = show if show in RESULT_FILTERS else "all"
    items = RunItem.objects.filter(run=run).order_by("position")
    if show == "failed":
        items = items.filter(Exists(RunResult.objects.filter(item=OuterRef("pk"), passed=False, error="")))
    elif show == "errors":
        items = items.filter(Exists(RunResult.objects.filter(item=OuterRef("pk")).exclude(error="")))
    page = Paginator(items, RESULTS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    cells = {
        (r.item_id, r.column_id): r for r in RunResult.objects.filter(item__in=[item.pk for item in page.object_list])
    }
    for item in page.object_list:
        item.cells = [cells.get((item.pk, column.pk)) for column in columns]
    return {"page": page, "show": show, "filters": RESULT_FILTERS, "query": query_without(request, "page")}


def _previous_run(run: EvalRun) -> EvalRun | None:
    """The run to compare with: the latest earlier run on the same dataset (any kind), else None."""
    if run.dataset_id is None:
        return None
    return (
        EvalRun.objects.filter(dataset_id=run.dataset_id, created_at__lte=run.created_at)
        .exclude(pk=run.pk)
        .exclude(status=EvalRun.Status.CANCELLED, done=0)
        .filter(Q(created_at__lt=run.created_at) | Q(pk__lt=run.pk))
        .order_by("-created_at", "-id")
        .first()
    )


@role_required(Role.VIEWER)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A run: live progress, per-column summary, charts, and the results item by item."""
    run = get_object_or_404(EvalRun.objects.select_related("dataset", "created_by", "judge_model__provider"), pk=pk)
    columns = list(run.columns.select_related("prompt_version__prompt", "model__provider").order_by("position"))
    target = request.htmx.target if request.htmx else None
    context = {"run": run, "columns": columns}
    if wants_partial(request) and target == "run-results":
        context.update(_results_page(request, run, columns))
        return render(request, "llmops/_run_results.html", context)
    scorer_names = _scorer_names(run.scorers)
    _column_summaries(run, columns, scorer_names)
    context.update(_results_page(request, run, columns))
    context.update(
        {
            "scorer_names": scorer_names,
            "charts": _run_charts(run, columns),
            "previous": _previous_run(run),
            "scorer_specs": [
                {
                    "type": spec.get("type", ""),
                    "name": spec.get("name", ""),
                    "config": spec.get("config") or {},
                    "weight": spec.get("weight", 1.0),
                    "threshold": spec.get("threshold"),
                    "negate": bool(spec.get("negate")),
                }
                for spec in run.scorers
                if isinstance(spec, dict)
            ],
        }
    )
    if wants_partial(request) and target == "run-report":
        return render(request, "llmops/_run_report.html", context)
    return render(request, "llmops/run_detail.html", context)


@require_GET
@role_required(Role.VIEWER)
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress partial the run page polls; when the run has just finished, tells the page to reload its report."""
    run = get_object_or_404(EvalRun, pk=pk)
    response = render(request, "llmops/_run_progress.html", {"run": run})
    if run.finished and request.GET.get("polling"):
        response["HX-Trigger"] = "run-finished"
    return response


@require_POST
@role_required(Role.OPERATOR)
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(EvalRun, pk=pk)
    try:
        services.cancel_run(run=run, actor=request.user)
    except services.LLMOpsError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Run #{run.pk}: cancelling; results stored so far are kept.")
    return redirect(run)


@require_GET
@role_required(Role.VIEWER)
def run_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every result of a run as CSV or JSONL, streamed."""
    run = get_object_or_404(EvalRun, pk=pk)
    fmt = request.GET.get("format", "csv")
    results = (
        RunResult.objects.filter(run=run)
        .select_related("item", "column")
        .order_by("item__position", "column__position")
        .iterator(chunk_size=1000)
    )

    def records() -> Iterator[dict]:
        for result in results:
            yield {
                "item": result.item.position + 1,
                "column": result.column.label,
                "input": result.item.input,
                "expected_output": result.item.expected_output,
                "output": result.output,
                "passed": result.passed,
                "score": result.score,
                "scores": result.scores,
                "error": result.error,
                "latency_ms": result.latency_ms,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
                "cost": result.cost,
            }

    if fmt == "jsonl":
        body = (json.dumps(record, ensure_ascii=False) + "\n" for record in records())
        response = StreamingHttpResponse(body, content_type="application/x-ndjson; charset=utf-8")
        extension = ".jsonl"
    else:
        body = _csv_lines(records())
        response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
        extension = ".csv"
    name = _download_name(f"run-{run.pk}-results", extension)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _csv_lines(records: Iterator[dict]) -> Iterator[str]:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["item", "column", "input", "expected_output", "output", "passed", "score", "scores", "error",
              "latency_ms", "input_tokens", "output_tokens", "cost"]  # fmt: skip
    writer.writerow(header)
    for record in records:
        writer.writerow(
            [
                json.dumps(record[key], ensure_ascii=False) if key in ("input", "scores") else record[key]
                for key in header
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- Compare -------------------------------------------------------------------------------------------------------


def _pick_column(run: EvalRun, position: str, like: RunColumn | None = None) -> RunColumn | None:
    """The run's column at `position`; else the one most like `like` (same version and model, else same
    model, else same version); else the first."""
    columns = list(run.columns.select_related("prompt_version__prompt", "model__provider").order_by("position"))
    if position.isdigit():
        for column in columns:
            if column.position == int(position):
                return column
    if like is not None:
        for same in (
            lambda c: c.prompt_version_id == like.prompt_version_id and c.model_id == like.model_id,
            lambda c: c.model_id is not None and c.model_id == like.model_id,
            lambda c: c.prompt_version_id is not None and c.prompt_version_id == like.prompt_version_id,
        ):
            match = next((column for column in columns if same(column)), None)
            if match is not None:
                return match
    return columns[0] if columns else None


def match_items(items_a: list[dict], items_b: list[dict], same_run: bool) -> tuple[list[tuple], str]:
    """Pairs of (item of A or None, item of B or None) and how they were matched.

    By position when both runs used the same snapshot of a dataset (same items in the same order), else by
    the dataset item each was copied from, else (imported outputs) by equal input and expected output.
    """
    if same_run:
        return [(item, item) for item in items_a], "the same run"
    same = len(items_a) == len(items_b) and all(
        a["source_item_id"] == b["source_item_id"] and a["input"] == b["input"] and a["expected_output"] ==
        b["expected_output"]
        for a, b in zip(items_a, items_b, strict=True)
    )  # fmt: skip
    if same:
        return list(zip(items_a, items_b, strict=True)), "position (both runs used the same dataset snapshot)"
    if any(item["source_item_id"] for item in items_a) and any(item["source_item_id"] for item in items_b):

        def key(item: dict) -> object:
            return item["source_item_id"]

        how = "dataset item (the runs used different snapshots)"
    else:

        def key(item: dict) -> object:
            return json.dumps([item["input"], item["expected_output"]], sort_keys=True, default=str)

        how = "equal input and expected output"
    right = {}
    for item in items_b:
        if key(item) is not None:
            right.setdefault(key(item), item)
    pairs, used = [], set()
    for item in items_a:
        match = right.get(key(item)) if key(item) is not None else None
        if match is not None and match["id"] not in used:
            used.add(match["id"])
            pairs.append((item, match))
        else:
            pairs.append((item, None))
    pairs += [(None, item) for item in items_b if item["id"] not in used]
    return pairs, how


def _verdict(result: tuple | None) -> str:
    """'pass', 'fail', 'error' or 'missing' for a (passed, error, score) row."""
    if result is None:
        return "missing"
    passed, error, _score = result
    if error:
        return "error"
    return "pass" if passed else "fail"


def _change(before: str, after: str) -> str:
    if before == "missing" or after == "missing":
        return "unmatched"
    if before == "pass" and after != "pass":
        return "regression"
    if before != "pass" and after == "pass":
        return "improvement"
    return "same"


def _side_charts(sides: list[tuple[str, RunColumn]]) -> dict:
    scores, latencies, costs = {}, {}, {}
    for label, column in sides:
        by_scorer: dict[str, list[float]] = defaultdict(list)
        values: list[float] = []
        total = 0.0
        rows = RunResult.objects.filter(column=column).values_list("scores", "latency_ms", "cost", "error")
        for entries, latency, cost, error in rows[:CHART_SAMPLE]:
            total += cost or 0.0
            if error:
                continue
            for entry in entries or []:
                by_scorer[entry.get("name", "?")].append(entry.get("score", 0))
            if latency is not None:
                values.append(round(latency, 1))
        scores[label] = dict(by_scorer)
        if values:
            latencies[label] = values
        model = column.model.name if column.model else "imported"
        costs[f"{label[0]}: {model}"] = total
    result = {}
    if any(v for s in scores.values() for v in s.values()):
        result["scores"] = figure_data(_legend_on_top(charts.score_distribution(scores)))
    if latencies:
        result["latency"] = figure_data(_legend_on_top(charts.latency_histogram(latencies)))
    if any(costs.values()):
        result["cost"] = figure_data(charts.cost_per_model(costs))
    return result


@role_required(Role.VIEWER)
def compare(request: HttpRequest) -> HttpResponse:
    """Two runs (or two columns of one run) item by item: regressions and improvements, output diffs, charts.

    A is the baseline (before), B the candidate (now): a regression passed in A and fails (or errs) in B.
    """
    params = request.GET
    run_b = EvalRun.objects.filter(pk=int(params["b"])).first() if params.get("b", "").isdigit() else None
    run_a = EvalRun.objects.filter(pk=int(params["a"])).first() if params.get("a", "").isdigit() else None
    if run_b is not None and run_a is None and not params.get("a"):
        run_a = _previous_run(run_b)
    recent = list(EvalRun.objects.order_by("-created_at", "-id").values("id", "name", "status")[:200])
    context: dict = {"run_a": run_a, "run_b": run_b, "recent": recent, "show_options": COMPARE_SHOW}
    if run_a is None or run_b is None:
        missing = bool((params.get("a") and run_a is None) or (params.get("b") and run_b is None))
        if missing:
            context["problem"] = "That run does not exist."
        elif run_b is not None:
            context["problem"] = f"Run #{run_b.pk} has no earlier run on its dataset: choose the run to compare with."
        elif params:
            context["problem"] = "Choose two runs to compare."
        return render(request, "llmops/compare.html", context, status=404 if missing else 200)
    col_a = _pick_column(run_a, params.get("ca", ""))
    col_b = _pick_column(run_b, params.get("cb", "1" if run_a.pk == run_b.pk and not params.get("cb") else ""),
                         like=None if params.get("cb") or run_a.pk == run_b.pk else col_a)  # fmt: skip
    context.update({"col_a": col_a, "col_b": col_b,
                    "columns_a": list(run_a.columns.order_by("position")),
                    "columns_b": list(run_b.columns.order_by("position"))})  # fmt: skip
    if col_a is None or col_b is None:
        context["problem"] = "A run without columns has nothing to compare."
        return render(request, "llmops/compare.html", context)
    fields = ("id", "position", "source_item_id", "input", "expected_output")
    items_a = list(RunItem.objects.filter(run=run_a).order_by("position").values(*fields))
    items_b = items_a if run_b.pk == run_a.pk else list(
        RunItem.objects.filter(run=run_b).order_by("position").values(*fields)
    )  # fmt: skip
    pairs, how = match_items(items_a, items_b, run_a.pk == run_b.pk)
    verdicts_a = {
        row[0]: row[1:]
        for row in RunResult.objects.filter(column=col_a).values_list("item_id", "passed", "error", "score")
    }
    verdicts_b = {
        row[0]: row[1:]
        for row in RunResult.objects.filter(column=col_b).values_list("item_id", "passed", "error", "score")
    }
    rows, counts = [], defaultdict(int)
    for a, b in pairs:
        before = _verdict(verdicts_a.get(a["id"])) if a else "missing"
        after = _verdict(verdicts_b.get(b["id"])) if b else "missing"
        change = _change(before, after)
        counts[change] += 1
        counts[f"a_{before}"] += 1
        counts[f"b_{after}"] += 1
        score_a = verdicts_a[a["id"]][2] if a and a["id"] in verdicts_a else None
        score_b = verdicts_b[b["id"]][2] if b and b["id"] in verdicts_b else None
        delta = score_b - score_a if score_a is not None and score_b is not None else None
        rows.append({"a": a, "b": b, "before": before, "after": after, "change": change, "delta": delta})
    show = params.get("show", "all")
    show = show if show in COMPARE_SHOW else "all"
    wanted = {
        "all": None,
        "changed": {"regression", "improvement"},
        "regressions": {"regression"},
        "improvements": {"improvement"},
    }[show]
    shown = [row for row in rows if wanted is None or row["change"] in wanted]
    page = ListPaginator(shown, COMPARE_PAGE_SIZE).get_page(params.get("page"))
    ids_a = [row["a"]["id"] for row in page.object_list if row["a"]]
    ids_b = [row["b"]["id"] for row in page.object_list if row["b"]]
    results_a = {r.item_id: r for r in RunResult.objects.filter(column=col_a, item_id__in=ids_a)}
    results_b = {r.item_id: r for r in RunResult.objects.filter(column=col_b, item_id__in=ids_b)}
    for row in page.object_list:
        row["result_a"] = results_a.get(row["a"]["id"]) if row["a"] else None
        row["result_b"] = results_b.get(row["b"]["id"]) if row["b"] else None
        item = row["a"] or row["b"]
        row["item"] = item
        out_a = row["result_a"].output if row["result_a"] else ""
        out_b = row["result_b"].output if row["result_b"] else ""
        row["output_changed"] = bool(row["result_a"] and row["result_b"]) and out_a != out_b
        row["diff_a"], row["diff_b"] = _word_diff(out_a, out_b)
    matched = [r for r in rows if r["change"] != "unmatched"]

    def rate(side: str) -> float | None:
        verdicts = [r["before" if side == "a" else "after"] for r in matched]
        scored = [v for v in verdicts if v in ("pass", "fail")]  # as a run's pass rate: errors are not scored
        return sum(v == "pass" for v in scored) / len(scored) if scored else None

    label_a, label_b = f"A · #{run_a.pk} {col_a.label}", f"B · #{run_b.pk} {col_b.label}"
    context.update(
        {
            "compared": True,
            "how": how,
            "page": page,
            "counts": dict(counts),
            "matched": len(matched),
            "rate_a": rate("a"),
            "rate_b": rate("b"),
            "show": show,
            "query": query_without(request, "page"),
            "base_query": query_without(request, "page", "show"),
            "label_a": label_a,
            "label_b": label_b,
            "charts": _side_charts([(label_a, col_a), (label_b, col_b)]),
            "scorer_names": _scorer_names(run_b.scorers),
        }
    )
    return render(request, "llmops/compare.html", context)
