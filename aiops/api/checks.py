"""Uptime checks REST API: `/api/v1/aiops/checks/` (CRUD, test now, run now, bulk pause/resume, results,
pings, latency series, incidents).

Viewers read; operators create, change, test and pause checks. Every
write goes through `aiops.services`; a bad value is a 400 naming the field (`config.url`, `cron`, ...).
"""

from __future__ import annotations

import datetime

import django_filters
from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.filters import DateTimeFilter, UtcIsoDateTimeField
from opsportal.portal.forms import StyledForm

from .. import services
from ..models import Check, CheckResult, Incident, Ping

KINDS_HELP = "http, tcp, dns, tls or heartbeat."
CONFIG_HELP = (
    "Kind-specific options (docs/aiops.md, Checks). http: url, method, headers, body, expected_status, "
    "max_latency_ms, keyword, keyword_regex, keyword_absent, json_path, json_expected, follow_redirects, "
    "verify_tls, tls_min_days_left. tcp: host, port. dns: name, record_type, expected, nameservers, port. "
    "tls: host, port, server_name, min_days_left, verify. heartbeat: none."
)


class CheckFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=Check.Kind.choices, distinct=False)
    status = django_filters.MultipleChoiceFilter(choices=Check.Status.choices, distinct=False)
    service = django_filters.CharFilter()
    paused = django_filters.BooleanFilter()
    q = django_filters.CharFilter(method="filter_text", label="Search (name or service)")

    class Meta:
        model = Check
        fields = ["kind", "status", "service", "paused", "q"]
        form = StyledForm

    def filter_text(self, queryset, name: str, value: str):
        return queryset.filter(Q(name__icontains=value) | Q(service__icontains=value))


class ResultFilter(django_filters.FilterSet):
    since = DateTimeFilter(field_name="at", lookup_expr="gte", label="At or after")
    until = DateTimeFilter(field_name="at", lookup_expr="lt", label="Before")
    up = django_filters.BooleanFilter()

    class Meta:
        model = CheckResult
        fields = ["since", "until", "up"]


class PingFilter(django_filters.FilterSet):
    since = DateTimeFilter(field_name="at", lookup_expr="gte", label="At or after")
    until = DateTimeFilter(field_name="at", lookup_expr="lt", label="Before")
    kind = django_filters.ChoiceFilter(choices=Ping.Kind.choices)

    class Meta:
        model = Ping
        fields = ["since", "until", "kind"]


class CheckSerializer(serializers.ModelSerializer):
    """A check with its state; the list adds uptime over 24 h, 7 d and 30 d (percent of successful runs)."""

    kind = serializers.ChoiceField(choices=Check.Kind.choices, help_text=KINDS_HELP)
    config = serializers.JSONField(required=False, help_text=CONFIG_HELP)
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), allow_null=True, required=False, help_text="A user id."
    )
    owner_name = serializers.CharField(source="owner.username", read_only=True, default=None)
    target = serializers.CharField(read_only=True, help_text="What the check looks at (URL, host:port, name).")
    ping_url = serializers.SerializerMethodField(help_text="Heartbeats: the URL to ping (its UUID is the secret).")
    uptime_24h = serializers.SerializerMethodField()
    uptime_7d = serializers.SerializerMethodField()
    uptime_30d = serializers.SerializerMethodField()
    page_url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Check
        fields = [
            "id", "name", "kind", "service", "severity", "labels", "owner", "owner_name", "description",
            "interval_seconds", "timeout_seconds", "retries", "paused", "upside_down", "config",
            "period_seconds", "grace_seconds", "cron", "tz", "target", "ping_url",
            "status", "status_changed_at", "consecutive_failures", "last_result_at", "last_latency_ms",
            "last_error", "last_ping_at", "last_success_at", "started_at", "next_due_at",
            "uptime_24h", "uptime_7d", "uptime_30d", "page_url", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "status", "status_changed_at", "consecutive_failures", "last_result_at", "last_latency_ms",
            "last_error", "last_ping_at", "last_success_at", "started_at", "next_due_at", "created_at", "updated_at",
        ]  # fmt: skip
        extra_kwargs = {
            "interval_seconds": {"min_value": None, "max_value": None},
            "timeout_seconds": {"min_value": None, "max_value": None},
            "retries": {"min_value": None, "max_value": None},
        }

    def get_fields(self):
        fields = super().get_fields()
        # The services check ranges and say what is allowed, naming the field; the model's validators would
        # answer first, in other words.
        for name in ("interval_seconds", "timeout_seconds", "retries", "period_seconds", "grace_seconds"):
            fields[name].validators = []
        return fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_ping_url(self, check: Check) -> str | None:
        if not check.is_heartbeat:
            return None
        request = self.context.get("request")
        base = request.build_absolute_uri("/") if request else ""
        return services.ping_url(check, base)

    def _uptime(self, check: Check) -> services.Uptime | None:
        return (self.context.get("uptime") or {}).get(check.pk)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_uptime_24h(self, check: Check) -> float | None:
        uptime = self._uptime(check)
        return uptime.day if uptime else None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_uptime_7d(self, check: Check) -> float | None:
        uptime = self._uptime(check)
        return uptime.week if uptime else None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_uptime_30d(self, check: Check) -> float | None:
        uptime = self._uptime(check)
        return uptime.month if uptime else None


class CheckResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = CheckResult
        fields = ["id", "at", "up", "latency_ms", "status_code", "error", "details"]


class PingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Ping
        fields = ["id", "at", "kind", "exit_status", "method", "remote_addr", "user_agent", "body", "duration_ms"]


class TestCheckSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[k for k in Check.Kind.values if k != "heartbeat"], help_text=KINDS_HELP)
    config = serializers.JSONField(required=False, help_text=CONFIG_HELP)
    timeout_seconds = serializers.FloatField(required=False, default=10.0)
    upside_down = serializers.BooleanField(required=False, default=False)


class OutcomeSerializer(serializers.Serializer):
    """One run's result, as it would be stored."""

    at = serializers.DateTimeField()
    up = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(help_text="Empty when up; otherwise what failed, as the library worded it.")
    details = serializers.DictField(help_text="E.g. tls (not_after, days_left), redirects, answers (DNS).")


class CheckBulkSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=1000)
    action = serializers.ChoiceField(choices=["pause", "resume"])


class CheckBulkResultSerializer(serializers.Serializer):
    updated = serializers.ListField(child=serializers.IntegerField(), help_text="The ids, now paused or resumed.")


class LatencyPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text="The bucket's start.")
    latency_ms = serializers.FloatField(allow_null=True, help_text="Mean latency of the bucket's runs.")
    up = serializers.BooleanField(help_text="False when any run in the bucket failed.")
    runs = serializers.IntegerField()


class DownPeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(allow_null=True, help_text="null while still down.")


class LatencySerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    points = LatencyPointSerializer(many=True)
    down_periods = DownPeriodSerializer(many=True)


class IncidentBriefSerializer(serializers.ModelSerializer):
    page_url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Incident
        fields = ["id", "title", "status", "severity", "created_at", "resolved_at", "page_url"]


def time_parameters(request: Request, *names: str) -> dict[str, datetime.datetime | None]:
    """ISO 8601 query parameters, in UTC; one that is not a time (or has no UTC equivalent) is a 400 naming it."""
    from django.core.exceptions import ValidationError

    values: dict[str, datetime.datetime | None] = {}
    for name in names:
        raw = request.query_params.get(name)
        try:
            values[name] = UtcIsoDateTimeField(required=False).clean(raw) if raw else None
        except ValidationError as exc:
            raise serializers.ValidationError({name: exc.messages}) from None
    return values


TIME_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="At or after (ISO 8601)."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before (ISO 8601)."),
]


