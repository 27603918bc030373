"""Metric collection API: targets, sources, watched queries, threshold rules, and Prometheus's query API.

CRUD under `/api/v1/aiops/metrics/{targets,sources,queries,thresholds}/` (viewers read, operators
write). The query endpoints answer in Prometheus's own HTTP API format (`{"status": "success",
"data": ...}`, errors `{"status": "error", "errorType": "bad_data", "error": ...}` with 400), at
`/api/v1/aiops/metrics/<endpoint>` and again at `/api/v1/aiops/metrics/api/v1/<endpoint>`, so
Grafana's Prometheus data source with the URL `http://<portal>/api/v1/aiops/metrics` finds them.
They take GET parameters or a POST form (what Grafana sends); both need only the viewer role.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from django.http import HttpResponse, QueryDict
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.accounts.roles import Role
from opsportal.errors import InvalidInput

from .. import services
from ..metrics import query as metrics_query
from ..models import PromSource, ScrapeTarget, Series, ThresholdRule, WatchedQuery
from ..services import prom_sources

LABELS_HELP = 'Label names to strings, e.g. {"env": "prod"}.'

# --- Serializers ---------------------------------------------------------------------------------------------


class ScrapeTargetSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, help_text="Bearer token or password; never shown again."
    )
    has_secret = serializers.SerializerMethodField()
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, help_text=LABELS_HELP)
    status = serializers.CharField(read_only=True, help_text="up, down, paused or pending (not scraped yet).")

    class Meta:
        model = ScrapeTarget
        fields = [
            "id", "name", "url", "interval_seconds", "timeout_seconds", "auth", "username", "secret", "has_secret",
            "labels", "enabled", "status", "created_at", "next_due_at", "last_run_at", "last_ok", "last_error",
            "last_duration_seconds", "last_sample_count",
        ]  # fmt: skip
        read_only_fields = [
            "id", "created_at", "next_due_at", "last_run_at", "last_ok", "last_error", "last_duration_seconds",
            "last_sample_count",
        ]  # fmt: skip

    def get_has_secret(self, obj: ScrapeTarget) -> bool:
        return bool(obj.secret_encrypted)


class ScrapeTestSerializer(serializers.Serializer):
    """A target's settings, to scrape once without saving anything."""

    url = serializers.CharField()
    name = serializers.CharField(required=False, default="test")
    auth = serializers.ChoiceField(choices=ScrapeTarget.Auth.choices, required=False, default="none")
    username = serializers.CharField(required=False, allow_blank=True, default="")
    secret = serializers.CharField(required=False, allow_blank=True, default="")
    timeout_seconds = serializers.FloatField(required=False, default=10.0)
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)


class PreviewSampleSerializer(serializers.Serializer):
    name = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    value = serializers.FloatField()


class ScrapeReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.CharField(help_text="Why the scrape failed, as the library or parser worded it.")
    duration_seconds = serializers.FloatField()
    samples_scraped = serializers.IntegerField()
    stored = serializers.IntegerField(help_text="Samples stored (0 for a test), with up and the scrape series.")
    preview = PreviewSampleSerializer(many=True, help_text="The first samples, with the labels they get.")


class PromSourceSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, help_text="Bearer token or password; never shown again."
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = PromSource
        fields = [
            "id", "name", "base_url", "timeout_seconds", "auth", "username", "secret", "has_secret", "enabled",
            "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]

    def get_has_secret(self, obj: PromSource) -> bool:
        return bool(obj.secret_encrypted)


class SourceReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.CharField()
    duration_seconds = serializers.FloatField()


class WatchedQuerySerializer(serializers.ModelSerializer):
    source = serializers.PrimaryKeyRelatedField(queryset=PromSource.objects.all())
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, help_text=LABELS_HELP)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = WatchedQuery
        fields = [
            "id", "source", "name", "query", "interval_seconds", "step_seconds", "labels", "enabled", "status",
            "created_at", "next_due_at", "last_run_at", "last_ok", "last_error", "last_duration_seconds",
            "last_sample_count", "last_end_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "created_at", "next_due_at", "last_run_at", "last_ok", "last_error", "last_duration_seconds",
            "last_sample_count", "last_end_at",
        ]  # fmt: skip


class ThresholdRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ThresholdRule
        fields = [
            "id", "name", "selector", "comparison", "value", "for_seconds", "severity", "service", "description",
            "enabled", "state", "last_evaluated_at", "last_error", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "state", "last_evaluated_at", "last_error", "created_at"]


# --- CRUD -------------------------------------------------------------------------------------------------------


class _ServiceViewSet(viewsets.ModelViewSet):
    """Writes go through `save` / `delete` (services); the serializer only checks types."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    object_argument = ""

    def save(self, request: Request, data: dict, obj: object | None) -> object:
        raise NotImplementedError

    def remove(self, request: Request, obj: object) -> None:
        raise NotImplementedError

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        obj = self.save(request, dict(serializer.validated_data), None)
        return Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        obj = self.save(request, dict(serializer.validated_data), self.get_object())
        return Response(self.get_serializer(obj).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        self.remove(request, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScrapeTargetViewSet(_ServiceViewSet):
    """URLs the portal scrapes (Prometheus text or OpenMetrics). `scrape` scrapes one now; `test` tries settings
    without saving them."""

    queryset = ScrapeTarget.objects.all()
    serializer_class = ScrapeTargetSerializer
    filterset_fields = ["enabled", "auth"]
    ordering_fields = ["name", "created_at", "last_run_at"]

    def save(self, request: Request, data: dict, obj: ScrapeTarget | None) -> ScrapeTarget:
        return services.save_scrape_target(actor=request.user, target=obj, **data)

    def remove(self, request: Request, obj: ScrapeTarget) -> None:
        services.delete_scrape_target(target=obj, actor=request.user)

    @extend_schema(request=None, responses=ScrapeReportSerializer)
    @action(detail=True, methods=["post"])
    def scrape(self, request: Request, pk: str | None = None) -> Response:
        """Scrape the target now and store the result, as a scheduled scrape would."""
        report = services.scrape_target_now(target=self.get_object(), actor=request.user)
        return Response(ScrapeReportSerializer(report).data)

    @extend_schema(request=ScrapeTestSerializer, responses=ScrapeReportSerializer)
    @action(detail=False, methods=["post"], url_path="test")
    def test(self, request: Request) -> Response:
        """Scrape these settings once without saving or storing anything; the first samples come back."""
        serializer = ScrapeTestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = services.test_scrape_target(**serializer.validated_data)
        return Response(ScrapeReportSerializer(report).data)


class PromSourceViewSet(_ServiceViewSet):
    """Prometheus-compatible APIs (Prometheus, Thanos, Mimir, VictoriaMetrics) whose queries the portal watches."""

    queryset = PromSource.objects.all()
    serializer_class = PromSourceSerializer
    filterset_fields = ["enabled"]
    ordering_fields = ["name", "created_at"]

    def save(self, request: Request, data: dict, obj: PromSource | None) -> PromSource:
        return services.save_prom_source(actor=request.user, source=obj, **data)

    def remove(self, request: Request, obj: PromSource) -> None:
        services.delete_prom_source(source=obj, actor=request.user)

    @extend_schema(request=None, responses=SourceReportSerializer)
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Ask the source a trivial query: proves its URL, the credentials and that it speaks the API.

        The outcome is recorded as the source's last test (its history; the pages show it)."""
        try:
            report = prom_sources.record_prom_source_test(source=self.get_object(), actor=request.user)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="secret") from None
        return Response(SourceReportSerializer(report).data)


