"""A model's Monitoring tab and each batch's report page: drift heatmap, distributions, performance over
time, data quality, batches, checks and their breaches; the report's HTML download.

Everything shown is read from stored results (each batch's drift, quality, profile and performance, the
reference's profiling plan and profile): no page re-reads rows, except the HTML download of a batch whose
rows were kept. Forms post to `monitoring_actions`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.text import slugify
from django.views.decorators.cache import never_cache

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.pagination import CappedCountPaginator as Paginator

from .. import monitoring_charts as charts
from ..drift.profiles import BatchProfile, ProfileSpec, merge_profiles, window_drift
from ..models import (
    Breach,
    ModelVersion,
    Monitor,
    MonitorCheck,
    MonitoringBatch,
    ReferenceDataset,
    RegisteredModel,
    RetrainingHook,
)
from ..monitoring_forms import (
    BatchUploadForm,
    CheckForm,
    EditMonitorForm,
    MonitorForm,
    ReferenceUploadForm,
    RetrainingHookForm,
    SchemaForm,
)
from ..services.batches import drift_options
from .common import model_or_404
from .monitoring_common import (
    batch_url,
    breaches_with_incidents,
    column_order,
    column_results,
    metric_names,
    monitoring_url,
    overlay,
    performance_rows,
    quality_rows,
)
from .monitoring_report import batch_html

HEATMAP_BATCHES = 48
PERFORMANCE_BATCHES = 500
WINDOW_BATCHES = 1000
BATCH_PAGE_SIZE = 25
RECENT_BREACHES = 25
REPORT_CHART_COLUMNS = 60
# A new retraining hook's generated signing secret, shown on the next page once.
NEW_SECRET_KEY = "mlops.retraining-hook-secret"
# Batch list columns only: profiles, quality and drift results are large JSON documents.
BATCH_LIST_FIELDS = (
    "id", "monitor_id", "version__version", "source", "name", "rows", "start", "end", "received_at",
    "drift_share", "dataset_drift", "drifted_columns", "labelled_rows", "evaluated_at", "file",
)  # fmt: skip


@dataclass
class Selection:
    """What the tab shows, from the query string: the monitor, a version filter, the focused batch and
    column (the heatmap's clicked cell), the charted metric; and the problems with what was asked."""

    monitor: Monitor | None
    version: int | None
    batch: int | None
    column: str
    metric: str
    problems: list[str]

    @classmethod
    def from_query(cls, query, model: RegisteredModel, monitors: list[Monitor]) -> Selection:
        problems = []
        monitor = monitors[0] if monitors else None
        if query.get("monitor"):
            chosen = next((m for m in monitors if str(m.pk) == query["monitor"]), None)
            if chosen is None:
                raise Http404(f"{model.name} has no monitor #{query['monitor']}.")
            monitor = chosen
        version = batch = None
        if query.get("version"):
            try:
                version = int(query["version"])
            except ValueError:
                problems.append(f"version: {query['version']!r} is not a version number; showing every version.")
        if query.get("batch"):
            try:
                batch = int(query["batch"])
            except ValueError:
                problems.append(f"batch: {query['batch']!r} is not a batch number; showing the latest batch.")
        return cls(monitor, version, batch, query.get("column", ""), query.get("metric", ""), problems)

    def params(self, **changes: object) -> dict:
        params = {
            "monitor": self.monitor.pk if self.monitor else None,
            "version": self.version,
            "batch": self.batch,
            "column": self.column,
            "metric": self.metric,
        }
        params.update(changes)
        return params


def _batches(monitor: Monitor, version: int | None) -> QuerySet:
    batches = MonitoringBatch.objects.filter(monitor=monitor)
    if version is not None:
        batches = batches.filter(version__version=version)
    return batches


def performance_chart(
    monitor: Monitor, reference: ReferenceDataset | None, version: int | None, asked: str
) -> tuple[dict | None, list[str], str]:
    """The chosen metric over time (the first the reference reports when none is asked), the metrics there
    are, and the one charted."""
    batches = list(
        _batches(monitor, version)
        .exclude(performance={})
        .select_related("version")
        .only("id", "end", "performance", "labelled_rows", "version__version")
        .order_by("-end", "-id")[:PERFORMANCE_BATCHES]
    )
    batches.reverse()
    names = metric_names(reference.performance if reference else {}, *(b.performance for b in batches))
    metric = asked if asked in names else (names[0] if names else "")
    if not metric or not batches:
        return None, names, metric
    points = [
        charts.PerformancePoint(
            b.pk, b.end, b.version.version if b.version else None, float(b.performance[metric]), b.labelled_rows
        )
        for b in batches
        if isinstance(b.performance.get(metric), int | float)
    ]
    base = (reference.performance or {}).get(metric) if reference else None
    return charts.performance_over_time(metric, points, base if isinstance(base, int | float) else None), names, metric


@dataclass
class WindowSummary:
    """Drift over the monitor's window (its batches of the last `window_hours` on the current reference),
    computed from their merged profiles."""

    hours: int
    batches: int
    rows: int
    dataset_drift: bool
    drift_share: float
    drifted: list[str]
    columns: int
    capped: bool


def window_summary(
    monitor: Monitor, reference: ReferenceDataset | None, now: datetime.datetime
) -> WindowSummary | None:
    if reference is None or not reference.spec or not reference.profile:
        return None
    since = now - datetime.timedelta(hours=monitor.window_hours)
    profiles = list(
        MonitoringBatch.objects.filter(monitor=monitor, reference=reference, end__gte=since)
        .exclude(profile={})
        .order_by("-end")
        .values_list("profile", flat=True)[: WINDOW_BATCHES + 1]
    )
    capped = len(profiles) > WINDOW_BATCHES
    profiles = profiles[:WINDOW_BATCHES]
    if not profiles:
        return WindowSummary(monitor.window_hours, 0, 0, False, 0.0, [], 0, False)
    try:
        spec = ProfileSpec.from_dict(reference.spec)
        merged = merge_profiles([BatchProfile.from_dict(p) for p in profiles])
        report = window_drift(spec, BatchProfile.from_dict(reference.profile), merged, drift_options(monitor))
    except (KeyError, ValueError):
        # Profiles made before a schema change do not line up with the current plan: say nothing.
        return None
    return WindowSummary(
        monitor.window_hours,
        len(profiles),
        merged.rows,
        report.dataset_drift,
        report.drift_share,
        report.drifted_columns,
        len(report.columns),
        capped,
    )


def _focus(
    model: RegisteredModel, monitor: Monitor, selection: Selection, latest: MonitoringBatch | None
) -> dict | None:
    """The focused batch and column: the distribution overlay, its drift result, the batch's quality."""
    pk = selection.batch or (latest.pk if latest else None)
    if pk is None:
        return None
    batch = MonitoringBatch.objects.filter(monitor=monitor, pk=pk).select_related("version", "reference").first()
    if batch is None:
        selection.problems.append(f"batch: #{pk} is not a batch of this monitor; showing the latest batch.")
        if latest is None or latest.pk == pk:
            return None
        return _focus(model, monitor, Selection(**{**selection.__dict__, "batch": None}), latest)
    results = column_results(batch)
    columns = column_order(batch.reference, [batch.drift or {}])
    column = selection.column
    if column and column not in columns:
        selection.problems.append(f"column: batch #{batch.pk} has no column {column!r}.")
        column = ""
    if not column:
        column = next((c for c in columns if results.get(c, {}).get("drifted")), columns[0] if columns else "")
    chart = overlay(batch.reference, batch, column, f"batch #{batch.pk}") if column else None
    return {
        "batch": batch,
        "column": column,
        "columns": columns,
        "result": results.get(column),
        "chart": chart,
        "chart_id": "focus-chart",
        "quality": quality_rows(batch),
        "report_url": batch_url(model, batch.pk),
    }


def _versions_with_batches(monitor: Monitor) -> list[int]:
    return sorted(
        {
            v
            for v in ModelVersion.objects.filter(monitoring_batches__monitor=monitor)
            .values_list("version", flat=True)
            .distinct()
        },
        reverse=True,
    )


def monitoring_page(request: HttpRequest, model: RegisteredModel, status: int = 200, **forms) -> HttpResponse:
    """The Monitoring tab (or, for the heatmap's htmx click, only its focus panel); bound `forms` shown open."""
    monitors = list(Monitor.objects.filter(model=model).order_by("name"))
    selection = Selection.from_query(request.GET, model, monitors)
    monitor = selection.monitor
    is_admin = has_role(request.user, Role.ADMIN)
    context: dict = {"model": model, "monitors": monitors, "monitor": monitor, "selection": selection}
    hooks = list(RetrainingHook.objects.filter(model=model).order_by("name"))
    secret = request.session.pop(NEW_SECRET_KEY, None)
    context.update(
        hooks=hooks,
        new_secret={"pk": secret[0], "secret": secret[1]} if secret else None,
        open_forms=[name for name, form in forms.items() if form.is_bound],
        monitoring_breached=Breach.objects.filter(monitor__model=model, resolved_at__isnull=True).count(),
    )
    if is_admin:
        edit_hook = forms.get("edit_hook")
        for hook in hooks:
            hook.form = (
                edit_hook
                if edit_hook is not None and getattr(edit_hook, "hook_pk", None) == hook.pk
                else RetrainingHookForm(
                    prefix="hook", auto_id=f"id_hook{hook.pk}_%s", initial=RetrainingHookForm.initial_of(hook)
                )
            )
        context.update(
            monitor_form=forms.get("monitor_form") or MonitorForm(prefix="monitor"),
            hook_form=forms.get("hook_form") or RetrainingHookForm(prefix="hook", auto_id="id_hook_%s"),
        )
    if monitor is None:
        return _render(request, context, status)
    reference = (
        ReferenceDataset.objects.filter(pk=monitor.reference_id).select_related("version").first()
        if monitor.reference_id
        else None
    )
    monitor.reference = reference
    heat = list(
        _batches(monitor, selection.version)
        .select_related("version")
        .only("id", "end", "drift", "version__version")
        .order_by("-end", "-id")[:HEATMAP_BATCHES]
    )
    heat.reverse()
    latest = heat[-1] if heat else None
    focus = _focus(model, monitor, selection, latest)
    if focus is not None:
        focus["column_links"] = [
            (c, monitoring_url(model, **selection.params(batch=focus["batch"].pk, column=c))) for c in focus["columns"]
        ]
    context["focus"] = focus
    if request.htmx and request.htmx.target == "monitoring-focus" and not request.htmx.history_restore_request:
        response = render(request, "mlops/partials/monitoring_focus.html", context, status=status)
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response

    columns = column_order(reference, [b.drift or {} for b in heat])
    heatmap = None
    if heat and columns:
        heatmap = charts.drift_heatmap(
            columns,
            [charts.HeatmapBatch(b.pk, b.end, b.version.version if b.version else None, b.drift or {}) for b in heat],
            lambda pk, column: monitoring_url(model, **selection.params(batch=pk, column=column)),
        )
    perf_chart, metrics, metric = performance_chart(monitor, reference, selection.version, selection.metric)
    batch_list = (
        _batches(monitor, selection.version).select_related("version").only(*BATCH_LIST_FIELDS).order_by("-end", "-id")
    )
    page = Paginator(batch_list, BATCH_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    checks = list(MonitorCheck.objects.filter(monitor=monitor).select_related("retraining").order_by("name"))
    breaches = breaches_with_incidents(
        list(
            Breach.objects.filter(monitor=monitor)
            .select_related("monitor_check", "version", "retrained_version")
            .order_by("-opened_at", "-id")[:RECENT_BREACHES]
        )
    )
    open_breaches = Breach.objects.filter(monitor=monitor, resolved_at__isnull=True).count()
    schema = monitor.schema or (reference.schema if reference else {}) or {}
    check_columns = list(schema) or columns
    context.update(
        reference=reference,
        heatmap=heatmap,
        heatmap_batches=len(heat),
        columns=columns,
        perf_chart=perf_chart,
        metrics=metrics,
        metric=metric,
        reference_metric=(reference.performance or {}).get(metric) if reference and metric else None,
        page=page,
        query=urlencode(
            {k: v for k, v in {"monitor": monitor.pk, "version": selection.version}.items() if v is not None}
        ),
        versions=_versions_with_batches(monitor),
        checks=checks,
        breaches=breaches,
        open_breaches=open_breaches,
        window=window_summary(monitor, reference, timezone.now()),
        schema_rows=[{"name": n, **c} for n, c in schema.items()],
        is_operator=has_role(request.user, Role.OPERATOR),
    )
    if is_admin:
        edit_check = forms.get("edit_check")
        for check in checks:
            check.form = (
                edit_check
                if edit_check is not None and getattr(edit_check, "check_pk", None) == check.pk
                else CheckForm(
                    prefix="check", auto_id=f"id_check{check.pk}_%s", initial=CheckForm.initial_of(check),
                    columns=check_columns, model=model, hooks=hooks,
                )
            )  # fmt: skip
        context.update(
            edit_form=forms.get("edit_form")
            or EditMonitorForm(prefix="edit", initial=EditMonitorForm.initial_of(monitor)),
            reference_form=forms.get("reference_form") or ReferenceUploadForm(prefix="reference"),
            schema_form=forms.get("schema_form") or SchemaForm(prefix="schema", schema=schema),
            check_form=forms.get("check_form")
            or CheckForm(prefix="check", auto_id="id_check_%s", columns=check_columns, model=model, hooks=hooks),
        )
    context["batch_form"] = forms.get("batch_form") or BatchUploadForm(prefix="batch")
    if selection.problems and status == 200:
        status = 400
    return _render(request, context, status)


def _render(request: HttpRequest, context: dict, status: int) -> HttpResponse:
    response = render(request, "mlops/monitoring.html", context, status=status)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@never_cache  # it may show a new retraining hook's secret, once
@role_required(Role.VIEWER)
def monitoring(request: HttpRequest, name: str) -> HttpResponse:
    """A model's Monitoring tab: `?monitor=` picks a monitor, `?version=` filters, `?batch=&column=` focuses."""
    return monitoring_page(request, model_or_404(name))


# --- the batch report ----------------------------------------------------------------------------------------


def batch_or_404(model: RegisteredModel, pk: int) -> MonitoringBatch:
    batch = (
        MonitoringBatch.objects.filter(pk=pk, monitor__model=model)
        .select_related("monitor", "version", "reference", "created_by")
        .first()
    )
    if batch is None:
        raise Http404(f"{model.name} has no monitoring batch #{pk}.")
    batch.monitor.model = model
    return batch


@role_required(Role.VIEWER)
def batch_report(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """One batch's report: drift per column with its distribution, data quality, performance, breaches."""
    model = model_or_404(name)
    batch = batch_or_404(model, pk)
    reference = batch.reference
    results = column_results(batch)
    columns = column_order(reference, [batch.drift or {}])
    drift_rows, charts_list = [], []
    for index, column in enumerate(columns):
        result = results.get(column)
        score = charts.drift_score(result) if result else None
        drift_rows.append(
            {"column": column, "result": result, "score": score, "anchor": f"col-{slugify(column)}-{index}"}
        )
        if len(charts_list) < REPORT_CHART_COLUMNS and result is not None:
            chart = overlay(reference, batch, column, "this batch")
            if chart is not None:
                charts_list.append(
                    {"column": column, "id": f"dist-{index}", "figure": chart, "anchor": drift_rows[-1]["anchor"]}
                )
    skipped = (batch.drift or {}).get("skipped", [])
    breaches = breaches_with_incidents(
        list(Breach.objects.filter(batch=batch).select_related("monitor_check").order_by("-opened_at", "-id"))
    )
    neighbours = MonitoringBatch.objects.filter(monitor=batch.monitor).only("id", "end")
    previous = neighbours.filter(end__lt=batch.end).order_by("-end", "-id").first()
    following = neighbours.filter(end__gt=batch.end).order_by("end", "id").first()
    context = {
        "model": model,
        "monitor": batch.monitor,
        "batch": batch,
        "reference": reference,
        "drift": batch.drift or {},
        "drift_rows": drift_rows,
        "skipped": skipped,
        "distribution_charts": charts_list,
        "more_columns": max(0, sum(1 for r in drift_rows if r["result"]) - len(charts_list)),
        "quality": quality_rows(batch),
        "performance": performance_rows(batch, reference),
        "breaches": breaches,
        "previous": previous,
        "following": following,
        "monitoring_url": monitoring_url(model, monitor=batch.monitor_id),
        "download_url": reverse("mlops:batch_download", args=[model.name, batch.pk]),
    }
    return render(request, "mlops/monitoring_batch.html", context)


@role_required(Role.VIEWER)
def batch_download(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """The batch's drift report as one self-contained HTML file (see `monitoring_report.batch_html`)."""
    model = model_or_404(name)
    batch = batch_or_404(model, pk)
    response = HttpResponse(batch_html(batch, drift_options(batch.monitor)), content_type="text/html; charset=utf-8")
    filename = f"{slugify(model.name) or 'model'}-batch-{batch.pk}-drift-report.html"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