class CheckViewSet(viewsets.ModelViewSet):
    """Uptime checks: HTTP(S), TCP, DNS, TLS expiry and heartbeats. Operators write; viewers read.

    Filter with `kind`, `status`, `service`, `paused`, `q`. `POST checks/test/` runs a check once without
    saving it. A heartbeat's `ping_url` is where its job reports (see docs/aiops.md, Ping protocol).
    """

    queryset = Check.objects.select_related("owner")
    serializer_class = CheckSerializer
    filterset_class = CheckFilter
    ordering_fields = ["name", "status", "last_result_at", "next_due_at", "created_at", "last_latency_ms"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _with_uptime(self, checks: list[Check]) -> dict:
        return {**self.get_serializer_context(), "uptime": services.uptime(check_ids=[c.pk for c in checks])}

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        checks = list(page if page is not None else queryset)
        data = CheckSerializer(checks, many=True, context=self._with_uptime(checks)).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        check = self.get_object()
        return Response(CheckSerializer(check, context=self._with_uptime([check])).data)

    def create(self, request: Request) -> Response:
        serializer = CheckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check = services.create_check(actor=request.user, **serializer.validated_data)
        return Response(CheckSerializer(check, context=self._with_uptime([check])).data, status=201)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        check = self.get_object()
        serializer = CheckSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        check = services.update_check(check=check, actor=request.user, **serializer.validated_data)
        return Response(CheckSerializer(check, context=self._with_uptime([check])).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_check(check=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TestCheckSerializer, responses=OutcomeSerializer)
    @action(detail=False, methods=["post"], url_path="test", filter_backends=[], pagination_class=None)
    def test(self, request: Request) -> Response:
        """Run a check once as configured, before saving it; nothing is stored. The answer is the result."""
        serializer = TestCheckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.test_check(**serializer.validated_data)
        return Response(OutcomeSerializer(outcome).data)

    @extend_schema(request=None, responses=CheckResultSerializer)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run the check now and store the result like a scheduled run."""
        result = services.run_check_now(check=self.get_object())
        return Response(CheckResultSerializer(result).data)

    @extend_schema(request=CheckBulkSerializer, responses=CheckBulkResultSerializer)
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def bulk(self, request: Request) -> Response:
        """Pause (maintenance: not run, no alerts) or resume the checks `ids`."""
        serializer = CheckBulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        checks = services.bulk_set_paused(check_ids=data["ids"], paused=data["action"] == "pause", actor=request.user)
        return Response({"updated": [check.pk for check in checks]})

    @extend_schema(request=None, responses=CheckSerializer)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def pause(self, request: Request, pk: str | None = None) -> Response:
        check = services.set_paused(check=self.get_object(), paused=True, actor=request.user)
        return Response(CheckSerializer(check, context=self._with_uptime([check])).data)

    @extend_schema(request=None, responses=CheckSerializer)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def resume(self, request: Request, pk: str | None = None) -> Response:
        check = services.set_paused(check=self.get_object(), paused=False, actor=request.user)
        return Response(CheckSerializer(check, context=self._with_uptime([check])).data)

    @extend_schema(
        parameters=[*TIME_PARAMETERS, OpenApiParameter("up", OpenApiTypes.BOOL, description="Only up (or down) runs.")],
        responses=CheckResultSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def results(self, request: Request, pk: str | None = None) -> Response:
        """The check's results, newest first, paged; filter with `since`, `until` (ISO 8601) and `up`."""
        check = self.get_object()
        filtered = ResultFilter(request.query_params, queryset=CheckResult.objects.filter(check_obj=check))
        if not filtered.is_valid():
            raise serializers.ValidationError(filtered.errors)
        page = self.paginate_queryset(filtered.qs.order_by("-at", "-id"))
        return self.get_paginated_response(CheckResultSerializer(page, many=True).data)

    @extend_schema(
        parameters=[*TIME_PARAMETERS, OpenApiParameter("kind", OpenApiTypes.STR, enum=Ping.Kind.values)],
        responses=PingSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def pings(self, request: Request, pk: str | None = None) -> Response:
        """A heartbeat's pings, newest first, paged (with the first 10 KB of each body)."""
        check = self.get_object()
        filtered = PingFilter(request.query_params, queryset=Ping.objects.filter(check_obj=check))
        if not filtered.is_valid():
            raise serializers.ValidationError(filtered.errors)
        page = self.paginate_queryset(filtered.qs.order_by("-at", "-id"))
        return self.get_paginated_response(PingSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Default: 24 hours ago."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Default: now."),
            OpenApiParameter("max_points", OpenApiTypes.INT, description="Buckets at most (10-5000, default 1500)."),
        ],
        responses=LatencySerializer,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def latency(self, request: Request, pk: str | None = None) -> Response:
        """Latency over time (mean per bucket, aggregated in the database) and the down periods, for a chart."""
        check = self.get_object()
        times = time_parameters(request, "since", "until")
        until = times["until"] or timezone.now()
        since = times["since"] or until - datetime.timedelta(hours=24)
        max_points = serializers.IntegerField(min_value=10, max_value=5000)
        try:
            points_wanted = max_points.run_validation(request.query_params.get("max_points", 1500))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"max_points": exc.detail}) from None
        points = services.latency_series(check=check, since=since, until=until, max_points=points_wanted)
        periods = services.down_periods(check=check, since=since, until=until)
        return Response(
            LatencySerializer(
                {
                    "since": since,
                    "until": until,
                    "points": points,
                    "down_periods": [{"start": start, "end": end} for start, end in periods],
                }
            ).data
        )

    @extend_schema(responses=IncidentBriefSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], ordering_fields=[])
    def incidents(self, request: Request, pk: str | None = None) -> Response:
        """The incidents this check's alert opened or joined, newest first, paged."""
        page = self.paginate_queryset(services.incidents_opened(check=self.get_object()))
        return self.get_paginated_response(IncidentBriefSerializer(page, many=True).data)
