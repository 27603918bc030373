"""Prometheus-compatible source pages and their watched queries.

The source list (URL, auth, last test, how many queries and how many failing), one source (its
watched queries with their last pull), the source form with Test (htmx: the unsaved values, the
stored secret if none is typed), one watched query (last pull, the series it stores) and its form.
Writes go through `aiops.services` (save/delete_prom_source, save/delete_watched_query,
run_watched_query_now) and `services.prom_sources.record_prom_source_test`, which audit them.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.filters import checked_filters
from opsportal.portal.forms import StyledForm
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without

from .. import services
from ..metric_forms import SourceForm, TestSourceForm, WatchedQueryForm
from ..models import PromSource, Series, WatchedQuery
from ..services.prom_sources import TESTED, record_prom_source_test, with_last_test
from .display import page_of

SERIES_SHOWN = 20
QUERY_STATES = {
    "up": Q(enabled=True, last_ok=True),
    "down": Q(enabled=True, last_ok=False),
    "pending": Q(enabled=True, last_ok__isnull=True),
    "paused": Q(enabled=False),
}

QUERY_STATE_CHOICES = [("", "All"), ("up", "Ok"), ("down", "Failing"), ("pending", "Not pulled yet"),
                       ("paused", "Disabled")]  # fmt: skip


class SourceFilterForm(StyledForm):
    q = forms.CharField(required=False, label="Search", help_text="Name or URL.")


def source_url(source: PromSource) -> str:
    return reverse("aiops:metric_source", args=[source.pk])


def query_url(watched: WatchedQuery) -> str:
    return reverse("aiops:metric_query", args=[watched.pk])


def query_selector(watched: WatchedQuery) -> str:
    """The selector of the series the query stores: its name and its own labels (the result's labels vary)."""
    inner = ",".join(f'{key}="{_escaped(value)}"' for key, value in sorted(watched.labels.items()))
    return f"{watched.name}{{{inner}}}" if inner else watched.name


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def explorer_url(selector: str) -> str:
    return f"{reverse('aiops:metric_explorer')}?{urlencode({'q': selector})}"


def _last_test(source: PromSource) -> dict | None:
    """The annotated last test (with_last_test) in words: {ok, text, at}."""
    if not source.last_test:
        return None
    text = source.last_test.removeprefix(TESTED)
    ok = text.startswith("ok")
    return {"ok": ok, "text": text if ok else text.removeprefix("failed: "), "at": source.last_test_at}


def _with_query_counts(sources):
    return sources.annotate(
        query_count=Count("queries", distinct=True),
        failing_count=Count("queries", filter=Q(queries__enabled=True, queries__last_ok=False), distinct=True),
    )


@role_required(Role.VIEWER)
def metric_sources(request: HttpRequest) -> HttpResponse:
    """Sources with their URL, auth kind, last recorded test and how many of their watched queries fail."""
    data, problems = checked_filters(request.GET, SourceFilterForm().fields, bind=SourceFilterForm)
    form = SourceFilterForm(data)
    sources = _with_query_counts(with_last_test(PromSource.objects.order_by("name", "id")))
    if form.is_valid() and form.cleaned_data["q"]:
        text = form.cleaned_data["q"]
        sources = sources.filter(Q(name__icontains=text) | Q(base_url__icontains=text))
    page = page_of(request, sources)
    rows = list(page)
    for source in rows:
        source.test = _last_test(source)
    context = {
        "filter_form": form,
        "filter_problems": problems,
        "page": page,
        "rows": rows,
        "query": query_without(request, "page"),
    }
    return render_page_or_partial(
        request, "aiops/metric_source_list.html", "aiops/partials/metric_source_table.html", context
    )


@never_cache
@role_required(Role.VIEWER)
def metric_source(request: HttpRequest, pk: int) -> HttpResponse:
    """One source: settings, last test, and its watched queries with their last pull (filterable by state)."""
    source = get_object_or_404(with_last_test(PromSource.objects.all()), pk=pk)
    source.test = _last_test(source)
    state = request.GET.get("state", "")
    problems = []
    queries = WatchedQuery.objects.filter(source=source).order_by("name", "id")
    if state in QUERY_STATES:
        queries = queries.filter(QUERY_STATES[state])
    elif state:
        problems.append(f"state: “{state[:50]}” is not one of {', '.join(QUERY_STATES)}; all queries are shown.")
        state = ""
    page = page_of(request, queries)
    rows = list(page)
    for watched in rows:
        watched.explorer_url = explorer_url(query_selector(watched))
    context = {
        "source": source,
        "page": page,
        "rows": rows,
        "state": state,
        "filter_problems": problems,
        "states": QUERY_STATE_CHOICES,
        "query": query_without(request, "page"),
        "counts": WatchedQuery.objects.filter(source=source).aggregate(
            total=Count("id"), failing=Count("id", filter=QUERY_STATES["down"])
        ),
    }
    return render_page_or_partial(
        request, "aiops/metric_source_detail.html", "aiops/partials/metric_query_table.html", context
    )


def _tested(source: PromSource, report, data: dict) -> str:
    if report.ok:
        return f"{source.name} answers: the API query took {report.duration_seconds * 1000:.0f} ms."
    return ""


def _test_saved(request: HttpRequest, source: PromSource, data: dict):
    report = record_prom_source_test(source=source, actor=request.user)
    if not report.ok:
        messages.error(request, f"{source.name} failed the test: {report.error}")
    return report


SOURCE_ACTIONS = {
    "test": PageAction(run=_test_saved, success=_tested),
    "enable": PageAction(
        run=lambda request, source, data: services.save_prom_source(source=source, enabled=True, actor=request.user),
        success=lambda source, result, data: f"{source.name} enabled: its watched queries are pulled.",
    ),
    "disable": PageAction(
        run=lambda request, source, data: services.save_prom_source(source=source, enabled=False, actor=request.user),
        success=lambda source, result, data: f"{source.name} disabled: none of its queries is pulled until enabled.",
    ),
    "delete": PageAction(
        run=lambda request, source, data: services.delete_prom_source(source=source, actor=request.user),
        success=lambda source, result, data: (
            f"Source {source.name} and its watched queries deleted; their series stay until retention."
        ),
        next=lambda source, result: "aiops:metric_sources",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def metric_source_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """test (the saved source, recorded as its last test) / enable / disable / delete (with its queries)."""
    source = get_object_or_404(PromSource, pk=pk)
    return dispatch(request, SOURCE_ACTIONS, action, source, default_next=source_url(source))


@never_cache
@role_required(Role.OPERATOR)
def metric_source_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; Test asks the form's values for `vector(1)` without saving (the stored secret if none is typed)."""
    source = get_object_or_404(PromSource, pk=pk) if pk else None
    initial = SourceForm.initial_for(source) if source else {}
    testing = request.method == "POST" and "_test" in request.POST
    form_class = TestSourceForm if testing else SourceForm
    form = form_class(request.POST or None, initial=initial, stored=source)
    test = None
    status = 200
    if testing:
        test = _test(form)
        status = 400 if test.get("refused") else 200
        if request.htmx:
            return render(request, "aiops/partials/metric_source_test_result.html", {"test": test}, status=status)
    elif request.method == "POST" and form.is_valid():
        try:
            saved = services.save_prom_source(actor=request.user, source=source, **form.service_values())
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Source {saved.name} saved.")
            return redirect(source_url(saved))
    if form.is_bound and form.errors:
        status = 400
    context = {"form": form, "source": source, "test": test}
    return render(request, "aiops/metric_source_form.html", context, status=status)


def _test(form: TestSourceForm) -> dict:
    """The outcome of asking the form's source one query (nothing stored), or why it was not asked."""
    if not form.is_valid():
        return {"refused": form.problem()}
    try:
        report = services.test_prom_source(**form.test_values())
    except ServiceError as exc:
        label = form.fields[exc.field].label if exc.field in form.fields else exc.field
        return {"refused": f"{label}: {exc.message}" if label else exc.message, "field": exc.field}
    return {"report": report}


@never_cache
@role_required(Role.VIEWER)
def metric_query(request: HttpRequest, pk: int) -> HttpResponse:
    """One watched query: its settings, last pull (error as the source worded it), the series it stores."""
    watched = get_object_or_404(WatchedQuery.objects.select_related("source"), pk=pk)
    selector = query_selector(watched)
    series = Series.objects.filter(name=watched.name, labels__contains=watched.labels).order_by("id")
    shown = list(series[:SERIES_SHOWN])
    for one in shown:
        one.explorer_url = f"{reverse('aiops:metric_explorer')}?{urlencode({'series': one.pk})}"
    context = {
        "watched": watched,
        "source": watched.source,
        "selector": selector,
        "explorer_url": explorer_url(selector),
        "series_count": series.count() if len(shown) == SERIES_SHOWN else len(shown),
        "series": shown,
        "service": watched.labels.get("service", ""),
    }
    return render(request, "aiops/metric_query_detail.html", context)


def _pull_now(request: HttpRequest, watched: WatchedQuery, data: dict) -> WatchedQuery:
    before = watched.last_run_at
    pulled = services.run_watched_query_now(watched=watched, actor=request.user)
    if pulled.last_run_at == before:
        messages.info(request, f"Nothing new to pull for {pulled.name}: its last step is already stored.")
    elif not pulled.last_ok:
        messages.error(request, f"Pulling {pulled.name} failed: {pulled.last_error}")
    return pulled


def _pulled(watched: WatchedQuery, result: WatchedQuery, data: dict) -> str:
    if not result.last_ok or result.last_run_at is None or result.last_duration_seconds is None:
        return ""
    samples = result.last_sample_count or 0
    milliseconds = result.last_duration_seconds * 1000
    return f"Pulled {result.name}: {samples} sample{'s' if samples != 1 else ''} in {milliseconds:.0f} ms."


QUERY_ACTIONS = {
    "pull": PageAction(run=_pull_now, success=_pulled),
    "enable": PageAction(
        run=lambda request, watched, data: services.save_watched_query(
            watched=watched, enabled=True, actor=request.user
        ),
        success=lambda watched, result, data: f"{watched.name} enabled: pulled every {watched.interval_seconds} s.",
    ),
    "disable": PageAction(
        run=lambda request, watched, data: services.save_watched_query(
            watched=watched, enabled=False, actor=request.user
        ),
        success=lambda watched, result, data: f"{watched.name} disabled: not pulled until enabled.",
    ),
    "delete": PageAction(
        run=lambda request, watched, data: services.delete_watched_query(watched=watched, actor=request.user),
        success=lambda watched, result, data: f"Watched query {watched.name} deleted; its series stay until retention.",
        next=lambda watched, result: source_url(watched.source),
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def metric_query_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """pull (now: the steps since the last pull, stored) / enable / disable / delete."""
    watched = get_object_or_404(WatchedQuery.objects.select_related("source"), pk=pk)
    return dispatch(request, QUERY_ACTIONS, action, watched, default_next=query_url(watched))


@never_cache
@role_required(Role.OPERATOR)
def metric_query_edit(request: HttpRequest, pk: int | None = None, source_pk: int | None = None) -> HttpResponse:
    """A new watched query of a source (`source_pk`), or an existing one (`pk`)."""
    watched = get_object_or_404(WatchedQuery.objects.select_related("source"), pk=pk) if pk else None
    source = watched.source if watched else get_object_or_404(PromSource, pk=source_pk)
    initial = WatchedQueryForm.initial_for(watched) if watched else {}
    form = WatchedQueryForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        values = form.service_values()
        try:
            saved = services.save_watched_query(
                actor=request.user, watched=watched, source=None if watched else source, **values
            )
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Watched query {saved.name} saved.")
            return redirect(query_url(saved))
    if form.is_bound and form.errors:
        status = 400
    context = {"form": form, "watched": watched, "source": source}
    return render(request, "aiops/metric_query_form.html", context, status=status)
