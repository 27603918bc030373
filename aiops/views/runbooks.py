"""Runbook pages: the list (with the kill switch), a runbook (runs, success rate, MTTR with and without it),
the create/edit form, a run (each step's rendered request and answer, approve/reject/cancel), and the
incident page's runbook panel (start a run in a mode; the incident's runs).

Viewers read; operators start, approve, reject and cancel runs; admins edit runbooks and the kill switch.
Writes go through `aiops.services.runbooks`, which audits them.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.db.models import Count, Max, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, require_role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import add_service_error
from opsportal.portal.charts import figure_data
from opsportal.portal.htmx import render_page_or_partial

from ..models import Incident, Runbook, RunbookRun, RunbookStepRun
from ..runbook_charts import runbook_mttr
from ..runbook_forms import KillSwitchForm, RunbookForm, StartRunForm
from ..runbooks.step_templates import TEMPLATES
from ..services import runbooks as services
from .display import page_of

POLL_SECONDS = 3
FORM_FIELDS = {"trigger.mode": "trigger_mode", "trigger.match": "match"}


@role_required(Role.VIEWER)
def runbook_list(request: HttpRequest) -> HttpResponse:
    runbooks = Runbook.objects.annotate(run_count=Count("runs"), last_run_at=Max("runs__created_at")).order_by("name")
    page = page_of(request, runbooks)
    in_progress = dict(RunbookRun.objects.in_progress().values_list("runbook").annotate(n=Count("id")).order_by())
    for runbook in page:
        runbook.in_progress = in_progress.get(runbook.pk, 0)
    context = {"page": page, "switch": services.kill_switch(), "switch_form": KillSwitchForm()}
    return render(request, "aiops/runbook_list.html", context)


@require_POST
@role_required(Role.ADMIN)
def runbook_kill_switch(request: HttpRequest) -> HttpResponse:
    """Turn the global kill switch on (`killed=1`) or off."""
    killed = request.POST.get("killed") == "1"
    form = KillSwitchForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.set_kill_switch(killed=killed, actor=request.user, reason=reason)
    if killed:
        messages.warning(request, "Kill switch on: no runbook step starts anywhere until it is turned off.")
    else:
        messages.success(request, "Kill switch off: runbooks run again; runs it held go on.")
    return redirect("aiops:runbooks")


@never_cache
@role_required(Role.VIEWER)
def runbook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    runbook = get_object_or_404(Runbook, pk=pk)
    figures = services.runbook_figures(runbook)
    runs = page_of(request, runbook.runs.select_related("incident", "started_by").order_by("-created_at", "-id"))
    context = {
        "runbook": runbook,
        "figures": figures,
        "runs": runs,
        "steps_json": json.dumps(runbook.steps, indent=2),
        "mttr_chart": figure_data(runbook_mttr(figures)),
        "switch": services.kill_switch(),
    }
    return render(request, "aiops/runbook_detail.html", context)


@never_cache
@role_required(Role.ADMIN)
def runbook_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; a bad step is shown on the steps field (400) naming the step, and nothing is saved."""
    runbook = get_object_or_404(Runbook, pk=pk) if pk else None
    initial = RunbookForm.initial_for(runbook) if runbook else {"steps": "[]"}
    form = RunbookForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        values = form.service_values()
        try:
            if runbook:
                saved = services.update_runbook(runbook=runbook, actor=request.user, **values)
            else:
                saved = services.create_runbook(actor=request.user, **values)
        except ServiceError as exc:
            add_service_error(form, exc, FORM_FIELDS)
        else:
            messages.success(request, f"Runbook {saved.name} saved.")
            return redirect(saved)
    if form.is_bound and form.errors:
        status = 400
    templates = [{"key": t.key, "title": t.title, "description": t.description, "secrets": t.secrets,
                  "step": json.dumps(t.step, indent=2)} for t in TEMPLATES]  # fmt: skip
    context = {"form": form, "runbook": runbook, "templates": templates}
    return render(request, "aiops/runbook_form.html", context, status=status)


@require_POST
@role_required(Role.ADMIN)
def runbook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    runbook = get_object_or_404(Runbook, pk=pk)
    try:
        services.delete_runbook(runbook=runbook, actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect(runbook)
    messages.success(request, f"Runbook {runbook.name} deleted.")
    return redirect("aiops:runbooks")


def _run_with_steps(pk: int) -> RunbookRun:
    steps = Prefetch("step_runs", queryset=RunbookStepRun.objects.order_by("position"))
    queryset = RunbookRun.objects.select_related("runbook", "incident", "started_by", "decided_by")
    return get_object_or_404(queryset.prefetch_related(steps), pk=pk)


@never_cache
@role_required(Role.VIEWER)
def runbook_run(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: each step with its rendered request and answer; polls while the run is in progress."""
    run = _run_with_steps(pk)
    for step in run.step_runs.all():
        step.request_json = json.dumps(step.request, indent=2) if step.request else ""
        step.extracted_json = json.dumps(step.extracted) if step.extracted else ""
    context = {"run": run, "remediation": run.remediation(), "poll_seconds": POLL_SECONDS}
    return render_page_or_partial(request, "aiops/runbook_run.html", "aiops/partials/runbook_run_steps.html", context)


RUN_ACTIONS = {
    "approve": (services.approve_run, "Run #{pk} approved: it goes on with its next step."),
    "reject": (services.reject_run, "Run #{pk} rejected: nothing more is sent."),
    "cancel": (services.cancel_run, "Run #{pk} cancelled (or stops after the step underway)."),
}


@require_POST
@role_required(Role.OPERATOR)
def runbook_run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    run = get_object_or_404(RunbookRun.objects.select_related("runbook", "incident"), pk=pk)
    if action not in RUN_ACTIONS:
        messages.error(request, f"action: {action[:40]!r} is not one of {', '.join(RUN_ACTIONS)}.")
        return redirect(run)
    change, text = RUN_ACTIONS[action]
    try:
        change(run=run, actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, text.format(pk=run.pk))
    return redirect(run)


@never_cache
@role_required(Role.VIEWER)
def incident_runbooks(request: HttpRequest, pk: int) -> HttpResponse:
    """The incident page's panel: GET shows its runs (and, for operators, a runbook to run in a mode); POST starts."""
    incident = get_object_or_404(Incident, pk=pk)
    form = StartRunForm(request.POST or None)
    status = 200
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Running a runbook")
        if form.is_valid():
            try:
                run = services.start_run(
                    runbook=form.cleaned_data["runbook"], incident=incident, mode=form.cleaned_data["mode"],
                    actor=request.user,
                )  # fmt: skip
            except ServiceError as exc:
                form.add_error(None, str(exc))
            else:
                if not request.headers.get("HX-Request"):
                    messages.success(request, f"Run #{run.pk} of {run.runbook.name} started ({run.mode}).")
                    return redirect(run)
                form = StartRunForm()
        if form.errors:
            status = 400
    runs = services.runs_for_incident(incident)
    context = {
        "incident": incident,
        "runbook_panel": True,
        "runbook_runs": runs,
        "runbook_form": form,
        "runbooks_exist": Runbook.objects.filter(enabled=True).exists(),
        "runbook_poll": any(not r.is_finished for r in runs),
    }
    return render(request, "aiops/partials/incident_runbooks.html", context, status=status)
