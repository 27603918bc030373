from __future__ import annotations

from rest_framework import serializers

from ..models import (
    Alert,
    CorrelationRule,
    Incident,
    IncidentEvent,
    Integration,
    NotificationChannel,
    NotificationRoute,
    Silence,
)
from ..services import SentTestAlert


class IntegrationSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="The full URL to paste into the sender.")

    class Meta:
        model = Integration
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "token_prefix",
            "enabled",
            "rate_limit_per_minute",
            "created_at",
            "last_delivery_at",
        ]
        read_only_fields = ["id", "url", "token_prefix", "created_at", "last_delivery_at"]

    def get_url(self, integration: Integration) -> str:
        request = self.context.get("request")
        path = integration.ingest_path()
        return request.build_absolute_uri(path) if request else path


class SentTestAlertSerializer(serializers.Serializer):
    """What `POST /integrations/<id>/test/` did: the sample delivery, its alert and the incident it opened or joined."""

    delivery = serializers.IntegerField(source="delivery.pk", help_text="The delivery row, as a sender's would be.")
    alert = serializers.IntegerField(source="alert.pk", help_text="The test alert (a new one on every call).")
    fingerprint = serializers.CharField(source="alert.fingerprint")
    incident = serializers.IntegerField(
        source="incident.pk", allow_null=True, default=None, help_text="null while correlation is pending."
    )
    incident_url = serializers.SerializerMethodField(help_text="The incident's page; null while pending.")
    opened = serializers.BooleanField(help_text="True when it opened the incident, false when it joined an open one.")
    pending = serializers.BooleanField(help_text="True while the worker has yet to correlate it (a long backlog).")
    suppressed_by = serializers.IntegerField(
        source="alert.suppressed_by_id", allow_null=True, help_text="The silence that matched it, if any."
    )

    def get_incident_url(self, sent: SentTestAlert) -> str | None:
        if sent.incident is None:
            return None
        request = self.context.get("request")
        url = sent.incident.get_absolute_url()
        return request.build_absolute_uri(url) if request else url


class NewIntegrationSerializer(IntegrationSerializer):
    token = serializers.CharField(read_only=True, help_text="The sender's bearer secret; shown only in this response.")

    class Meta(IntegrationSerializer.Meta):
        fields = [*IntegrationSerializer.Meta.fields, "token"]


class AlertSerializer(serializers.ModelSerializer):
    integration = serializers.CharField(source="integration.name", read_only=True)
    suppressed = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "integration", "fingerprint", "status", "severity", "title", "description", "service", "source",
            "labels", "annotations", "starts_at", "ends_at", "first_seen_at", "last_seen_at", "times_seen",
            "generator_url", "links", "incident", "suppressed", "suppressed_by",
        ]  # fmt: skip
        read_only_fields = fields

    def get_suppressed(self, alert: Alert) -> bool:
        return alert.suppressed_by_id is not None


class AlertDetailSerializer(AlertSerializer):
    deliveries = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "raw", "deliveries"]
        read_only_fields = fields

    def get_deliveries(self, alert: Alert) -> list[dict]:
        return [
            {"delivery": d.delivery_id, "status": d.status, "received_at": d.received_at}
            for d in alert.delivery_history.all()[:100]
        ]


class IncidentSerializer(serializers.ModelSerializer):
    assignee = serializers.CharField(source="assignee.username", read_only=True, allow_null=True, default=None)
    effective_severity = serializers.CharField(read_only=True)

    class Meta:
        model = Incident
        fields = [
            "id", "title", "summary", "status", "severity", "severity_override", "effective_severity", "service",
            "assignee", "group_labels", "links", "alert_count", "firing_count", "created_at", "acknowledged_at",
            "resolved_at", "last_alert_at", "merged_into",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("title", "summary", "severity_override")]


class IncidentEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = IncidentEvent
        fields = ["id", "at", "kind", "actor", "message", "data"]
        read_only_fields = fields


class CommentSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=10000)


class AssignSerializer(serializers.Serializer):
    assignee = serializers.CharField(allow_null=True, help_text="A username, or null to unassign.")


class MergeSerializer(serializers.Serializer):
    into = serializers.IntegerField(help_text="The incident that receives this one's alerts.")


class SplitSerializer(serializers.Serializer):
    alert = serializers.IntegerField(help_text="The alert to move into a new incident.")


class BulkSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=500)
    action = serializers.ChoiceField(choices=["acknowledge", "resolve"])


class MatcherSerializer(serializers.Serializer):
    label = serializers.CharField()
    op = serializers.ChoiceField(choices=["=", "!=", "=~", "!~"], default="=")
    value = serializers.CharField(allow_blank=True)


class SilenceSerializer(serializers.ModelSerializer):
    matchers = MatcherSerializer(many=True)
    active = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = Silence
        fields = [
            "id",
            "matchers",
            "starts_at",
            "ends_at",
            "comment",
            "active",
            "created_by",
            "created_at",
            "expired_early_at",
        ]
        read_only_fields = ["id", "active", "created_by", "created_at", "expired_early_at"]
        extra_kwargs = {"starts_at": {"required": False}}

    def get_active(self, silence: Silence) -> bool:
        return silence.is_active()


class CorrelationRuleSerializer(serializers.ModelSerializer):
    matchers = MatcherSerializer(many=True, required=False)

    class Meta:
        model = CorrelationRule
        fields = [
            "id", "name", "kind", "position", "enabled", "matchers", "group_by", "window_minutes", "auto_resolve",
            "reopen_cooldown_minutes", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]


class NotificationRouteSerializer(serializers.ModelSerializer):
    class Meta:
        model = NotificationRoute
        fields = ["id", "severities", "services", "enabled"]


class NotificationChannelSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, help_text="Webhook signing key.")
    has_secret = serializers.SerializerMethodField()
    routes = NotificationRouteSerializer(many=True, read_only=True)

    class Meta:
        model = NotificationChannel
        fields = ["id", "name", "kind", "target", "enabled", "secret", "has_secret", "routes", "created_at"]
        read_only_fields = ["id", "has_secret", "routes", "created_at"]

    def get_has_secret(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret_encrypted)
