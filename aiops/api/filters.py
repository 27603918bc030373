"""Filters shared by the AIOps API and pages."""

import django_filters
from django.db.models import Q

from opsportal.filters import DateTimeFilter
from opsportal.portal.forms import StyledForm

from ..models import SEVERITY_CHOICES, Alert, Incident


class IncidentFilter(django_filters.FilterSet):
    # distinct=False: one row per incident already; DISTINCT would make every count scan.
    status = django_filters.MultipleChoiceFilter(choices=Incident.Status.choices, distinct=False)
    severity = django_filters.MultipleChoiceFilter(
        choices=SEVERITY_CHOICES,
        method="filter_severity",
        label="Severity (as shown, override included)",
        distinct=False,
    )
    service = django_filters.CharFilter()
    assignee = django_filters.CharFilter(method="filter_assignee", label="Assignee (username, or 'none')")
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte", label="Opened after")
    until = DateTimeFilter(field_name="created_at", lookup_expr="lt", label="Opened before")
    q = django_filters.CharFilter(method="filter_text", label="Search")
    open = django_filters.BooleanFilter(method="filter_open", label="Open only")

    class Meta:
        model = Incident
        fields = ["status", "severity", "service", "assignee", "since", "until", "q", "open"]
        form = StyledForm

    def filter_severity(self, queryset, name: str, value: list[str]):
        if not value:
            return queryset
        return queryset.filter(Q(severity_override__in=value) | Q(severity_override="", severity__in=value))

    def filter_assignee(self, queryset, name: str, value: str):
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        return queryset.filter(assignee__username=value)

    def filter_text(self, queryset, name: str, value: str):
        query = Q(title__icontains=value) | Q(service__icontains=value) | Q(summary__icontains=value)
        if value.lstrip("#").isdigit():
            query |= Q(pk=int(value.lstrip("#")))
        return queryset.filter(query)

    def filter_open(self, queryset, name: str, value: bool | None):
        if value is None:
            return queryset
        return queryset.open() if value else queryset.filter(status=Incident.Status.RESOLVED)


class AlertFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Alert.Status.choices)
    severity = django_filters.MultipleChoiceFilter(choices=SEVERITY_CHOICES, distinct=False)
    service = django_filters.CharFilter()
    fingerprint = django_filters.CharFilter()
    integration = django_filters.NumberFilter(field_name="integration_id")
    incident = django_filters.NumberFilter(field_name="incident_id")
    suppressed = django_filters.BooleanFilter(field_name="suppressed_by", lookup_expr="isnull", exclude=True)
    since = DateTimeFilter(field_name="first_seen_at", lookup_expr="gte", label="First seen after")
    until = DateTimeFilter(field_name="first_seen_at", lookup_expr="lt", label="First seen before")
    q = django_filters.CharFilter(field_name="title", lookup_expr="icontains", label="Search")

    class Meta:
        model = Alert
        fields = ["status", "severity", "service", "fingerprint", "integration", "incident", "suppressed", "q"]
        form = StyledForm
