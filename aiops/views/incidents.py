"""Incident pages: the triage list (with one-click and bulk actions) and one incident with its actions."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Case, Model, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.errors import InvalidInput
from opsportal.portal import markdown
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.charts import figure_data
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without, safe_next

from .. import charts, services
from ..api.filters import IncidentFilter
from ..forms import AssignForm, CommentForm, SeverityForm
from ..models import Alert, CorrelationRule, Incident, IncidentEvent
from ..parsers import is_web_url
from .display import field_problem, minutes, page_of, web_links
from .explorer import explorer_link

TIMELINE_LIMIT = 500
STATUS_RANK = ["triggered", "acknowledged", "resolved"]
SEVERITY_ORDER = ["critical", "error", "warning", "info"]
# Actions the list offers as one click; from there the answer is the refreshed row.
LIST_ACTIONS = {"acknowledge", "resolve", "reopen"}
ORDERINGS = ("created_at", "last_alert_at", "alert_count", "status", "severity")
# Link buttons on the incident page, in this order, with their Bootstrap button style.
LINK_KINDS = (
    ("Runbook", "btn-primary"),
    ("Dashboard", "btn-outline-secondary"),
    ("Source", "btn-outline-secondary"),
)
LINK_BUTTONS_PER_KIND = 3


@role_required(Role.VIEWER)
def incident_list(request: HttpRequest) -> HttpResponse:
    """Incidents with filters; htmx polls the table every 10 s with the same query string."""
    data = request.GET.copy()
    if not any(k in data for k in ("status", "open", "q", "severity", "service", "assignee", "since", "until")):
        data.setlist("status", ["triggered", "acknowledged"])
    # `all` means no filter; a value a filter does not know is dropped and named in a message, never an empty list.
    data, problems = checked_filters(
        data, IncidentFilter().form.fields, bind=lambda d: IncidentFilter(d, queryset=Incident.objects.none()).form
    )
    filterset = IncidentFilter(data, queryset=Incident.objects.select_related("assignee"))
    incidents = filterset.qs if filterset.is_valid() else Incident.objects.none()
    ordering = request.GET.get("ordering", "-created_at")
    if ordering.lstrip("-") not in ORDERINGS:
        problems.append(
            f"Sort ordering: “{ordering[:60]}” — not a value it knows; the allowed values are "
            f"{', '.join(ORDERINGS)} (each with a leading - for descending). Sorted newest first instead."
        )
        ordering = "-created_at"
    if ordering.lstrip("-") in ("created_at", "last_alert_at", "alert_count"):
        incidents = incidents.order_by(ordering, "-id")
    else:
        # In triage order (triggered before acknowledged; critical before info), not alphabetical.
        rank = STATUS_RANK if ordering.lstrip("-") == "status" else SEVERITY_ORDER
        key = Case(*[When(**{ordering.lstrip("-"): v, "then": Value(i)}) for i, v in enumerate(rank)], default=Value(9))
        incidents = incidents.order_by(key.desc() if ordering.startswith("-") else key, "-created_at")
    context = {
        "filter": filterset,
        "filter_problems": problems,
        "page": page_of(request, incidents),
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
    buttons = link_buttons(alerts)
    shown = {button["href"] for button in buttons}
    # Threshold alerts name their series (annotation series_id): open the explorer on them, around the incident.
    series_ids = list(dict.fromkeys(int(a.annotations["series_id"]) for a in alerts if _series_id(a)))
    # The latest events when there are very many; shown oldest first.
    events = list(reversed(incident.events.order_by("-at", "-id")[:TIMELINE_LIMIT]))
    for event in events:
        if event.kind == IncidentEvent.Kind.COMMENT:
            event.rendered = markdown.render(event.message, breaks=True)
    context = {
        "incident": incident,
        "alerts": alerts,
        "link_buttons": buttons,
        "explorer_url": explorer_link(series_ids=series_ids, incident=incident) if series_ids else "",
        "explorer_series": len(series_ids),
        "links": [link for link in web_links(incident.links) if link["href"].strip() not in shown],
        # A manual resolve leaves the sender's alerts firing: the page says so instead of "2 firing of 2" alone.
        "firing_after_resolve": incident.status == Incident.Status.RESOLVED and incident.firing_count > 0,
        "time_to_acknowledge": minutes(incident.time_to_acknowledge()),
        "time_to_resolve": minutes(incident.time_to_resolve()),
        "events": events,
        "events_hidden": max(0, incident.events.count() - TIMELINE_LIMIT),
        "comment_form": CommentForm(),
        "assign_form": AssignForm(initial={"assignee": incident.assignee_id}),
        "severity_form": SeverityForm(initial={"severity_override": incident.severity_override}),
        "activity_chart": figure_data(charts.incident_activity(incident)),
        "open_incidents": Incident.objects.open().exclude(pk=incident.pk).order_by("-created_at")[:50],
        # Learned rules suggest merges; the panel loads after the page (aiops:suggestions), so it stays fast.
        "show_merge_suggestions": incident.merged_into_id is None
        and (incident.rule is not None and incident.rule.kind == CorrelationRule.Kind.LEARNED),
    }
    return render_page_or_partial(
        request, "aiops/incident_detail.html", "aiops/partials/incident_timeline.html", context
    )


def _series_id(alert: Alert) -> bool:
    value = alert.annotations.get("series_id") if isinstance(alert.annotations, dict) else None
    return isinstance(value, str) and value.isdigit() and len(value) < 19


def link_buttons(alerts: list[Alert]) -> list[dict[str, str]]:
    """The buttons to where people look first: each alert's runbook, dashboard and source.

    From the `runbook_url` and `dashboard_url` annotations, the alert's `generatorURL` (its
    source) and its links named "Runbook", "Dashboard" (Grafana's `dashboardURL`) or "Source";
    only http(s) URLs (they are sender-controlled), each URL once, at most
    `LINK_BUTTONS_PER_KIND` of a kind ("Runbook", "Runbook 2", ...).
    """
    found: dict[str, list[str]] = {kind: [] for kind, _ in LINK_KINDS}
    for alert in alerts:
        named = [
            (str(link.get("text", "")).strip().capitalize(), link.get("href"))
            for link in alert.links
            if isinstance(link, dict)
        ]
        candidates = [
            ("Runbook", alert.annotations.get("runbook_url")),
            ("Dashboard", alert.annotations.get("dashboard_url")),
            ("Source", alert.generator_url),
            *((kind, href) for kind, href in named if kind in found),
        ]
        for kind, href in candidates:
            if is_web_url(href):
                found[kind].append(href.strip())
    buttons: list[dict[str, str]] = []
    seen: set[str] = set()
    for kind, style in LINK_KINDS:
        hrefs = [href for href in dict.fromkeys(found[kind]) if href not in seen][:LINK_BUTTONS_PER_KIND]
        for number, href in enumerate(hrefs, start=1):
            seen.add(href)
            buttons.append({"text": kind if number == 1 else f"{kind} {number}", "href": href, "style": style})
    return buttons


def _chosen(model: type[Model], value: str, *, field: str, prompt: str) -> Model:
    """The row a POSTed id names (the incident to merge into, the alert to split out); a miss names the field."""
    if not value.isdigit():
        raise InvalidInput(prompt, field=field)
    found = model.objects.filter(pk=value).first()
    if found is None:
        raise InvalidInput(f"No {model._meta.verbose_name} #{value}.", field=field)
    return found


def _merge(request: HttpRequest, incident: Incident, data: dict) -> Incident:
    target = _chosen(Incident, request.POST.get("into", ""), field="into", prompt="choose the incident to merge into.")
    return services.merge_incidents(source=incident, target=target, actor=request.user)


def _split(request: HttpRequest, incident: Incident, data: dict) -> Incident:
    alert = _chosen(Alert, request.POST.get("alert", ""), field="alert", prompt="choose the alert to split out.")
    return services.split_alert(incident=incident, alert=alert, actor=request.user)


INCIDENT_ACTIONS = {
    "acknowledge": PageAction(
        run=lambda request, incident, data: services.acknowledge_incident(incident=incident, actor=request.user)
    ),
    "resolve": PageAction(
        run=lambda request, incident, data: services.resolve_incident(
            incident=incident, actor=request.user, note=request.POST.get("note", "")
        )
    ),
    "reopen": PageAction(
        run=lambda request, incident, data: services.reopen_incident(incident=incident, actor=request.user)
    ),
    "assign-to-me": PageAction(
        run=lambda request, incident, data: services.assign_incident(
            incident=incident, assignee=request.user, actor=request.user
        ),
        success="Assigned to you.",
    ),
    "assign": PageAction(
        form=AssignForm,
        run=lambda request, incident, data: services.assign_incident(
            incident=incident, assignee=data["assignee"], actor=request.user
        ),
    ),
    "comment": PageAction(
        form=CommentForm,
        run=lambda request, incident, data: services.comment_on_incident(
            incident=incident, body=data["body"], actor=request.user
        ),
    ),
    "severity": PageAction(
        form=SeverityForm,
        run=lambda request, incident, data: services.update_incident(
            incident=incident, actor=request.user, severity_override=data["severity_override"]
        ),
    ),
    "merge": PageAction(
        run=_merge,
        success=lambda incident, target, data: f"Merged #{incident.pk} into #{target.pk}.",
        next=lambda incident, target: target,
    ),
    "split": PageAction(
        run=_split,
        success=lambda incident, new, data: f"Split the alert out into #{new.pk}.",
        next=lambda incident, new: new,
    ),
}


@require_POST
@role_required(Role.OPERATOR)
def incident_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """acknowledge / resolve / reopen / assign / assign-to-me / comment / severity / merge / split, from the pages."""
    incident = get_object_or_404(Incident, pk=pk)

    def refused(form) -> HttpResponse:
        messages.error(request, field_problem(form))
        return redirect(incident)

    response = dispatch(request, INCIDENT_ACTIONS, action, incident, invalid=refused)
    if action in LIST_ACTIONS and request.htmx and request.POST.get("from") == "list":
        incident.refresh_from_db()
        return render(request, "aiops/partials/incident_row.html", {"incident": incident})
    return response


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
