"""Admin registrations for AIOps models. Integrations are created in the portal (the token is shown there once)."""

from django.contrib import admin

from .models import (
    Alert,
    AlertDelivery,
    CorrelationRule,
    Delivery,
    Incident,
    IncidentEvent,
    Integration,
    Notification,
    NotificationChannel,
    NotificationRoute,
    Silence,
)


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "token_prefix", "last_delivery_at"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["token_prefix", "created_at", "last_delivery_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "integration", "received_at", "alert_count", "remote_addr"]
    list_filter = ["integration"]
    raw_id_fields = ["integration"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "severity", "service", "times_seen", "last_seen_at", "incident"]
    list_filter = ["status", "severity"]
    search_fields = ["title", "fingerprint", "service"]
    raw_id_fields = ["integration", "incident", "suppressed_by"]


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "delivery", "status", "received_at"]
    raw_id_fields = ["alert", "delivery"]


class IncidentEventInline(admin.TabularInline):
    model = IncidentEvent
    extra = 0
    fields = ["at", "kind", "actor_name", "message"]
    readonly_fields = fields


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "status", "severity", "service", "assignee", "created_at"]
    list_filter = ["status", "severity"]
    search_fields = ["title", "service"]
    raw_id_fields = ["assignee", "merged_into", "rule"]
    inlines = [IncidentEventInline]


@admin.register(IncidentEvent)
class IncidentEventAdmin(admin.ModelAdmin):
    list_display = ["incident", "at", "kind", "actor_name", "message"]
    list_filter = ["kind"]
    raw_id_fields = ["incident", "actor"]


@admin.register(CorrelationRule)
class CorrelationRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "enabled", "group_by", "window_minutes", "auto_resolve"]


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["comment", "starts_at", "ends_at", "expired_early_at", "created_by"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "target", "enabled"]
    exclude = ["secret_encrypted"]


@admin.register(NotificationRoute)
class NotificationRouteAdmin(admin.ModelAdmin):
    list_display = ["channel", "severities", "services", "enabled"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["incident", "channel", "event", "status", "attempts", "sent_at"]
    list_filter = ["status"]
    raw_id_fields = ["incident"]