class WatchedQueryViewSet(_ServiceViewSet):
    """PromQL queries pulled from a source with query_range; their results are stored as series named `name`."""

    queryset = WatchedQuery.objects.select_related("source")
    serializer_class = WatchedQuerySerializer
    filterset_fields = ["source", "enabled"]
    ordering_fields = ["name", "created_at", "last_run_at"]

    def save(self, request: Request, data: dict, obj: WatchedQuery | None) -> WatchedQuery:
        return services.save_watched_query(actor=request.user, watched=obj, **data)

    def remove(self, request: Request, obj: WatchedQuery) -> None:
        services.delete_watched_query(watched=obj, actor=request.user)

    @extend_schema(request=None, responses=WatchedQuerySerializer)
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Pull the query now (the steps since its last pull) and store them."""
        watched = services.run_watched_query_now(watched=self.get_object(), actor=request.user)
        return Response(WatchedQuerySerializer(watched).data)


class ThresholdRuleViewSet(_ServiceViewSet):
    """Alerts on stored series: above/below a value for a duration, raised through the incident pipeline."""

    queryset = ThresholdRule.objects.all()
    serializer_class = ThresholdRuleSerializer
    filterset_fields = ["enabled", "state", "severity"]
    ordering_fields = ["name", "created_at"]

    def save(self, request: Request, data: dict, obj: ThresholdRule | None) -> ThresholdRule:
        return services.save_threshold_rule(actor=request.user, rule=obj, **data)

    def remove(self, request: Request, obj: ThresholdRule) -> None:
        services.delete_threshold_rule(rule=obj, actor=request.user)


# --- Prometheus's HTTP API ----------------------------------------------------------------------------------------

PROMETHEUS_SUCCESS = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='Prometheus\'s answer: {"status": "success", "data": ...}.',
)
PROMETHEUS_ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='{"status": "error", "errorType": "bad_data", "error": "invalid parameter \\"query\\": ..."}',
    examples=[
        OpenApiExample(
            "unsupported",
            value={
                "status": "error",
                "errorType": "bad_data",
                "error": "invalid parameter \"query\": the aggregation 'sum' is not supported; supported: ...",
            },
        )
    ],
)
QUERY_HELP = "A series selector, rate/increase/*_over_time of one, or a number (docs/aiops.md)."
TIME_HELP = "RFC 3339 or a unix timestamp in seconds."
START = OpenApiParameter("start", OpenApiTypes.STR, description=TIME_HELP)
END = OpenApiParameter("end", OpenApiTypes.STR, description=TIME_HELP)
MATCH = OpenApiParameter("match[]", OpenApiTypes.STR, many=True, description="Series selectors (repeatable).")
MIN_TIME = -62_135_596_800 + 86_400 * 400  # datetime's year 1, with room for windows before it
MAX_TIME = 253_402_300_799 - 86_400 * 400  # year 9999


class QueryRangeForm(serializers.Serializer):
    query = serializers.CharField(help_text=QUERY_HELP)
    start = serializers.CharField(help_text=TIME_HELP)
    end = serializers.CharField(help_text=TIME_HELP)
    step = serializers.CharField(help_text="Seconds, or a duration such as 15s or 1m.")


class QueryForm(serializers.Serializer):
    query = serializers.CharField()
    time = serializers.CharField(required=False, help_text=f"{TIME_HELP} Default: now.")


class MatchForm(serializers.Serializer):
    match = serializers.ListField(child=serializers.CharField(), required=False, help_text="match[]: selectors.")
    start = serializers.CharField(required=False)
    end = serializers.CharField(required=False)


class PrometheusView(APIView):
    """Prometheus's HTTP API format, errors included; GET parameters or a POST form, viewers may use both."""

    required_role = Role.VIEWER
    pagination_class = None
    filter_backends: list = []

    def params(self, request: Request) -> QueryDict:
        if request.method == "POST" and isinstance(request.data, QueryDict):
            merged = request.query_params.copy()
            for key in request.data:
                merged.setlist(key, request.data.getlist(key))
            return merged
        return request.query_params

    @staticmethod
    def time_param(params: QueryDict, name: str, default: float | None = None) -> float:
        value = metrics_query.parse_time(params.get(name), field=name, default=default)
        if not MIN_TIME <= value <= MAX_TIME:
            raise InvalidInput(f"cannot parse {params.get(name)!r} to a valid timestamp.", field=name)
        return value

    @staticmethod
    def answer(data: object) -> HttpResponse:
        body = json.dumps({"status": "success", "data": data}, separators=(",", ":"), allow_nan=False)
        return HttpResponse(body, content_type="application/json")

    def handle_exception(self, exc: Exception) -> HttpResponse:
        if isinstance(exc, InvalidInput):
            error = f'invalid parameter "{exc.field}": {exc.message}' if exc.field else exc.message
            body = json.dumps({"status": "error", "errorType": "bad_data", "error": error})
            return HttpResponse(body, status=400, content_type="application/json")
        return super().handle_exception(exc)

    def optional_range(self, params: QueryDict) -> float | None:
        return self.time_param(params, "start") if params.get("start") else None


