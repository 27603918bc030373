"""The forms that start runs: a run (dataset x prompt versions x models) and a run scoring imported outputs,
each with its scorers editor."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import add_service_error

from .. import scorers, services
from ..forms import (
    OPTION_PREFIX,
    RunForm,
    ScorerForm,
    ScorerFormSet,
    ScoreRunForm,
    config_options,
    option_posted,
    options_config,
)
from ..models import DatasetItem, EvalRun, LLMModel, Prompt, PromptVersion
from .common import editor_rows, posted_initial, row_error

SHOWN_IMPORT_ERRORS = 100


def _scorer_catalogue() -> list:
    return list(scorers.SCORERS.values())


SCORER_FIELDS = ("type", "name", "config", "config_mode", "shown_mode", "weight", "threshold", "negate")


def _config_template(type_name: str) -> str:
    """An empty config with the scorer's required options, as a starting point."""
    info = scorers.SCORERS.get(type_name)
    if info is None:
        return ""
    empty = {"string_list": [], "object": {}, "integer": 0, "number": 0, "boolean": False}
    template = {f.name: empty.get(f.kind, "") for f in info.config_fields if f.required}
    return json.dumps(template, ensure_ascii=False) if template else ""


def _scorer_editor(request: HttpRequest) -> tuple[list[dict], str]:
    """The scorer rows as posted, after the editor action (add, remove, type changed)."""
    editor = request.POST.get("editor", "")
    rows = editor_rows(request.POST, "scorers", SCORER_FIELDS, limit=30)
    for index, row in enumerate(rows):
        _carry_options(request.POST, f"scorers-{index}", row)
    if editor == "add-scorer":
        rows.append({"type": "contains", "config": _config_template("contains"), "config_mode": "fields", "weight": 1})
    elif editor.startswith("remove-scorer-") and editor[14:].isdigit() and len(rows) > 1:
        rows.pop(min(int(editor[14:]), len(rows) - 1))
    for row in rows:
        if row.get("config_mode") != "fields" and _config_fits(row.get("type", ""), row.get("config") or "") is False:
            row["config"] = _config_template(row.get("type", ""))
    return rows, editor


def _carry_options(data, prefix: str, row: dict) -> None:
    """Keep a row's option fields through a redraw; switching between fields and JSON carries the values over."""
    info = scorers.SCORERS.get(str(row.get("type", "")).removeprefix("not-"))
    row["negate"] = bool(row.get("negate"))
    if row.get("config_mode") != "fields":
        row["config_mode"] = "json"
    if info is None:
        return
    if row.get("shown_mode") == "fields":
        values = {o.name: option_posted(data, f"{prefix}-{OPTION_PREFIX}{o.name}", o) for o in info.config_fields}
    else:
        values = config_options(info, row.get("config") or "")
    row["options"] = values
    if row.get("shown_mode") == "fields" and row["config_mode"] == "json":
        config, _ = options_config(info, values)
        row["config"] = json.dumps(config, indent=2, ensure_ascii=False) if config else ""


def _config_fits(type_name: str, config: str) -> bool | None:
    """Whether a config could belong to the scorer type (False: empty, or options of another type); None: not JSON."""
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
            form = RunForm(initial=posted_initial(request, ("prompt_versions", "models")))
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
                except ServiceError as exc:
                    if not row_error(formset.forms, exc, "scorers"):
                        add_service_error(form, exc)
                else:
                    messages.success(request, f"Run #{run.pk} started: {run.total} results to generate.")
                    for model_provider in {model.provider for model in data["models"]}:
                        if model_provider.problem:
                            messages.warning(request, f"{model_provider.name}: {model_provider.problem}; "
                                             "its results will likely error.")  # fmt: skip
                    return redirect(run)
            status = 400
    else:
        initial, rows = _run_initial(request)
        form = RunForm(initial=initial)
        formset = ScorerFormSet(prefix="scorers", initial=rows)
    context = {
        "form": form,
        "formset": formset,
        "catalogue": _scorer_catalogue(),
        "checklists": {name: form.checklist(name) for name in ("prompt_versions", "models")},
        "provider_problems": form.provider_problems(),
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
            form = ScoreRunForm(initial=posted_initial(request))
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
                except ServiceError as exc:
                    if not row_error(formset.forms, exc, "scorers"):
                        add_service_error(form, exc)
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
    context = {"form": form, "formset": formset, "catalogue": _scorer_catalogue(), "import_errors": import_errors}
    return render(request, "llmops/run_score.html", context, status=status)
