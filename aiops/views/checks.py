"""Check pages: the list (state, uptime, sparklines, bulk pause), one check (chart, results, pings), the form.

Everything is read and written through `aiops.services` (checks) and `services.check_pages` (the
list's latest runs); each page reads a whole page of checks in a fixed number of queries.
"""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.charts import figure_data
from opsportal.portal.filters import checked_filters
from opsportal.portal.forms import StyledForm
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without, safe_next

from .. import check_charts, services
from ..check_forms import CheckForm
from ..models import Check, CheckResult, Ping
from ..services import check_pages
from .display import page_of

RESULTS_PAGE_SIZE = 50
PINGS_SHOWN = 20
INCIDENTS_SHOWN = 20
WINDOWS = {"1h": datetime.timedelta(hours=1), "24h": datetime.timedelta(hours=24), "7d": datetime.timedelta(days=7),
           "30d": datetime.timedelta(days=30)}  # fmt: skip


class CheckFilterForm(StyledForm):
    q = forms.CharField(required=False, label="Search", help_text="Name, service or target.")
    status = forms.MultipleChoiceField(choices=Check.Status.choices, required=False)
    kind = forms.MultipleChoiceField(choices=Check.Kind.choices, required=False)
    service = forms.CharField(required=False)


def _filtered(data) -> tuple[CheckFilterForm, list[str], object]:
    data, problems = checked_filters(data, CheckFilterForm().fields, bind=CheckFilterForm)
    form = CheckFilterForm(data)
    checks = Check.objects.select_related("owner").order_by("name", "id")
    if form.is_valid():
        values = form.cleaned_data
        if values["status"]:
            checks = checks.filter(status__in=values["status"])
        if values["kind"]:
            checks = checks.filter(kind__in=values["kind"])
        if values["service"]:
            checks = checks.filter(service=values["service"])
        if values["q"]:
            text = values["q"]
            checks = checks.filter(
                Q(name__icontains=text) | Q(service__icontains=text) | Q(config__url__icontains=text)
                | Q(config__host__icontains=text) | Q(config__name__icontains=text)
            )  # fmt: skip
    return form, problems, checks


def _counts() -> list[tuple[str, str, int]]:
    """(status, label, how many checks) for every status, in one query."""
    found = dict(Check.objects.order_by().values_list("status").annotate(n=Count("id")))
    return [(value, label, found.get(value, 0)) for value, label in Check.Status.choices]


@role_required(Role.VIEWER)
def check_list(request: HttpRequest) -> HttpResponse:
    """Checks with their state, last latency, uptime and a sparkline of the latest runs; htmx refreshes the table."""
    form, problems, checks = _filtered(request.GET)
    page = page_of(request, checks)
    rows = list(page)
    ids = [check.pk for check in rows]
    uptime = services.uptime(check_ids=ids)
    runs = check_pages.latest_runs(check_ids=ids)
    for check in rows:
        check.uptime = uptime[check.pk]
        check.spark = check_charts.sparkline(runs[check.pk])
    context = {
        "filter_form": form,
        "filter_problems": problems,
        "page": page,
        "rows": rows,
        "query": query_without(request, "page"),
        "counts": _counts(),
    }
    return render_page_or_partial(request, "aiops/check_list.html", "aiops/partials/check_table.html", context)


def _window(request: HttpRequest) -> tuple[str, datetime.timedelta]:
    name = request.GET.get("window", "24h")
    return (name, WINDOWS[name]) if name in WINDOWS else ("24h", WINDOWS["24h"])


@never_cache  # a heartbeat's page shows its ping URL, a secret
@role_required(Role.VIEWER)
def check_detail(request: HttpRequest, pk: int) -> HttpResponse:
    check = get_object_or_404(Check.objects.select_related("owner"), pk=pk)
    results = page_of(request, CheckResult.objects.filter(check_obj=check).order_by("-at", "-id"), RESULTS_PAGE_SIZE)
    if request.htmx and request.GET.get("part") == "results":
        return render(request, "aiops/partials/check_results.html", {"check": check, "results": results})
    window, span = _window(request)
    until = timezone.now()
    since = until - span
    points = services.latency_series(check=check, since=since, until=until, max_points=1500)
    periods = services.down_periods(check=check, since=since, until=until)
    context = {
        "check": check,
        "uptime": services.uptime(check_ids=[check.pk])[check.pk],
        "window": window,
        "windows": list(WINDOWS),
        "chart": figure_data(check_charts.latency_chart(points, periods, since=since, until=until)),
        "down_count": len(periods),
        "results": results,
        "incidents": list(services.incidents_opened(check=check)[:INCIDENTS_SHOWN]),
    }
    if check.is_heartbeat:
        url = services.ping_url(check, request.build_absolute_uri("/"))
        context.update(
            ping_url=url,
            examples=heartbeat_examples(url, check),
            pings=list(Ping.objects.filter(check_obj=check).order_by("-at", "-id")[:PINGS_SHOWN]),
        )
    return render(request, "aiops/check_detail.html", context)


