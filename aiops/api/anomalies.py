"""Live anomaly detection API: `/api/v1/aiops/anomalies/monitors/` and `/api/v1/aiops/anomalies/`.

Monitors (viewers read, operators write) answer their settings, the series they score (`series`: last
sample scored, its score, the expected band there, the threshold with its feedback notches), how many
anomalies are open, and `precision`: the share of the last 30 days' anomalies not marked not interesting
(null when there were none). Anomalies are read-only but for `POST .../<id>/feedback/`
`{"feedback": "not_interesting" | "none"}` (operators). Writes go through `aiops.services`, which name the
field of a bad value (400, nothing stored).
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..models import Anomaly, AnomalyMonitor, AnomalySeries
from ..services import anomalies as live


class AnomalySeriesSerializer(serializers.ModelSerializer):
    series_id = serializers.IntegerField(read_only=True)
    series = serializers.SerializerMethodField(help_text="The series as a selector.")
    threshold = serializers.SerializerMethodField(help_text="The score a sample must reach (after feedback).")

    class Meta:
        model = AnomalySeries
        fields = ["series_id", "series", "detector", "samples_seen", "last_time", "last_value", "last_score",
                  "expected_low", "expected_high", "threshold", "threshold_steps"]  # fmt: skip
        read_only_fields = fields

    def get_series(self, obj: AnomalySeries) -> str:
        return obj.series.selector()

    def get_threshold(self, obj: AnomalySeries) -> float:
        return live.threshold_for(obj.monitor.sensitivity, obj.threshold_steps)


class AnomalyMonitorSerializer(serializers.ModelSerializer):
    series = serializers.SerializerMethodField()
    open_anomalies = serializers.SerializerMethodField()
    anomalies_counted = serializers.SerializerMethodField(help_text="Anomalies of the last 30 days.")
    precision = serializers.SerializerMethodField(
        help_text="Of the last 30 days' anomalies, the share not marked not interesting (null: none)."
    )
    threshold = serializers.SerializerMethodField(help_text="The sensitivity's threshold before feedback.")

    class Meta:
        model = AnomalyMonitor
        fields = ["id", "name", "selector", "detector", "sensitivity", "threshold", "severity", "service",
                  "description", "enabled", "last_run_at", "last_duration_seconds", "last_error", "created_at",
                  "open_anomalies", "anomalies_counted", "precision", "series"]  # fmt: skip
        read_only_fields = ["id", "last_run_at", "last_duration_seconds", "last_error", "created_at"]
        extra_kwargs = {"selector": {"required": False}, "name": {"required": False, "validators": []}}

    def _figures(self, obj: AnomalyMonitor) -> dict:
        figures = self.context.setdefault("figures", {})
        if obj.pk not in figures:
            figures.update(live.monitor_figures([obj.pk]))
        return figures[obj.pk]

    @extend_schema_field(AnomalySeriesSerializer(many=True))
    def get_series(self, obj: AnomalyMonitor) -> list[dict]:
        rows = sorted(obj.series_states.all(), key=lambda r: r.series_id)
        return AnomalySeriesSerializer(rows, many=True, context=self.context).data

    def get_open_anomalies(self, obj: AnomalyMonitor) -> int:
        return self._figures(obj)["open"]

    def get_anomalies_counted(self, obj: AnomalyMonitor) -> int:
        return self._figures(obj)["precision"].total

    def get_precision(self, obj: AnomalyMonitor) -> float | None:
        return self._figures(obj)["precision"].share

    def get_threshold(self, obj: AnomalyMonitor) -> float:
        return live.threshold_for(obj.sensitivity)


class AnomalySerializer(serializers.ModelSerializer):
    series = serializers.SerializerMethodField(help_text="The series as a selector.")
    series_id = serializers.IntegerField(read_only=True)
    monitor_id = serializers.IntegerField(read_only=True)
    alert = serializers.IntegerField(source="alert_id", read_only=True, allow_null=True)
    feedback = serializers.SerializerMethodField(help_text="none or not_interesting.")
    feedback_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    explorer_url = serializers.SerializerMethodField(help_text="The metric explorer on the series at that time.")

    class Meta:
        model = Anomaly
        fields = ["id", "monitor_id", "series_id", "series", "started_at", "last_above_at", "ended_at",
                  "peak_score", "peak_at", "value", "expected_low", "expected_high", "threshold", "alert",
                  "feedback", "feedback_by", "feedback_at", "explorer_url"]  # fmt: skip
        read_only_fields = fields

    def get_series(self, obj: Anomaly) -> str:
        return obj.series.selector()

    def get_feedback(self, obj: Anomaly) -> str:
        return obj.feedback or "none"

    def get_explorer_url(self, obj: Anomaly) -> str:
        return live.explorer_url(obj.series_id, obj.started_at, obj.ended_at or obj.last_above_at)


class FeedbackSerializer(serializers.Serializer):
    feedback = serializers.ChoiceField(choices=["not_interesting", "none"])


class AnomalyFilter(django_filters.FilterSet):
    open = django_filters.BooleanFilter(field_name="ended_at", lookup_expr="isnull", label="Still going on.")
    monitor = django_filters.NumberFilter(field_name="monitor_id")
    series = django_filters.NumberFilter(field_name="series_id")
    since = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")

    class Meta:
        model = Anomaly
        fields = ["monitor", "series", "feedback", "open", "since"]


class AnomalyMonitorViewSet(viewsets.ModelViewSet):
    """Anomaly monitors: the series a streaming detector scores, with a sensitivity; their anomalies alert."""

    queryset = AnomalyMonitor.objects.prefetch_related("series_states__series").order_by("name")
    serializer_class = AnomalyMonitorSerializer
    filterset_fields = ["enabled", "sensitivity", "severity", "detector"]
    ordering_fields = ["name", "created_at", "last_run_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def list(self, request: Request, *args, **kwargs) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        context = {**self.get_serializer_context(), "figures": live.monitor_figures([m.pk for m in rows])}
        data = AnomalyMonitorSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        monitor = services.save_anomaly_monitor(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(monitor).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        monitor = services.save_anomaly_monitor(actor=request.user, monitor=self.get_object(),
                                                **serializer.validated_data)  # fmt: skip
        return Response(self.get_serializer(self.get_queryset().get(pk=monitor.pk)).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_anomaly_monitor(monitor=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnomalyViewSet(viewsets.ReadOnlyModelViewSet):
    """Anomalies found by the monitors, newest first; mark one not interesting with `feedback/`."""

    queryset = Anomaly.objects.select_related("series", "feedback_by").order_by("-started_at", "-id")
    serializer_class = AnomalySerializer
    filterset_class = AnomalyFilter
    ordering_fields = ["started_at", "peak_score"]
    lookup_value_regex = r"\d+"

    @extend_schema(request=FeedbackSerializer, responses=AnomalySerializer)
    @action(detail=True, methods=["post"])
    def feedback(self, request: Request, pk: str | None = None) -> Response:
        """not_interesting: kept, its alert resolved, the series' threshold raised a notch; none takes it back."""
        body = FeedbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        found = services.set_anomaly_feedback(anomaly_row=self.get_object(), feedback=body.validated_data["feedback"],
                                              actor=request.user)  # fmt: skip
        return Response(self.get_serializer(self.get_queryset().get(pk=found.pk)).data)
