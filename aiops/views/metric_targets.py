"""Scrape target pages: the list (last scrape of each), one target (settings, last scrapes, its series), the form.

Writes go through `aiops.services` (save/delete/test_scrape_target, scrape_target_now), which audit
them. The form's Test (htmx, or the plain button) scrapes the values once without saving; Scrape
now stores a scrape and the target page shows its report once (kept in the session across the redirect).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without

from .. import services
from ..metric_forms import TargetFilterForm, TargetForm, TestTargetForm
from ..metrics import query, scrape, store
from ..models import ScrapeTarget, Series
from ..services.scrape_targets import ScrapeReport
from .display import page_of

SCRAPES_SHOWN = 20
SCRAPES_LOOKBACK_SECONDS = 86400
REPORT_KEY = "metric_scrape_report"
STATE_FILTERS = {
    "up": Q(enabled=True, last_ok=True),
    "down": Q(enabled=True, last_ok=False),
    "pending": Q(enabled=True, last_ok__isnull=True),
    "paused": Q(enabled=False),
}


def target_url(target: ScrapeTarget) -> str:
    return reverse("aiops:metric_target", args=[target.pk])


def target_selector(target: ScrapeTarget) -> str:
    """The selector of every series the target yields: its `job` and `instance` labels, as the scraper adds them."""
    labels = scrape.target_labels(target.name, target.url, {})
    return "{" + ",".join(f'{key}="{_escaped(labels[key])}"' for key in ("job", "instance")) + "}"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def explorer_url(selector: str) -> str:
    return f"{reverse('aiops:metric_explorer')}?{urlencode({'q': selector})}"


def _filtered(data) -> tuple[TargetFilterForm, list[str], object]:
    data, problems = checked_filters(data, TargetFilterForm().fields, bind=TargetFilterForm)
    form = TargetFilterForm(data)
    targets = ScrapeTarget.objects.order_by("name", "id")
    if form.is_valid():
        values = form.cleaned_data
        if values["state"]:
            wanted = Q()
            for state in values["state"]:
                wanted |= STATE_FILTERS[state]
            targets = targets.filter(wanted)
        if values["q"]:
            targets = targets.filter(Q(name__icontains=values["q"]) | Q(url__icontains=values["q"]))
    return form, problems, targets


@role_required(Role.VIEWER)
def metric_targets(request: HttpRequest) -> HttpResponse:
    """Targets with their last scrape: up or down (the error as stored), when, how long, how many samples."""
    form, problems, targets = _filtered(request.GET)
    page = page_of(request, targets)
    context = {
        "filter_form": form,
        "filter_problems": problems,
        "page": page,
        "rows": list(page),
        "query": query_without(request, "page"),
    }
    return render_page_or_partial(
        request, "aiops/metric_target_list.html", "aiops/partials/metric_target_table.html", context
    )


def last_scrapes(target: ScrapeTarget) -> list[dict]:
    """The latest scrapes, newest first, read back from the `up`, duration and sample-count series it writes."""
    labels = scrape.target_labels(target.name, target.url, target.labels)
    hashes = {store.series_hash(store.series_key(name, labels)): name for name in scrape.SCRAPE_SERIES}
    ids = {series_id: hashes[digest] for series_id, digest in Series.objects.filter(hash__in=hashes)
           .values_list("id", "hash")}  # fmt: skip
    if not ids:
        return []
    now = time.time()
    points = query.raw_points(list(ids), now - SCRAPES_LOOKBACK_SECONDS, now + 60)
    by_name = {ids[series_id]: dict(zip(*points[series_id], strict=True)) for series_id in ids}
    ups = by_name.get("up", {})
    rows = []
    for at in sorted(ups, reverse=True)[:SCRAPES_SHOWN]:
        samples = by_name.get("scrape_samples_scraped", {}).get(at)
        rows.append({
            "at": datetime.datetime.fromtimestamp(at, datetime.UTC), "up": ups[at] == 1.0,
            "duration": by_name.get("scrape_duration_seconds", {}).get(at),
            "samples": None if samples is None or math.isnan(samples) else int(samples),
        })  # fmt: skip
    return rows


@never_cache
@role_required(Role.VIEWER)
def metric_target(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(ScrapeTarget, pk=pk)
    selector = target_selector(target)
    job_instance = scrape.target_labels(target.name, target.url, {})
    context = {
        "target": target,
        "selector": selector,
        "explorer_url": explorer_url(selector),
        "series_count": Series.objects.filter(labels__contains=job_instance).count(),
        "scrapes": last_scrapes(target),
        "report": request.session.pop(f"{REPORT_KEY}:{target.pk}", None),
    }
    return render(request, "aiops/metric_target_detail.html", context)


def _scrape_now(request: HttpRequest, target: ScrapeTarget, data: dict) -> ScrapeReport:
    report = services.scrape_target_now(target=target, actor=request.user)
    request.session[f"{REPORT_KEY}:{target.pk}"] = dataclasses.asdict(report)
    return report


def _scraped(target: ScrapeTarget, report: ScrapeReport, data: dict) -> str:
    if report.ok:
        milliseconds = report.duration_seconds * 1000
        return f"Scraped {target.name}: up, {report.samples_scraped} samples in {milliseconds:.0f} ms."
    return ""


TARGET_ACTIONS = {
    "scrape": PageAction(run=_scrape_now, success=_scraped),
    "enable": PageAction(
        run=lambda request, target, data: services.save_scrape_target(target=target, enabled=True, actor=request.user),
        success=lambda target, result, data: f"{target.name} enabled: scraped every {target.interval_seconds} s.",
    ),
    "disable": PageAction(
        run=lambda request, target, data: services.save_scrape_target(target=target, enabled=False, actor=request.user),
        success=lambda target, result, data: f"{target.name} disabled: not scraped until enabled.",
    ),
    "delete": PageAction(
        run=lambda request, target, data: services.delete_scrape_target(target=target, actor=request.user),
        success=lambda target, result, data: f"Scrape target {target.name} deleted; its series stay until retention.",
        next=lambda target, result: "aiops:metric_targets",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def metric_target_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """scrape (now, stored; the report shown on the target page) / enable / disable / delete."""
    target = get_object_or_404(ScrapeTarget, pk=pk)
    return dispatch(request, TARGET_ACTIONS, action, target, default_next=target_url(target))


@never_cache
@role_required(Role.OPERATOR)
def metric_target_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; Test scrapes the form's values once without saving (the stored secret if none is typed)."""
    target = get_object_or_404(ScrapeTarget, pk=pk) if pk else None
    initial = TargetForm.initial_for(target) if target else {}
    testing = request.method == "POST" and "_test" in request.POST
    form_class = TestTargetForm if testing else TargetForm
    form = form_class(request.POST or None, initial=initial, stored=target)
    test = None
    status = 200
    if testing:
        test = _test(form)
        status = 400 if test.get("refused") else 200
        if request.htmx:
            return render(request, "aiops/partials/metric_target_test_result.html", {"test": test}, status=status)
    elif request.method == "POST" and form.is_valid():
        try:
            saved = services.save_scrape_target(actor=request.user, target=target, **form.service_values())
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Scrape target {saved.name} saved.")
            return redirect(target_url(saved))
    if form.is_bound and form.errors:
        status = 400
    return render(request, "aiops/metric_target_form.html", {"form": form, "target": target, "test": test},
                  status=status)  # fmt: skip


def _test(form: TestTargetForm) -> dict:
    """The report of one scrape of the form's values (nothing stored), or why it was not run."""
    if not form.is_valid():
        return {"refused": form.problem()}
    try:
        report = services.test_scrape_target(**form.test_values())
    except ServiceError as exc:
        label = form.fields[exc.field].label if exc.field in form.fields else exc.field
        return {"refused": f"{label}: {exc.message}" if label else exc.message, "field": exc.field}
    return {"report": report}
