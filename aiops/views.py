"""AIOps pages: incidents (list, detail, actions), alerts, integrations, silences, rules, channels."""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.db import transaction
from django.db.models import Case, Count, Sum, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.charts import figure_data
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without, safe_next

from . import charts, services
from .api.filters import AlertFilter, IncidentFilter
from .forms import (
    AssignForm,
    ChannelForm,
    CommentForm,
    IntegrationForm,
    RuleForm,
    SeverityForm,
    SilenceForm,
    matcher_lines,
    pretty_json,
)
from .models import Alert, CorrelationRule, Incident, Integration, NotificationChannel, NotificationRoute, Silence
from .parsers import GENERIC_SCHEMA_DOC, is_web_url
from .sender_config import sender_configuration

PAGE_SIZE = 50
TIMELINE_LIMIT = 500
STATUS_RANK = ["triggered", "acknowledged", "resolved"]
SEVERITY_ORDER = ["critical", "error", "warning", "info"]


def _page(request: HttpRequest, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def _fail(request: HttpRequest, exc: ValueError) -> None:
    messages.error(request, str(exc))


def _form_problem(form) -> ValueError:
    """The form's errors as one message naming each field."""
    return ValueError(" ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))


def _web_links(links: list) -> list[dict]:
    """Ingest already drops other links; pages check again, as these are sender-controlled."""
    return [link for link in links if isinstance(link, dict) and is_web_url(link.get("href"))]


def _minutes(delta: datetime.timedelta | None) -> float | None:
    return delta.total_seconds() / 60 if delta is not None else None


# --- Incidents ----------------------------------------------------------------------------


@role_required(Role.VIEWER)
def incident_list(request: HttpRequest) -> HttpResponse:
    """Incidents with filters; htmx polls the table every 10 s with the same query string."""
    data = request.GET.copy()
    if not any(k in data for k in ("status", "open", "q", "severity", "service", "assignee", "since", "until")):
        data.setlist("status", ["triggered", "acknowledged"])
    filterset = IncidentFilter(data, queryset=Incident.objects.select_related("assignee"))
    incidents = filterset.qs if filterset.is_valid() else Incident.objects.none()
    ordering = request.GET.get("ordering", "-created_at")
    if ordering.lstrip("-") in ("created_at", "last_alert_at", "alert_count"):
        incidents = incidents.order_by(ordering, "-id")
    elif ordering.lstrip("-") in ("status", "severity"):
        # In triage order (triggered before acknowledged; critical before info), not alphabetical.
        rank = STATUS_RANK if ordering.lstrip("-") == "status" else SEVERITY_ORDER
        key = Case(*[When(**{ordering.lstrip("-"): v, "then": Value(i)}) for i, v in enumerate(rank)], default=Value(9))
        incidents = incidents.order_by(key.desc() if ordering.startswith("-") else key, "-created_at")
    context = {
        "filter": filterset,
        "page": _page(request, incidents),
        "query": query_without(request, "page"),
        "ordering": ordering,
        "counts": Incident.objects.open().count_by_severity(),
    }
    return render_page_or_partial(request, "aiops/incident_list.html", "aiops/partials/incident_table.html", context)


@role_required(Role.VIEWER)
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = get_object_or_404(Incident.objects.select_related("assignee", "rule", "merged_into"), pk=pk)
    alerts = list(incident.alerts.select_related("integration").order_by("-first_seen_at")[:200])
    for alert in alerts:
        alert.source_url = alert.generator_url if is_web_url(alert.generator_url) else ""
    context = {
        "incident": incident,
        "alerts": alerts,
        "links": _web_links(incident.links),
        "time_to_acknowledge": _minutes(incident.time_to_acknowledge()),
        "time_to_resolve": _minutes(incident.time_to_resolve()),
        # The latest events when there are very many; shown oldest first.
        "events": list(reversed(incident.events.order_by("-at", "-id")[:TIMELINE_LIMIT])),
        "events_hidden": max(0, incident.events.count() - TIMELINE_LIMIT),
        "comment_form": CommentForm(),
        "assign_form": AssignForm(initial={"assignee": incident.assignee_id}),
        "severity_form": SeverityForm(initial={"severity_override": incident.severity_override}),
        "activity_chart": figure_data(_activity_chart(incident)),
        "open_incidents": Incident.objects.open().exclude(pk=incident.pk).order_by("-created_at")[:50],
    }
    return render_page_or_partial(
        request, "aiops/incident_detail.html", "aiops/partials/incident_timeline.html", context
    )


def _activity_chart(incident: Incident):
    """The incident's alert activity over its whole life (not milliseconds when alerts fired together)."""
    end = incident.resolved_at or timezone.now()
    margin = max((end - incident.created_at) / 20, datetime.timedelta(minutes=1))
    return charts.incident_activity(incident).update_xaxes(
        range=[(incident.created_at - margin).isoformat(), (end + margin).isoformat()]
    )


@require_POST
@role_required(Role.OPERATOR)
def incident_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """acknowledge / resolve / reopen / assign / comment / severity / merge / split, from the pages."""
    incident = get_object_or_404(Incident, pk=pk)
    try:
        if action == "acknowledge":
            services.acknowledge_incident(incident=incident, actor=request.user)
        elif action == "resolve":
            services.resolve_incident(incident=incident, actor=request.user, note=request.POST.get("note", ""))
        elif action == "reopen":
            services.reopen_incident(incident=incident, actor=request.user)
        elif action == "assign":
            form = AssignForm(request.POST)
            if not form.is_valid():
                raise _form_problem(form)
            services.assign_incident(incident=incident, assignee=form.cleaned_data["assignee"], actor=request.user)
        elif action == "comment":
            form = CommentForm(request.POST)
            if not form.is_valid():
                raise ValueError("body: a comment cannot be empty.")
            services.comment_on_incident(incident=incident, body=form.cleaned_data["body"], actor=request.user)
        elif action == "severity":
            form = SeverityForm(request.POST)
            if not form.is_valid():
                raise _form_problem(form)
            services.update_incident(
                incident=incident, actor=request.user, severity_override=form.cleaned_data["severity_override"]
            )
        elif action == "merge":
            into = request.POST.get("into", "")
            if not into.isdigit():
                raise ValueError("into: choose the incident to merge into.")
            target = get_object_or_404(Incident, pk=into)
            services.merge_incidents(source=incident, target=target, actor=request.user)
            messages.success(request, f"Merged #{incident.pk} into #{target.pk}.")
            return redirect(target)
        elif action == "split":
            alert_id = request.POST.get("alert", "")
            if not alert_id.isdigit():
                raise ValueError("alert: choose the alert to split out.")
            alert = get_object_or_404(Alert, pk=alert_id)
            new = services.split_alert(incident=incident, alert=alert, actor=request.user)
            messages.success(request, f"Split the alert out into #{new.pk}.")
            return redirect(new)
        else:
            raise ValueError(f"Unknown action {action!r}.")
    except ValueError as exc:
        _fail(request, exc)
    if request.htmx and request.POST.get("from") == "list":
        # One-click from the list: answer with the refreshed row.
        incident.refresh_from_db()
        return render(request, "aiops/partials/incident_row.html", {"incident": incident})
    return redirect(incident)


@require_POST
@role_required(Role.OPERATOR)
def incident_bulk(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    action = request.POST.get("action")
    if not ids or action not in ("acknowledge", "resolve"):
        messages.error(request, "Select incidents and an action.")
    else:
        changed = services.bulk_transition(
            incidents=Incident.objects.filter(pk__in=ids), action=action, actor=request.user
        )
        messages.success(request, f"{changed} incident(s) {action}d.")
    # Back to the list as it was filtered, never to another site.
    return redirect(safe_next(request, reverse("aiops:index")))


# --- Alerts -----------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def alert_list(request: HttpRequest) -> HttpResponse:
    filterset = AlertFilter(request.GET or None, queryset=Alert.objects.select_related("integration", "incident"))
    if not filterset.is_bound:
        alerts = Alert.objects.select_related("integration")
    else:
        # A bad filter shows its error and no alerts, as on the incident list, not every alert.
        alerts = filterset.qs if filterset.is_valid() else Alert.objects.none()
    context = {"filter": filterset, "page": _page(request, alerts), "query": query_without(request, "page")}
    return render_page_or_partial(request, "aiops/alert_list.html", "aiops/partials/alert_table.html", context)


REPORTED = {"trigger": "firing", "resolve": "resolved", "acknowledge": "acknowledged"}


@role_required(Role.VIEWER)
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.select_related("integration", "incident", "suppressed_by"), pk=pk)
    source_url = alert.generator_url if is_web_url(alert.generator_url) else ""
    links = _web_links(alert.links)
    if source_url and not any(link["href"] == source_url for link in links):
        links.insert(0, {"href": source_url, "text": "Source"})
    deliveries = list(alert.delivery_history.all()[:100])
    for row in deliveries:
        # New alerts record the status, later deliveries the sender's action: show one vocabulary.
        row.reported = REPORTED.get(row.status, row.status)
    return render(
        request,
        "aiops/alert_detail.html",
        {
            "alert": alert,
            "links": links,
            "deliveries": deliveries,
            "raw": pretty_json(alert.raw),
            "occurrences": Alert.objects.filter(integration=alert.integration_id, fingerprint=alert.fingerprint)
            .exclude(pk=alert.pk)
            .order_by("-first_seen_at")[:20],
        },
    )


# --- Integrations ----------------------------------------------------------------------------


@role_required(Role.VIEWER)
def integration_list(request: HttpRequest) -> HttpResponse:
    form = IntegrationForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, Role.ADMIN):
            return HttpResponse("Only admins create integrations.", status=403)
        if form.is_valid():
            try:
                integration, raw = services.create_integration(actor=request.user, **form.cleaned_data)
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                request.session[f"aiops.integration-token.{integration.pk}"] = raw
                return redirect(integration)
    integrations = Integration.objects.annotate(alert_total=Count("alerts"))
    return render(request, "aiops/integration_list.html", {"integrations": integrations, "form": form})


@never_cache  # it may show a secret
@role_required(Role.VIEWER)
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    # A token just created or rotated is in the session for exactly one view.
    raw = request.session.pop(f"aiops.integration-token.{integration.pk}", None)
    url = request.build_absolute_uri(integration.ingest_path())
    return render(
        request,
        "aiops/integration_detail.html",
        {
            "integration": integration,
            "token": raw,
            "url": url,
            "config": sender_configuration(integration, url, raw or "<your integration token>"),
            "deliveries": integration.deliveries.all()[:20],
            "generic_doc": GENERIC_SCHEMA_DOC if integration.kind == Integration.Kind.GENERIC else "",
        },
    )


@require_POST
@role_required(Role.ADMIN)
def integration_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    if action == "rotate":
        raw = services.rotate_integration_token(integration=integration, actor=request.user)
        request.session[f"aiops.integration-token.{integration.pk}"] = raw
        messages.success(request, "New token issued; the old one no longer works.")
    elif action == "toggle":
        services.update_integration(integration=integration, actor=request.user, enabled=not integration.enabled)
    elif action == "delete":
        services.delete_integration(integration=integration, actor=request.user)
        messages.success(request, f"Integration {integration.name} deleted.")
        return redirect("aiops:integrations")
    return redirect(integration)


# --- Silences ----------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def silence_list(request: HttpRequest) -> HttpResponse:
    form = SilenceForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, Role.OPERATOR):
            return HttpResponse("Operators and admins create silences.", status=403)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.create_silence(
                    matchers=data["matchers"],
                    ends_at=timezone.now() + datetime.timedelta(hours=data["duration_hours"]),
                    comment=data["comment"],
                    actor=request.user,
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Silence created.")
                return redirect("aiops:silences")
    now = timezone.now()
    silences = Silence.objects.select_related("created_by").annotate(suppressed=Count("suppressed_alerts"))
    return render(
        request,
        "aiops/silence_list.html",
        {
            "form": form,
            "active": [s for s in silences if s.is_active(now)],
            "other": [s for s in silences[:200] if not s.is_active(now)],
        },
    )


@require_POST
@role_required(Role.OPERATOR)
def silence_expire(request: HttpRequest, pk: int) -> HttpResponse:
    services.expire_silence(silence=get_object_or_404(Silence, pk=pk), actor=request.user)
    messages.success(request, "Silence expired.")
    return redirect("aiops:silences")


# --- Correlation rules ----------------------------------------------------------------------------


@role_required(Role.VIEWER)
def rule_list(request: HttpRequest) -> HttpResponse:
    return render(request, "aiops/rule_list.html", {"rules": CorrelationRule.objects.all()})


@role_required(Role.ADMIN)
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(CorrelationRule, pk=pk) if pk else None
    initial = {}
    if rule:
        initial = {
            "name": rule.name,
            "position": rule.position,
            "matchers": matcher_lines(rule.matchers),
            "group_by": ", ".join(rule.group_by),
            "window_minutes": rule.window_minutes,
            "auto_resolve": rule.auto_resolve,
            "reopen_cooldown_minutes": rule.reopen_cooldown_minutes,
            "enabled": rule.enabled,
        }
    form = RuleForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if "delete" in request.POST and rule:
            services.delete_rule(rule=rule, actor=request.user)
            messages.success(request, f"Rule {rule.name} deleted.")
            return redirect("aiops:rules")
        if form.is_valid():
            try:
                services.save_rule(actor=request.user, rule=rule, **form.cleaned_data)
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Rule saved.")
                return redirect("aiops:rules")
    return render(request, "aiops/rule_form.html", {"form": form, "rule": rule}, status=400 if form.errors else 200)


# --- Notification channels ---------------------------------------------------------------------------


@role_required(Role.ADMIN)
def channel_list(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():  # a channel and its route, or neither
                channel = services.save_channel(
                    actor=request.user,
                    name=data["name"],
                    kind=data["kind"],
                    target=data["target"],
                    secret=data["secret"] or None,
                )
                services.save_route(
                    actor=request.user,
                    channel=channel,
                    severities=data["severities"],
                    services=data["services"].split(","),
                )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Channel {channel.name} created.")
            return redirect("aiops:channels")
    channels = NotificationChannel.objects.prefetch_related("routes").annotate(sent=Count("notifications"))
    return render(request, "aiops/channel_list.html", {"form": form, "channels": channels})


@require_POST
@role_required(Role.ADMIN)
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_channel(channel=get_object_or_404(NotificationChannel, pk=pk), actor=request.user)
    return redirect("aiops:channels")


@require_POST
@role_required(Role.ADMIN)
def route_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_route(route=get_object_or_404(NotificationRoute, pk=pk), actor=request.user)
    return redirect("aiops:channels")


# --- Analytics -----------------------------------------------------------------------------------

PERIODS = {"7": 7, "30": 30, "90": 90}


@role_required(Role.VIEWER)
def analytics(request: HttpRequest) -> HttpResponse:
    """MTTA/MTTR (median, p90) per service and severity and over time, counts, noisiest alerts."""
    days = PERIODS.get(request.GET.get("days", "30"), 30)
    now = timezone.now()
    since = now - datetime.timedelta(days=days)
    period = Incident.objects.filter(created_at__gte=since, merged_into__isnull=True)
    rows = list(period.values_list("created_at", "acknowledged_at", "resolved_at", "service", "severity"))
    by_service = charts.response_times(rows, 3)
    by_severity = charts.response_times(rows, 4)
    noisy = list(
        Alert.objects.filter(last_seen_at__gte=since)
        .values("title", "service")
        .annotate(seen=Sum("times_seen"), occurrences=Count("id"))
        .order_by("-seen")[:15]
    )
    counts = list(period.values("status", "service").annotate(n=Count("id")).order_by())
    overall = charts.response_times(rows, None).get("all", {"mtta": (None, None), "mttr": (None, None), "n": 0})
    context = {
        "days": days,
        "periods": PERIODS,
        "total": len(rows),
        "overall": overall,
        # The time axis spans the chosen period, not just the days that had incidents; the legend goes
        # above the plot so it doesn't hide the latest days.
        "trend_chart": figure_data(
            charts.response_time_trend(rows, days)
            .update_xaxes(range=[since.isoformat(), now.isoformat()])
            .update_layout(legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, margin={"t": 40})
        ),
        # The cards have their own headings; a figure title would be cut off by the tight top margin.
        "service_chart": figure_data(charts.response_time_bars(by_service, "")),
        "severity_chart": figure_data(charts.response_time_bars(by_severity, "")),
        "counts_chart": figure_data(charts.counts_by_status_and_service(counts)),
        "noisy_chart": figure_data(charts.noisiest_alerts(noisy)),
        "noisy": noisy,
        "by_service": sorted(by_service.items()),
    }
    return render(request, "aiops/analytics.html", context)
