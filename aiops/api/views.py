"""AIOps REST API: integrations, alerts, incidents (with triage actions), silences, rules, channels."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role
from opsportal.errors import InvalidInput

from .. import services
from ..models import (
    Alert,
    AlertDelivery,
    CorrelationRule,
    Incident,
    IncidentEvent,
    Integration,
    NotificationChannel,
    Silence,
)
from .filters import AlertFilter, IncidentFilter
from .serializers import (
    AlertDetailSerializer,
    AlertSerializer,
    AssignSerializer,
    BulkSerializer,
    CommentSerializer,
    CorrelationRuleSerializer,
    IncidentEventSerializer,
    IncidentSerializer,
    IntegrationSerializer,
    MergeSerializer,
    NewIntegrationSerializer,
    NotificationChannelSerializer,
    NotificationRouteSerializer,
    SentTestAlertSerializer,
    SilenceSerializer,
    SplitSerializer,
)


class IntegrationViewSet(viewsets.ModelViewSet):
    """Alert senders. Creating one returns its ingest `url` and secret `token` (shown once). Admins only write;
    operators may send test alerts."""

    queryset = Integration.objects.all()
    serializer_class = IntegrationSerializer
    write_role = Role.ADMIN
    action_roles = {"send_test": Role.OPERATOR}
    filterset_fields = ["kind", "enabled"]
    ordering_fields = ["name", "created_at", "last_delivery_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(responses={201: NewIntegrationSerializer})
    def create(self, request: Request) -> Response:
        serializer = IntegrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        integration, raw = services.create_integration(
            name=data["name"],
            kind=data["kind"],
            rate_limit_per_minute=data.get("rate_limit_per_minute", 6000),
            actor=request.user,
        )
        integration.token = raw
        body = NewIntegrationSerializer(integration, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = IntegrationSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        integration = services.update_integration(
            integration=self.get_object(),
            actor=request.user,
            name=data.get("name"),
            enabled=data.get("enabled"),
            rate_limit_per_minute=data.get("rate_limit_per_minute"),
        )
        return Response(IntegrationSerializer(integration, context={"request": request}).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_integration(integration=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=NewIntegrationSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request: Request, pk: str | None = None) -> Response:
        """Issue a new token; the old one stops working at once."""
        integration = self.get_object()
        integration.token = services.rotate_integration_token(integration=integration, actor=request.user)
        return Response(NewIntegrationSerializer(integration, context={"request": request}).data)

    @extend_schema(request=None, responses={201: SentTestAlertSerializer})
    @action(detail=True, methods=["post"], url_path="test")
    def send_test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test alert: a sample delivery in the integration's own format through the real pipeline.

        It is ingested as a sender's delivery and correlated at once (unless a long backlog waits:
        then `pending` is true and the worker links the incident). Every call sends a new alert.
        409 when the integration is disabled; 403 for an app's internal integration.
        """
        integration = self.get_object()
        sent = services.send_test_alert(
            integration=integration,
            actor=request.user,
            source_url=request.build_absolute_uri(integration.get_absolute_url()),
        )
        body = SentTestAlertSerializer(sent, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    """Alerts as received, deduplicated by fingerprint (one row per occurrence)."""

    queryset = Alert.objects.select_related("integration")
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering_fields = ["last_seen_at", "first_seen_at", "severity", "times_seen"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("delivery_history", queryset=AlertDelivery.objects.order_by("-received_at"))
            )
        return queryset

    def get_serializer_class(self):
        return AlertDetailSerializer if self.action == "retrieve" else AlertSerializer


class IncidentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Incidents: filter by status, severity, service, assignee, time and text; triage with the actions."""

    queryset = Incident.objects.select_related("assignee")
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    ordering_fields = ["created_at", "last_alert_at", "severity", "status", "alert_count"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = IncidentSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        incident = services.update_incident(incident=self.get_object(), actor=request.user, **data)
        return Response(IncidentSerializer(incident).data)

    @extend_schema(request=None, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        incident = services.acknowledge_incident(incident=self.get_object(), actor=request.user)
        return Response(IncidentSerializer(incident).data)

    @extend_schema(request=CommentSerializer(required=False), responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        note = str(request.data.get("note", "")) if isinstance(request.data, dict) else ""
        incident = services.resolve_incident(incident=self.get_object(), actor=request.user, note=note)
        return Response(IncidentSerializer(incident).data)

    @extend_schema(request=None, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str | None = None) -> Response:
        incident = services.reopen_incident(incident=self.get_object(), actor=request.user)
        return Response(IncidentSerializer(incident).data)

    @extend_schema(request=AssignSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        serializer = AssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assignee = None
        if data["assignee"]:
            assignee = User.objects.filter(username=data["assignee"], is_active=True).first()
            if assignee is None:
                raise InvalidInput(f"No active user named {data['assignee']!r}.", field="assignee")
        incident = services.assign_incident(incident=self.get_object(), assignee=assignee, actor=request.user)
        return Response(IncidentSerializer(incident).data)

    @extend_schema(methods=["get"], responses=IncidentEventSerializer(many=True))
    @extend_schema(methods=["post"], request=CommentSerializer, responses={201: IncidentEventSerializer})
    # The comments are one list, unpaged and unfiltered: the incident filters do not apply to one incident.
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def comments(self, request: Request, pk: str | None = None) -> Response:
        incident = self.get_object()
        if request.method == "GET":
            events = incident.events.filter(kind=IncidentEvent.Kind.COMMENT)
            return Response(IncidentEventSerializer(events, many=True).data)
        serializer = CommentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        event = services.comment_on_incident(incident=incident, body=data["body"], actor=request.user)
        return Response(IncidentEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=IncidentEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def timeline(self, request: Request, pk: str | None = None) -> Response:
        events = self.get_object().events.all()
        page = self.paginate_queryset(events)
        return self.get_paginated_response(IncidentEventSerializer(page, many=True).data)

    @extend_schema(request=MergeSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        """Merge this incident into another (`into`); its alerts move there."""
        serializer = MergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        target = Incident.objects.filter(pk=data["into"]).first()
        if target is None:
            raise InvalidInput(f"No incident #{data['into']}.", field="into")
        merged = services.merge_incidents(source=self.get_object(), target=target, actor=request.user)
        return Response(IncidentSerializer(merged).data)

    @extend_schema(request=SplitSerializer, responses={201: IncidentSerializer})
    @action(detail=True, methods=["post"])
    def split(self, request: Request, pk: str | None = None) -> Response:
        """Move one alert out of this incident into a new incident."""
        serializer = SplitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        incident = self.get_object()
        alert = Alert.objects.filter(pk=data["alert"]).first()
        if alert is None:
            raise InvalidInput(f"No alert {data['alert']}.", field="alert")
        new = services.split_alert(incident=incident, alert=alert, actor=request.user)
        return Response(IncidentSerializer(new).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BulkSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """Acknowledge or resolve many incidents at once."""
        serializer = BulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        incidents = list(Incident.objects.filter(pk__in=data["ids"]))
        missing = sorted(set(data["ids"]) - {i.pk for i in incidents})
        if missing:
            raise InvalidInput(f"No incidents {missing}.", field="ids")
        changed = services.bulk_transition(incidents=incidents, action=data["action"], actor=request.user)
        return Response({"changed": changed, "requested": len(incidents)})


class SilenceViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Silences (maintenance windows): matching alerts are stored but open no incident. DELETE expires one."""

    queryset = Silence.objects.select_related("created_by")
    serializer_class = SilenceSerializer
    ordering_fields = ["starts_at", "ends_at", "created_at"]

    def create(self, request: Request) -> Response:
        serializer = SilenceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        silence = services.create_silence(
            matchers=[dict(m) for m in data["matchers"]],
            starts_at=data.get("starts_at"),
            ends_at=data["ends_at"],
            comment=data["comment"],
            actor=request.user,
        )
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        silence = services.expire_silence(silence=self.get_object(), actor=request.user)
        return Response(SilenceSerializer(silence).data)


class CorrelationRuleViewSet(viewsets.ModelViewSet):
    """How alerts are grouped into incidents, tried in `position` order. Admins only write."""

    queryset = CorrelationRule.objects.all()
    serializer_class = CorrelationRuleSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request: Request) -> Response:
        serializer = CorrelationRuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        data["matchers"] = [dict(m) for m in data.get("matchers", [])]
        rule = services.save_rule(actor=request.user, **data)
        return Response(CorrelationRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = CorrelationRuleSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "matchers" in data:
            data["matchers"] = [dict(m) for m in data["matchers"]]
        rule = services.save_rule(actor=request.user, rule=self.get_object(), **data)
        return Response(CorrelationRuleSerializer(rule).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_rule(rule=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationChannelViewSet(viewsets.ModelViewSet):
    """Email, signed webhook and Slack-compatible channels, with their routes. Admins only."""

    queryset = NotificationChannel.objects.prefetch_related("routes")
    serializer_class = NotificationChannelSerializer
    required_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request: Request) -> Response:
        serializer = NotificationChannelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        channel = services.save_channel(actor=request.user, **data)
        return Response(NotificationChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = NotificationChannelSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        channel = services.save_channel(actor=request.user, channel=self.get_object(), **data)
        return Response(NotificationChannelSerializer(channel).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_channel(channel=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=NotificationRouteSerializer, responses={201: NotificationRouteSerializer})
    @action(detail=True, methods=["post"])
    def routes(self, request: Request, pk: str | None = None) -> Response:
        """Add a route: which severities and services notify this channel (empty lists mean any)."""
        serializer = NotificationRouteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        route = services.save_route(
            actor=request.user,
            channel=self.get_object(),
            severities=data.get("severities", []),
            services=data.get("services", []),
            enabled=data.get("enabled", True),
        )
        return Response(NotificationRouteSerializer(route).data, status=status.HTTP_201_CREATED)
