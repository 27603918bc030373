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


# Checks and metric collection (issue 11): read-mostly views; people change them in the portal,
# where the services validate and audit. Raw samples and rollups (composite keys, which the admin does
# not support) are read through the metrics API.
from .models import (  # noqa: E402
    Check,
    CheckHourlyStat,
    CheckOutage,
    CheckResult,
    Ping,
    PromSource,
    Rollup5m,
    RollupCheckpoint,
    ScrapeTarget,
    Series,
    StatusPage,
    ThresholdRule,
    ThresholdState,
    WatchedQuery,
)


@admin.register(Check)
class CheckAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "status", "service", "interval_seconds", "paused", "last_result_at"]
    list_filter = ["kind", "status", "paused"]
    search_fields = ["name", "service"]
    readonly_fields = ["ping_uuid", "status", "status_changed_at", "last_result_at", "next_due_at"]


@admin.register(CheckResult)
class CheckResultAdmin(admin.ModelAdmin):
    list_display = ["check_obj", "at", "up", "latency_ms", "status_code"]
    list_filter = ["up"]
    raw_id_fields = ["check_obj"]


@admin.register(CheckHourlyStat)
class CheckHourlyStatAdmin(admin.ModelAdmin):
    list_display = ["check_obj", "hour", "total", "up"]
    raw_id_fields = ["check_obj"]


@admin.register(CheckOutage)
class CheckOutageAdmin(admin.ModelAdmin):
    list_display = ["check_obj", "started_at", "ended_at"]
    raw_id_fields = ["check_obj"]


@admin.register(Ping)
class PingAdmin(admin.ModelAdmin):
    list_display = ["check_obj", "at", "kind", "exit_status", "remote_addr"]
    list_filter = ["kind"]
    raw_id_fields = ["check_obj"]


@admin.register(StatusPage)
class StatusPageAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "published"]
    list_filter = ["published"]


_COLLECTION = (
    ScrapeTarget, PromSource, WatchedQuery, Series, Rollup5m, RollupCheckpoint, ThresholdRule, ThresholdState,
)  # fmt: skip
from .models import (  # noqa: E402
    AlertPairStats,
    AlertSignatureStats,
    CapacityForecast,
    CapacityForecastResult,
    CorrelationLearningCursor,
    MergeSuggestion,
)

# Learned correlation's memory (read-mostly; the scorer and the merge/split feedback write it).
_LEARNED = (AlertSignatureStats, AlertPairStats, CorrelationLearningCursor, MergeSuggestion)
# Capacity forecasts and their per-series results (people edit forecasts in the portal).
_FORECASTS = (CapacityForecast, CapacityForecastResult)
for _model in _COLLECTION + _LEARNED + _FORECASTS:
    if _model._meta.pk.__class__.__name__ != "CompositePrimaryKey":
        admin.site.register(_model)

# Live anomaly detection (issue 12): monitors, each series' stored detector state, the anomalies found.
from .models import Anomaly, AnomalyMonitor, AnomalySeries  # noqa: E402


@admin.register(AnomalyMonitor)
class AnomalyMonitorAdmin(admin.ModelAdmin):
    list_display = ["name", "selector", "detector", "sensitivity", "enabled", "last_run_at"]
    list_filter = ["enabled", "sensitivity"]


@admin.register(AnomalySeries)
class AnomalySeriesAdmin(admin.ModelAdmin):
    list_display = ["monitor", "series", "last_time", "last_score", "threshold_steps"]
    raw_id_fields = ["monitor", "series"]
    exclude = ["state"]


@admin.register(Anomaly)
class AnomalyAdmin(admin.ModelAdmin):
    list_display = ["monitor", "series", "started_at", "ended_at", "peak_score", "feedback"]
    list_filter = ["feedback"]
    raw_id_fields = ["monitor", "series", "alert", "feedback_by"]


from .models import IncidentContext  # noqa: E402  (incident context, issue 13)


@admin.register(IncidentContext)
class IncidentContextAdmin(admin.ModelAdmin):
    list_display = ["incident", "refreshed_at", "window_start", "window_end"]
    raw_id_fields = ["incident"]
    readonly_fields = ["items", "window_start", "window_end", "refreshed_at"]


# Logs (issue 13): records (a partitioned table: no full count in the admin), templates and their counts,
# the miners' persisted state. Runbooks: definitions, the kill switch, runs, steps and their calls.
from .models import (  # noqa: E402
    LogMinerState,
    LogRecord,
    LogTemplate,
    LogTemplateBucket,
    Runbook,
    RunbookCall,
    RunbookRun,
    RunbookStepRun,
    RunbookSwitch,
)


@admin.register(LogRecord)
class LogRecordAdmin(admin.ModelAdmin):
    list_display = ["time", "service", "severity", "template_id"]
    show_full_result_count = False
    readonly_fields = [field.name for field in LogRecord._meta.fields]


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ["name", "trigger_mode", "enabled"]
    exclude = ["secrets_encrypted"]


for _model in (LogTemplate, LogTemplateBucket, LogMinerState, RunbookSwitch, RunbookRun, RunbookStepRun, RunbookCall):
    admin.site.register(_model)
