"""Admin registrations for the model registry. Changes are meant to go through the portal (history, approvals);
the admin is for looking and for repairs."""

from django.contrib import admin

from .models import (
    ApprovalRequest,
    Artifact,
    Breach,
    ModelAlias,
    ModelVersion,
    ModelVersionTag,
    Monitor,
    MonitorCheck,
    MonitoringBatch,
    PredictionRecord,
    ReferenceDataset,
    RegisteredModel,
    RegisteredModelTag,
    RetrainingCall,
    RetrainingHook,
    VersionEvent,
    Webhook,
    WebhookDelivery,
)


class RegisteredModelTagInline(admin.TabularInline):
    model = RegisteredModelTag
    extra = 0


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "owner_team", "approval_required", "updated_at"]
    list_filter = ["approval_required", "owner_team"]
    search_fields = ["name"]
    inlines = [RegisteredModelTagInline]


@admin.register(RegisteredModelTag)
class RegisteredModelTagAdmin(admin.ModelAdmin):
    list_display = ["model", "key", "value"]
    search_fields = ["key", "value"]
    raw_id_fields = ["model"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["model", "version", "stage", "status", "source", "created_at"]
    list_filter = ["stage", "status"]
    search_fields = ["model__name", "run_id", "source"]
    raw_id_fields = ["model", "created_by"]


@admin.register(ModelVersionTag)
class ModelVersionTagAdmin(admin.ModelAdmin):
    list_display = ["version", "key", "value"]
    raw_id_fields = ["version"]


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["model", "alias", "version", "updated_at"]
    raw_id_fields = ["model", "version"]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["version", "path", "size", "sha256", "uploaded_at"]
    raw_id_fields = ["version", "uploaded_by"]


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "kind", "target_stage", "alias", "status", "requested_by", "requested_at"]
    list_filter = ["status", "kind"]
    raw_id_fields = ["version", "requested_by", "decided_by"]


@admin.register(VersionEvent)
class VersionEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "model", "version", "kind", "message", "actor_name"]
    list_filter = ["kind"]
    raw_id_fields = ["model", "version", "actor"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "enabled", "model"]
    exclude = ["secret"]  # encrypted; set in the portal, where it is shown once


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "webhook", "event", "status", "attempts", "response_code", "created_at"]
    list_filter = ["status", "event"]
    raw_id_fields = ["webhook"]


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    list_display = ["model", "name", "follow_alias", "follow_stage", "task", "enabled", "last_evaluated_at"]
    list_filter = ["enabled", "task"]
    search_fields = ["model__name", "name"]
    raw_id_fields = ["model", "reference", "created_by"]


@admin.register(ReferenceDataset)
class ReferenceDatasetAdmin(admin.ModelAdmin):
    list_display = ["monitor", "name", "source", "rows", "size", "created_at"]
    list_filter = ["source"]
    raw_id_fields = ["monitor", "version", "created_by"]


@admin.register(MonitoringBatch)
class MonitoringBatchAdmin(admin.ModelAdmin):
    list_display = ["monitor", "version", "source", "rows", "start", "end", "dataset_drift", "drift_share"]
    list_filter = ["source", "dataset_drift"]
    raw_id_fields = ["monitor", "version", "reference", "created_by"]


@admin.register(PredictionRecord)
class PredictionRecordAdmin(admin.ModelAdmin):
    list_display = ["model", "version", "prediction_id", "timestamp", "labelled_at"]
    search_fields = ["prediction_id"]
    raw_id_fields = ["model", "version"]


@admin.register(MonitorCheck)
class MonitorCheckAdmin(admin.ModelAdmin):
    list_display = ["monitor", "name", "kind", "scope", "state", "last_value", "last_evaluated_at"]
    list_filter = ["kind", "scope", "state", "enabled"]
    raw_id_fields = ["monitor", "retraining"]


@admin.register(Breach)
class BreachAdmin(admin.ModelAdmin):
    list_display = ["monitor", "monitor_check", "version", "value", "opened_at", "resolved_at"]
    raw_id_fields = ["monitor", "monitor_check", "version", "batch", "retrained_version"]


@admin.register(RetrainingHook)
class RetrainingHookAdmin(admin.ModelAdmin):
    list_display = ["model", "name", "kind", "url", "enabled"]
    list_filter = ["kind", "enabled"]
    raw_id_fields = ["model"]
    exclude = ["secret_encrypted", "token_encrypted"]


@admin.register(RetrainingCall)
class RetrainingCallAdmin(admin.ModelAdmin):
    list_display = ["hook", "event", "status", "attempts", "response_code", "created_at", "sent_at"]
    list_filter = ["status"]
    raw_id_fields = ["hook", "breach"]