ANSWERS = {200: PROMETHEUS_SUCCESS, 400: PROMETHEUS_ERROR}


def _schema(summary: str, form: type[serializers.Serializer], parameters: list[OpenApiParameter]) -> Callable:
    """Document the view's GET (query parameters) and its POST (the same as a form, as Grafana sends it)."""

    def decorate(view: type[PrometheusView]) -> type[PrometheusView]:
        def post(self: PrometheusView, request: Request, *args: object, **kwargs: object) -> HttpResponse:
            return self.get(request, *args, **kwargs)

        view.get = extend_schema(summary=summary, parameters=parameters, responses=ANSWERS)(view.get)
        form_schema = {"application/x-www-form-urlencoded": form}
        view.post = extend_schema(summary=f"{summary} (form)", request=form_schema, responses=ANSWERS)(post)
        return view

    return decorate


@_schema(
    "Range query, as Prometheus's /api/v1/query_range",
    QueryRangeForm,
    [
        OpenApiParameter(
            "query", OpenApiTypes.STR, required=True, description=QueryRangeForm().fields["query"].help_text
        ),
        OpenApiParameter("start", OpenApiTypes.STR, required=True, description=TIME_HELP),
        OpenApiParameter("end", OpenApiTypes.STR, required=True, description=TIME_HELP),
        OpenApiParameter("step", OpenApiTypes.STR, required=True, description="Seconds, or a duration (15s)."),
    ],
)
class QueryRangeView(PrometheusView):
    """A matrix: the query evaluated at every step over [start, end]; raw samples below a 5-minute step, rollups
    above it (docs/aiops.md "Metrics")."""

    def get(self, request: Request) -> HttpResponse:
        params = self.params(request)
        start, end = self.time_param(params, "start"), self.time_param(params, "end")
        step = metrics_query.parse_step(params.get("step"))
        if end < start:
            raise InvalidInput("end timestamp must not be before start time.", field="end")
        result = services.run_query_range(query_text=params.get("query", ""), start=start, end=end, step=step)
        return self.answer(result.to_prometheus())


@_schema(
    "Instant query, as Prometheus's /api/v1/query",
    QueryForm,
    [
        OpenApiParameter("query", OpenApiTypes.STR, required=True),
        OpenApiParameter("time", OpenApiTypes.STR, description=f"{TIME_HELP} Default: now."),
    ],
)
class QueryView(PrometheusView):
    """A vector (or a scalar for number expressions) at one time."""

    def get(self, request: Request) -> HttpResponse:
        params = self.params(request)
        at = self.time_param(params, "time", default=time.time())
        result = services.run_query_instant(query_text=params.get("query", ""), at=at)
        return self.answer(result.to_prometheus())


@_schema("Series matching selectors, as Prometheus's /api/v1/series", MatchForm, [MATCH, START, END])
class SeriesView(PrometheusView):
    def get(self, request: Request) -> HttpResponse:
        params = self.params(request)
        found = services.series_matching(matches=params.getlist("match[]"), start=self.optional_range(params))
        return self.answer([series.metric() for series in found])


