import django_filters
from django.contrib.auth.models import User

from opsportal.filters import DateTimeFilter
from opsportal.portal.forms import StyledForm

from .models import AuditEntry


class AuditEntryFilter(django_filters.FilterSet):
    """Filters shared by the audit page and `/api/v1/audit/entries/`."""

    user = django_filters.ModelChoiceFilter(
        field_name="actor", queryset=User.objects.order_by("username"), label="User"
    )
    actor_name = django_filters.CharFilter(lookup_expr="iexact", label="User name")
    app = django_filters.CharFilter(field_name="app_label", label="App")
    model = django_filters.CharFilter(label="Object type")
    object_id = django_filters.CharFilter(label="Object id")
    action = django_filters.ChoiceFilter(choices=AuditEntry.Action.choices)
    since = DateTimeFilter(field_name="at", lookup_expr="gte", label="From")
    until = DateTimeFilter(field_name="at", lookup_expr="lt", label="Until")
    date_from = django_filters.DateFilter(field_name="at", lookup_expr="date__gte", label="From date")
    date_to = django_filters.DateFilter(field_name="at", lookup_expr="date__lte", label="To date")

    class Meta:
        model = AuditEntry
        form = StyledForm
        fields = ["user", "actor_name", "app", "model", "object_id", "action", "since", "until", "date_from", "date_to"]
