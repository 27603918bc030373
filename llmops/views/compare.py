"""The compare page: two runs (or two columns of one run) item by item, with output diffs and charts.

The comparison itself is `llmops.compare`; this page reads the rows it compares and pages the outcome.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.requests import query_without

from .. import charts
from .. import compare as comparison
from ..models import EvalRun, RunColumn, RunItem, RunResult
from .common import previous_run, scorer_names

COMPARE_PAGE_SIZE = 50
ITEM_FIELDS = ("id", "position", "source_item_id", "input", "expected_output")


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


def _verdicts(column: RunColumn) -> dict[int, tuple]:
    """Item id -> (passed, error, score) of a column's results."""
    rows = RunResult.objects.filter(column=column).values_list("item_id", "passed", "error", "score")
    return {row[0]: row[1:] for row in rows}


def _with_outputs(rows: list[dict], col_a: RunColumn, col_b: RunColumn) -> None:
    """Give the rows of one page their results and the word diff of their outputs."""
    ids_a = [row["a"]["id"] for row in rows if row["a"]]
    ids_b = [row["b"]["id"] for row in rows if row["b"]]
    results_a = {r.item_id: r for r in RunResult.objects.filter(column=col_a, item_id__in=ids_a)}
    results_b = {r.item_id: r for r in RunResult.objects.filter(column=col_b, item_id__in=ids_b)}
    for row in rows:
        row["result_a"] = results_a.get(row["a"]["id"]) if row["a"] else None
        row["result_b"] = results_b.get(row["b"]["id"]) if row["b"] else None
        row["item"] = row["a"] or row["b"]
        out_a = row["result_a"].output if row["result_a"] else ""
        out_b = row["result_b"].output if row["result_b"] else ""
        row["output_changed"] = bool(row["result_a"] and row["result_b"]) and out_a != out_b
        row["diff_a"], row["diff_b"] = comparison.word_diff(out_a, out_b)


def _run_param(params, key: str) -> EvalRun | None:
    return EvalRun.objects.filter(pk=int(params[key])).first() if params.get(key, "").isdigit() else None


@role_required(Role.VIEWER)
def compare(request: HttpRequest) -> HttpResponse:
    """Two runs (or two columns of one run) item by item: regressions and improvements, output diffs, charts.

    A is the baseline (before), B the candidate (now): a regression passed in A and fails (or errs) in B.
    """
    params = request.GET
    run_b, run_a = _run_param(params, "b"), _run_param(params, "a")
    if run_b is not None and run_a is None and not params.get("a"):
        run_a = previous_run(run_b)
    recent = list(
        EvalRun.objects.order_by("-created_at", "-id").only(
            "id", "name", "status", "total", "done", "errors", "passed"
        )[:200]
    )
    context: dict = {"run_a": run_a, "run_b": run_b, "recent": recent, "show_options": comparison.SHOW}
    if run_a is None or run_b is None:
        missing = bool((params.get("a") and run_a is None) or (params.get("b") and run_b is None))
        if missing:
            context["problem"] = "That run does not exist."
        elif run_b is not None:
            context["problem"] = f"Run #{run_b.pk} has no earlier run on its dataset: choose the run to compare with."
        elif params:
            context["problem"] = "Choose two runs to compare."
        return render(request, "llmops/compare.html", context, status=404 if missing else 200)
    same_run = run_a.pk == run_b.pk
    col_a = _pick_column(run_a, params.get("ca", ""))
    col_b = _pick_column(run_b, params.get("cb", "1" if same_run and not params.get("cb") else ""),
                         like=None if params.get("cb") or same_run else col_a)  # fmt: skip
    context.update({"col_a": col_a, "col_b": col_b,
                    "columns_a": list(run_a.columns.order_by("position")),
                    "columns_b": list(run_b.columns.order_by("position"))})  # fmt: skip
    if col_a is None or col_b is None:
        context["problem"] = "A run without columns has nothing to compare."
        return render(request, "llmops/compare.html", context)
    items_a = list(RunItem.objects.filter(run=run_a).order_by("position").values(*ITEM_FIELDS))
    items_b = items_a if same_run else list(RunItem.objects.filter(run=run_b).order_by("position").values(*ITEM_FIELDS))
    pairs, how = comparison.match_items(items_a, items_b, same_run)
    rows, counts = comparison.compare_rows(pairs, _verdicts(col_a), _verdicts(col_b))
    show = params.get("show", "all")
    show = show if show in comparison.SHOW else "all"
    page = Paginator(comparison.shown(rows, show), COMPARE_PAGE_SIZE).get_page(params.get("page"))
    _with_outputs(page.object_list, col_a, col_b)
    label_a, label_b = f"A · #{run_a.pk} {col_a.label}", f"B · #{run_b.pk} {col_b.label}"
    context.update(
        {
            "compared": True,
            "how": how,
            "page": page,
            "counts": counts,
            "matched": sum(row["change"] != "unmatched" for row in rows),
            "rate_a": comparison.pass_rate(rows, "a"),
            "rate_b": comparison.pass_rate(rows, "b"),
            "show": show,
            "query": query_without(request, "page"),
            "base_query": query_without(request, "page", "show"),
            "label_a": label_a,
            "label_b": label_b,
            "charts": charts.compare_charts([(label_a, col_a), (label_b, col_b)]),
            "scorer_names": scorer_names(run_b.scorers),
        }
    )
    return render(request, "llmops/compare.html", context)