def heartbeat_examples(url: str, check: Check) -> list[dict[str, str]]:
    """Copy-paste ways to ping `url`: once, start and end of a job, with its exit status, and a crontab line."""
    curl = "curl -fsS -m 10 --retry 5 -o /dev/null"
    schedule = check.cron or "*/5 * * * *"
    return [
        {"title": "When the job succeeds", "text": f"{curl} {url}"},
        {"title": "At start and end (the run's duration is measured; no success within the grace time is down)",
         "text": f"{curl} {url}/start\n/usr/local/bin/backup.sh && {curl} {url} || {curl} {url}/fail"},
        {"title": "With the job's exit status (0 is up, anything else is down)",
         "text": f"/usr/local/bin/backup.sh; {curl} {url}/$?"},
        {"title": "Sending the job's output (the first 10 KB are kept)",
         "text": f"/usr/local/bin/backup.sh 2>&1 | tail -c 10000 | {curl} --data-binary @- {url}"},
        {"title": "crontab" + (f" (this check's schedule, {check.tz})" if check.cron else ""),
         "text": f"{schedule} /usr/local/bin/backup.sh; {curl} {url}/$?"},
    ]  # fmt: skip


def _run_now(request: HttpRequest, check: Check, data: dict) -> CheckResult:
    return services.run_check_now(check=check)


def _ran(check: Check, result: CheckResult, data: dict) -> str:
    if result is None:
        return "Ran the check."
    latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
    return f"Ran: up{latency}." if result.up else f"Ran: down{latency}: {result.error[:300]}"


CHECK_ACTIONS = {
    "pause": PageAction(
        run=lambda request, check, data: services.set_paused(check=check, paused=True, actor=request.user),
        success="Paused: not run, no alerts, until resumed.",
    ),
    "resume": PageAction(
        run=lambda request, check, data: services.set_paused(check=check, paused=False, actor=request.user),
        success="Resumed.",
    ),
    "run": PageAction(run=_run_now, success=_ran),
    "delete": PageAction(
        run=lambda request, check, data: services.delete_check(check=check, actor=request.user),
        success=lambda check, result, data: f"Check {check.name} deleted.",
        next=lambda check, result: "aiops:checks",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def check_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """pause / resume / run (now, stored like a scheduled run) / delete."""
    check = get_object_or_404(Check, pk=pk)
    return dispatch(request, CHECK_ACTIONS, action, check)


@require_POST
@role_required(Role.OPERATOR)
def check_bulk(request: HttpRequest) -> HttpResponse:
    """Pause or resume the selected checks, back to the list as it was filtered."""
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    action = request.POST.get("action")
    back = redirect(safe_next(request, reverse("aiops:checks")))
    if action not in ("pause", "resume"):
        messages.error(request, "Choose pause or resume.")
        return back
    if not ids:
        messages.error(request, "Select checks first.")
        return back
    try:
        checks = services.bulk_set_paused(check_ids=ids, paused=action == "pause", actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
        return back
    messages.success(request, f"{len(checks)} check{'s' if len(checks) != 1 else ''} {action}d.")
    return back


@role_required(Role.OPERATOR)
def check_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; "Test now" (htmx, or the plain button) runs the form's check once without saving it."""
    check = get_object_or_404(Check, pk=pk) if pk else None
    initial = CheckForm.initial_for(check) if check else {}
    form = CheckForm(request.POST or None, initial=initial, check=check)
    test = None
    status = 200
    if request.method == "POST":
        if "_test" in request.POST:
            test = _test(form)
            status = 400 if test.get("refused") else 200
            if request.htmx:
                return render(request, "aiops/partials/check_test_result.html", {"test": test}, status=status)
        elif form.is_valid():
            saved = _save(request, form, check)
            if saved is not None:
                messages.success(request, f"Check {saved.name} saved.")
                return redirect(saved)
        if form.errors:
            status = 400
    context = {"form": form, "check": check, "kind": form.chosen_kind(), "test": test}
    return render(request, "aiops/check_form.html", context, status=status)


def _save(request: HttpRequest, form: CheckForm, check: Check | None) -> Check | None:
    values = form.service_values()
    try:
        if check is None:
            return services.create_check(actor=request.user, **values)
        values.pop("kind")
        return services.update_check(check=check, actor=request.user, **values)
    except ServiceError as exc:
        form.add_service_error(exc.field, exc.message)
        return None


def _test(form: CheckForm) -> dict:
    """The result of running the form's check once (nothing stored), or what was wrong with the form."""
    if not form.is_valid():
        return {"refused": "; ".join(f"{form[n].label if n in form.fields else n}: {' '.join(e)}"
                                     for n, e in form.errors.items())}  # fmt: skip
    values = form.service_values()
    try:
        outcome = services.test_check(
            kind=values["kind"], config=values["config"], timeout_seconds=values["timeout_seconds"],
            upside_down=bool(values["upside_down"]),
        )  # fmt: skip
    except ServiceError as exc:
        name = form.field_for(exc.field)
        label = form[name].label if name in form.fields else exc.field
        return {"refused": f"{label}: {exc.message}" if label else exc.message, "field": name}
    return {"outcome": outcome}
