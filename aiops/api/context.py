"""`GET /api/v1/aiops/incidents/<id>/context/`: an incident's troubleshooting context (viewer)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import Incident
from ..services import incident_context as context_service


class ContextItemSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text='Its section: "anomaly", "check", "change" (and "log_pattern" ...).')
    title = serializers.CharField()
    detail = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField(help_text="When it happened: started, went down, was changed.")
    url = serializers.CharField(help_text="The page it came from (a path on this portal, or an absolute URL).")
    severity = serializers.ChoiceField(choices=["critical", "error", "warning", "info"])


class IncidentContextSerializer(serializers.Serializer):
    incident = serializers.IntegerField(source="incident_id")
    window_start = serializers.DateTimeField(help_text="The time range looked at: from an hour before it opened")
    window_end = serializers.DateTimeField(help_text="until now while it is open (or until it resolved).")
    refreshed_at = serializers.DateTimeField(help_text="When the context was last assembled.")
    items = ContextItemSerializer(many=True, help_text="Anomalies, checks down and recent changes, by section.")


class IncidentContextView(GenericAPIView):
    """The context of an incident: what else went wrong or changed around its start, each item with a link.

    Assembled when the incident opens and every two minutes while it is open; when the stored context is
    older than a minute (and the incident is open) this request assembles it again first; `refresh=true`
    always does.
    """

    queryset = Incident.objects.all()
    serializer_class = IncidentContextSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        operation_id="aiops_incidents_context_retrieve",
        parameters=[OpenApiParameter("refresh", bool, description="Assemble the context again before answering.")],
        responses=IncidentContextSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        incident = get_object_or_404(Incident, pk=pk)
        refresh = request.query_params.get("refresh", "").lower()
        if refresh not in ("", "true", "false", "1", "0"):
            raise serializers.ValidationError({"refresh": ["must be true or false."]})
        context = context_service.incident_context(incident=incident, force=refresh in ("true", "1"))
        return Response(IncidentContextSerializer(context).data)
