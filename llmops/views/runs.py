"""Run pages: the list (live while runs are active), a run (progress, per-column summary, charts, results item by
item), its progress partial, cancel, and the export of its results."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from django.contrib import messages
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial, wants_partial
from opsportal.portal.requests import query_without

from .. import charts, services
from ..forms import RunFilterForm
from ..models import EvalRun, RunColumn, RunItem, RunResult
from .common import PAGE_SIZE, download_name, previous_run, runs_queryset, scorer_names

RESULTS_PAGE_SIZE = 25
RESULT_FILTERS = {"all": "All items", "failed": "Failed only", "errors": "Errors only"}


@role_required(Role.VIEWER)
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs with status, progress, pass rate and cost; the table refreshes itself while runs are active."""
    # `all` means no filter; a value a filter does not know is named in a message and ignored.
    query, filter_problems = checked_filters(request.GET, RunFilterForm().fields, bind=RunFilterForm)
    filters = RunFilterForm(query)
    filters.is_valid()
    data = filters.cleaned_data
    runs = runs_queryset()
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
        "filter_problems": filter_problems,
    }
    return render_page_or_partial(request, "llmops/run_list.html", "llmops/_run_table.html", context)


def _column_summaries(run: EvalRun, columns: list[RunColumn], names: list[str]) -> None:
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
        column.scorer_stats = [per_scorer.get(name) for name in names]


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
    names = scorer_names(run.scorers)
    _column_summaries(run, columns, names)
    context.update(_results_page(request, run, columns))
    context.update(
        {
            "scorer_names": names,
            "charts": charts.run_charts(columns),
            "previous": previous_run(run),
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
    except ServiceError as exc:
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
    name = download_name(f"run-{run.pk}-results", extension)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _csv_lines(records: Iterator[dict]) -> Iterator[str]:
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
