"""LLM monitor pages: the monitors with their current value and state (and, for operators, a form for a new
one), and one monitor (its value against the bound over time, its recent readings, the edit form)."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, require_role, role_required
from opsportal.portal.actions import apply_form
from opsportal.portal.charts import figure_data
from opsportal.portal.forms import StyledForm
from opsportal.portal.htmx import render_page_or_partial

from .. import monitor_charts
from ..models import GuardPolicy, LLMMonitor, PromptVersion
from ..services import monitors as monitor_services

CHART_HOURS = 24
RECENT_READINGS = 20


class MonitorForm(StyledForm):
    """A monitor's rule; the scope fields that do not apply to the chosen metric must stay empty."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    metric = forms.ChoiceField(choices=LLMMonitor.Metric.choices)
    service = forms.CharField(required=False, max_length=200, help_text="Error rate, latency, cost.")
    model = forms.CharField(required=False, max_length=200, help_text="Error rate, latency, cost, pass rate.")
    prompt_version = forms.ModelChoiceField(
        queryset=PromptVersion.objects.select_related("prompt").order_by("prompt__name", "-version"),
        required=False, empty_label="Any", help_text="Error rate, latency, cost, pass rate.",
    )  # fmt: skip
    guard_policy = forms.ModelChoiceField(queryset=GuardPolicy.objects.all(), required=False, empty_label="Any",
                                          help_text="Guard violation rate.")  # fmt: skip
    score_name = forms.CharField(required=False, max_length=100, help_text="Pass rate: scores of this name.")
    comparison = forms.ChoiceField(choices=LLMMonitor.Comparison.choices, label="Fires when the value is")
    threshold = forms.FloatField(min_value=0, label="Bound",
                                 help_text="Rates as fractions (0.05 is 5 %), latency in ms, cost in USD.")  # fmt: skip
    window_minutes = forms.IntegerField(min_value=1, initial=60, label="Window (minutes)")
    min_samples = forms.IntegerField(min_value=0, initial=10, label="Minimum samples",
                                     help_text="Rates and latency: fewer is 'not enough data'.")  # fmt: skip
    severity = forms.ChoiceField(choices=LLMMonitor.Severity.choices, initial=LLMMonitor.Severity.WARNING)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt_version"].label_from_instance = lambda v: f"{v.prompt.name} v{v.version}"


def _initial(monitor: LLMMonitor) -> dict:
    return {name: getattr(monitor, name) for name in monitor_services.MONITOR_FIELDS}


@role_required(Role.VIEWER)
def monitor_list(request: HttpRequest) -> HttpResponse:
    """Every monitor with its current value, bound and state; operators create monitors here."""
    form = MonitorForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Creating an LLM monitor")
        form = MonitorForm(request.POST, prefix="new")
        ok, monitor = apply_form(form, lambda data: monitor_services.create_monitor(actor=request.user, **data))
        if ok:
            messages.success(request, f"Monitor {monitor.name} created; it is evaluated within a minute.")
            return redirect(monitor.get_absolute_url())
    context = {
        "monitors": LLMMonitor.objects.select_related("prompt_version__prompt", "guard_policy"),
        "form": form,
        "is_operator": has_role(request.user, Role.OPERATOR),
    }
    response = render_page_or_partial(request, "llmops/monitor_list.html", "llmops/monitor_table.html", context)
    if form.errors:
        response.status_code = 400
    return response


@role_required(Role.VIEWER)
def monitor_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One monitor: its value against the bound over the last day, recent readings; operators edit it here."""
    monitor = get_object_or_404(LLMMonitor.objects.select_related("prompt_version__prompt", "guard_policy"), pk=pk)
    form = MonitorForm(initial=_initial(monitor))
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Changing an LLM monitor")
        form = MonitorForm(request.POST)
        ok, _ = apply_form(form, lambda data: monitor_services.update_monitor(monitor=monitor, actor=request.user,
                                                                             **data))  # fmt: skip
        if ok:
            messages.success(request, f"Monitor {monitor.name} saved.")
            return redirect(monitor.get_absolute_url())
        monitor.refresh_from_db()
    since = timezone.now() - datetime.timedelta(hours=CHART_HOURS)
    readings = list(monitor.readings.filter(at__gte=since).order_by("at"))
    for reading in readings:
        reading.shown = monitor.format_value(reading.value)
    context = {
        "monitor": monitor,
        "form": form,
        "chart": figure_data(monitor_charts.value_vs_bound(monitor, readings)),
        "readings": readings[::-1][:RECENT_READINGS],
        "traces_url": monitor_services.traces_url(monitor, timezone.now() - datetime.timedelta(
            minutes=monitor.window_minutes)),
        "is_operator": has_role(request.user, Role.OPERATOR),
    }  # fmt: skip
    return render(request, "llmops/monitor_detail.html", context, status=400 if form.errors else 200)


@require_POST
@role_required(Role.OPERATOR)
def monitor_delete(request: HttpRequest, pk: int) -> HttpResponse:
    monitor = get_object_or_404(LLMMonitor, pk=pk)
    monitor_services.delete_monitor(monitor=monitor, actor=request.user)
    messages.success(request, f"Monitor {monitor.name} deleted; its alert, if firing, is resolved.")
    return redirect("llmops:monitors")
