"""Capacity forecasts API: `/api/v1/aiops/forecasts/` (viewers read, operators write).

Each forecast answers its settings and, in `results`, one entry per usage series it matches:
when it is full (`full_at`, the prediction interval's `full_at_earliest` and `full_at_latest`),
the backtest `mase`, `fitted_at` and `error`. Writes go through `aiops.services`, which name the
field of a bad value (400, nothing stored); `POST .../<id>/run/` refits it now.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..models import CapacityForecast, CapacityForecastResult


class ForecastResultSerializer(serializers.ModelSerializer):
    series = serializers.SerializerMethodField(help_text="The usage series as a selector.")
    series_id = serializers.IntegerField(read_only=True)
    limit_series_id = serializers.IntegerField(read_only=True, allow_null=True)
    state = serializers.CharField(
        read_only=True, help_text="ok, warning (may be full within the horizon), full, error."
    )
    summary = serializers.SerializerMethodField(help_text='"full in 12 days (9.5 to 15 days)" as the pages show it.')

    class Meta:
        model = CapacityForecastResult
        fields = [
            "series_id", "series", "limit_series_id", "limit", "last_value", "last_at", "full_at", "full_at_earliest",
            "full_at_latest", "mase", "model", "step_seconds", "points", "lookahead_days", "fitted_at", "error",
            "alerting", "state", "summary",
        ]  # fmt: skip
        read_only_fields = fields

    def get_series(self, obj: CapacityForecastResult) -> str:
        return obj.series.selector()

    def get_summary(self, obj: CapacityForecastResult) -> str:
        return services.full_text(obj, self.context.get("now"))


class CapacityForecastSerializer(serializers.ModelSerializer):
    match_labels = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text='Label names pairing usage and limit series, e.g. ["instance"].',
    )
    results = serializers.SerializerMethodField()

    class Meta:
        model = CapacityForecast
        fields = [
            "id", "name", "usage_selector", "limit_kind", "limit_value", "limit_selector", "match_labels",
            "horizon_days", "severity", "service", "description", "enabled", "state", "last_run_at",
            "last_duration_seconds", "last_error", "next_run_at", "created_at", "results",
        ]  # fmt: skip
        read_only_fields = ["id", "state", "last_run_at", "last_duration_seconds", "last_error", "next_run_at",
                            "created_at"]  # fmt: skip
        extra_kwargs = {"usage_selector": {"required": False}}

    @extend_schema_field(ForecastResultSerializer(many=True))
    def get_results(self, obj: CapacityForecast) -> list[dict]:
        rows = sorted(
            obj.results.all(),
            key=lambda r: (r.full_at is None, r.full_at or timezone.now(), r.full_at_earliest is None, r.series_id),
        )
        return ForecastResultSerializer(rows, many=True, context=self.context).data


class CapacityForecastViewSet(viewsets.ModelViewSet):
    """Capacity forecasts: when each usage series reaches its limit, with a prediction interval and a backtest MASE."""

    queryset = CapacityForecast.objects.prefetch_related("results__series")
    serializer_class = CapacityForecastSerializer
    filterset_fields = ["enabled", "state", "severity", "limit_kind"]
    ordering_fields = ["name", "created_at", "last_run_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "now": timezone.now()}

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        forecast = services.save_capacity_forecast(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(forecast).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        forecast = services.save_capacity_forecast(
            actor=request.user, forecast=self.get_object(), **serializer.validated_data
        )
        return Response(self.get_serializer(forecast).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_capacity_forecast(forecast=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=CapacityForecastSerializer)
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Refit the forecast now (in the request) and answer it with its new results."""
        forecast = services.run_forecast_now(forecast=self.get_object(), actor=request.user)
        forecast = self.get_queryset().get(pk=forecast.pk)
        return Response(self.get_serializer(forecast).data)