@_schema("Label names, as Prometheus's /api/v1/labels", MatchForm, [MATCH, START, END])
class LabelsView(PrometheusView):
    def get(self, request: Request) -> HttpResponse:
        params = self.params(request)
        return self.answer(services.label_names(matches=params.getlist("match[]"), start=self.optional_range(params)))


@extend_schema(
    summary="A label's values, as Prometheus's /api/v1/label/<name>/values",
    parameters=[MATCH, START, END],
    responses=ANSWERS,
)
class LabelValuesView(PrometheusView):
    def get(self, request: Request, name: str) -> HttpResponse:
        params = self.params(request)
        values = services.label_values(label=name, matches=params.getlist("match[]"), start=self.optional_range(params))
        return self.answer(values)


@extend_schema(
    summary="Metric metadata (type), as Prometheus's /api/v1/metadata",
    parameters=[OpenApiParameter("metric", OpenApiTypes.STR), OpenApiParameter("limit", OpenApiTypes.INT)],
    responses=ANSWERS,
)
class MetadataView(PrometheusView):
    def get(self, request: Request) -> HttpResponse:
        params = self.params(request)
        rows = Series.objects.exclude(kind="").order_by("name").values_list("name", "kind").distinct()
        if params.get("metric"):
            rows = rows.filter(name=params["metric"])
        limit = params.get("limit", "")
        if limit:
            if not limit.lstrip("-").isdigit():
                raise InvalidInput("must be a number.", field="limit")
            if int(limit) > 0:
                rows = rows[: int(limit)]
        return self.answer({name: [{"type": kind, "help": "", "unit": ""}] for name, kind in rows})


@extend_schema(summary="Build information (for Grafana's data source check)", responses={200: PROMETHEUS_SUCCESS})
class BuildInfoView(PrometheusView):
    def get(self, request: Request) -> HttpResponse:
        return self.answer(
            {"version": "2.42.0", "revision": "opsportal", "branch": "", "buildUser": "", "buildDate": "",
             "goVersion": "", "application": "OpsPortal metrics (a subset of PromQL)"}
        )  # fmt: skip


@extend_schema(summary="Exemplars (none are stored)", responses={200: PROMETHEUS_SUCCESS})
class ExemplarsView(PrometheusView):
    def get(self, request: Request) -> HttpResponse:
        return self.answer([])


ROUTES = [
    ("metrics/targets", ScrapeTargetViewSet, "metrics-target"),
    ("metrics/sources", PromSourceViewSet, "metrics-source"),
    ("metrics/queries", WatchedQueryViewSet, "metrics-query"),
    ("metrics/thresholds", ThresholdRuleViewSet, "metrics-threshold"),
]
PROMETHEUS_ENDPOINTS = [
    ("query_range", QueryRangeView, "query-range"),
    ("query", QueryView, "query"),
    ("series", SeriesView, "series"),
    ("labels", LabelsView, "labels"),
    ("label/<str:name>/values", LabelValuesView, "label-values"),
    ("metadata", MetadataView, "metadata"),
    ("status/buildinfo", BuildInfoView, "buildinfo"),
    ("query_exemplars", ExemplarsView, "exemplars"),
]


def prometheus_urls() -> list[URLPattern]:
    """Prometheus's endpoints at metrics/<endpoint> (names metrics-<name>) and, for Grafana, which appends
    /api/v1/<endpoint> to its data source URL, at metrics/api/v1/<endpoint> (names grafana-metrics-<name>)."""
    return [
        path(f"{prefix}{route}", view.as_view(), name=f"{name_prefix}metrics-{name}")
        for prefix, name_prefix in (("metrics/", ""), ("metrics/api/v1/", "grafana-"))
        for route, view, name in PROMETHEUS_ENDPOINTS
    ]
