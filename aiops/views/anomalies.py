"""Anomaly monitor pages: the list (series scored, open anomalies, precision), one monitor, the form, delete.

Writes go through `aiops.services` (save/delete_anomaly_monitor, set_anomaly_feedback), which audit them.
Precision is the share of the last 30 days' anomalies that nobody marked not interesting.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.actions import PageAction, dispatch

from .. import services
from ..anomaly_forms import AnomalyMonitorForm
from ..models import Anomaly, AnomalyMonitor
from ..services import anomalies as live
from .display import page_of

ANOMALIES_SHOWN = 50
SERIES_SHOWN = 200
FEEDBACK_WORDS = {"not-interesting": "not_interesting", "interesting": ""}


def monitor_url(monitor: AnomalyMonitor) -> str:
    return reverse("aiops:metric_anomaly_monitor", args=[monitor.pk])


def _with_figures(monitors: list[AnomalyMonitor]) -> list[AnomalyMonitor]:
    figures = live.monitor_figures([m.pk for m in monitors])
    for monitor in monitors:
        monitor.figures = figures[monitor.pk]
        monitor.threshold = live.threshold_for(monitor.sensitivity)
        precision = monitor.figures["precision"]
        share = precision.share
        monitor.precision_percent = "" if share is None else f"{share * 100:.0f}%"
        kept = precision.total - precision.not_interesting
        monitor.precision_text = (
            f"{kept} of {precision.total} anomal{'y' if precision.total == 1 else 'ies'} not marked not interesting"
        )
    return monitors


@role_required(Role.VIEWER)
def metric_anomalies(request: HttpRequest) -> HttpResponse:
    """Monitors with how many series they score, how many anomalies are open, and their precision."""
    page = page_of(request, AnomalyMonitor.objects.order_by("name", "id"))
    rows = _with_figures(list(page))
    context = {"page": page, "rows": rows, "days": live.PRECISION_DAYS, "thresholds": live.SENSITIVITY_THRESHOLDS,
               "quiet_minutes": live.QUIET_SECONDS // 60}  # fmt: skip
    return render(request, "aiops/anomaly_list.html", context)


@never_cache
@role_required(Role.VIEWER)
def metric_anomaly_monitor(request: HttpRequest, pk: int) -> HttpResponse:
    """One monitor: its series (last score, expected band, threshold) and its recent anomalies."""
    monitor = get_object_or_404(AnomalyMonitor, pk=pk)
    (monitor,) = _with_figures([monitor])
    rows = monitor.series_states.select_related("series").defer("state").order_by("series__name", "series_id")
    states = list(rows[:SERIES_SHOWN])
    for row in states:
        row.threshold = live.threshold_for(monitor.sensitivity, row.threshold_steps)
        row.band = live.band_text(row.expected_low, row.expected_high)
        row.explorer = f"{reverse('aiops:metric_explorer')}?series={row.series_id}&range=6h"
    found = list(
        monitor.anomalies.select_related("series", "feedback_by", "alert").order_by("-started_at")[:ANOMALIES_SHOWN]
    )
    for one in found:
        one.band = live.band_text(one.expected_low, one.expected_high)
        one.explorer = live.explorer_url(one.series_id, one.started_at, one.ended_at or one.last_above_at)
    context = {
        "monitor": monitor,
        "states": states,
        "anomalies": found,
        "days": live.PRECISION_DAYS,
        "quiet_minutes": live.QUIET_SECONDS // 60,
    }
    return render(request, "aiops/anomaly_detail.html", context)


MONITOR_ACTIONS = {
    "enable": PageAction(
        run=lambda request, monitor, data: services.save_anomaly_monitor(
            monitor=monitor, enabled=True, actor=request.user
        ),
        success=lambda monitor, result, data: f"{monitor.name} enabled: its series are scored from the next minute.",
    ),
    "disable": PageAction(
        run=lambda request, monitor, data: services.save_anomaly_monitor(
            monitor=monitor, enabled=False, actor=request.user
        ),
        success=lambda monitor, result, data: f"{monitor.name} disabled; its open anomalies ended, alerts resolved.",
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def metric_anomaly_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """enable / disable (delete has its own confirmation page)."""
    monitor = get_object_or_404(AnomalyMonitor, pk=pk)
    return dispatch(request, MONITOR_ACTIONS, action, monitor, default_next=monitor_url(monitor))


@require_POST
@role_required(Role.OPERATOR)
def metric_anomaly_feedback(request: HttpRequest, pk: int, feedback: str) -> HttpResponse:
    """not-interesting (kept, alert resolved, the series' threshold up a notch) or interesting (taken back)."""
    found = get_object_or_404(Anomaly.objects.select_related("monitor"), pk=pk)
    if feedback not in FEEDBACK_WORDS:
        messages.error(request, f"feedback: {feedback[:40]!r} is not one of {', '.join(FEEDBACK_WORDS)}.")
        return redirect(monitor_url(found.monitor))
    services.set_anomaly_feedback(anomaly_row=found, feedback=FEEDBACK_WORDS[feedback], actor=request.user)
    if FEEDBACK_WORDS[feedback]:
        messages.success(request, "Marked not interesting: its alert is resolved and this series' threshold is "
                                  "raised a notch.")  # fmt: skip
    else:
        messages.success(request, "Feedback taken back: the series' threshold is lowered a notch again.")
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else monitor_url(found.monitor))


@never_cache
@role_required(Role.OPERATOR)
def metric_anomaly_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what deleting does; POST: delete (its alerts still firing resolve)."""
    monitor = get_object_or_404(AnomalyMonitor, pk=pk)
    if request.method == "POST":
        name = monitor.name
        services.delete_anomaly_monitor(monitor=monitor, actor=request.user)
        messages.success(request, f"Anomaly monitor {name} deleted; the alerts it had firing are resolved.")
        return redirect("aiops:metric_anomalies")
    open_count = monitor.anomalies.open().count()
    return render(request, "aiops/anomaly_delete.html", {"monitor": monitor, "open": open_count})


@never_cache
@role_required(Role.OPERATOR)
def metric_anomaly_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """New or edit; a bad value is shown on its field (400) and nothing is saved."""
    monitor = get_object_or_404(AnomalyMonitor, pk=pk) if pk else None
    initial = AnomalyMonitorForm.initial_for(monitor) if monitor else {}
    form = AnomalyMonitorForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_anomaly_monitor(actor=request.user, monitor=monitor, **form.service_values())
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Anomaly monitor {saved.name} saved; its series are scored within a minute.")
            return redirect(monitor_url(saved))
    if form.is_bound and form.errors:
        status = 400
    context = {"form": form, "monitor": monitor, "thresholds": live.SENSITIVITY_THRESHOLDS}
    return render(request, "aiops/anomaly_form.html", context, status=status)
