"""Admin registrations for LLMOps. Providers' API keys are encrypted and never shown; set them in the portal."""

from django.contrib import admin

from .models import (
    AnnotationItem,
    AnnotationQueue,
    Dataset,
    DatasetItem,
    EvalRun,
    Evaluator,
    GuardCall,
    GuardPolicy,
    LabelMove,
    LLMModel,
    LLMMonitor,
    LLMMonitorReading,
    PriceEntry,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
    RunColumn,
    RunItem,
    RunResult,
    Score,
    ScoreConfig,
)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "base_url", "max_concurrency", "enabled"]
    exclude = ["api_key"]


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "input_per_million", "output_per_million", "cache_read_per_million",
                    "cache_write_per_million"]  # fmt: skip
    list_filter = ["provider"]


@admin.register(PriceEntry)
class PriceEntryAdmin(admin.ModelAdmin):
    list_display = ["model_name", "input_per_million", "output_per_million", "cache_read_per_million",
                    "cache_write_per_million", "updated_at"]  # fmt: skip
    search_fields = ["model_name"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["name", "gate_dataset", "gate_min_pass_rate", "updated_at"]
    search_fields = ["name"]


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ["prompt", "version", "model", "commit_message", "created_at"]
    raw_id_fields = ["prompt", "author"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # versions are immutable


@admin.register(PromptLabel)
class PromptLabelAdmin(admin.ModelAdmin):
    list_display = ["prompt", "name", "version", "updated_at"]
    raw_id_fields = ["prompt", "version"]


@admin.register(LabelMove)
class LabelMoveAdmin(admin.ModelAdmin):
    list_display = ["at", "prompt", "label", "from_version", "to_version", "gate_overridden", "actor"]
    raw_id_fields = ["prompt", "actor"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name"]


@admin.register(DatasetItem)
class DatasetItemAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "expected_output", "updated_at"]
    raw_id_fields = ["dataset"]


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "status", "done", "total", "passed", "errors", "cost", "created_at"]
    list_filter = ["status", "kind"]
    raw_id_fields = ["dataset", "judge_model", "created_by"]


@admin.register(RunColumn)
class RunColumnAdmin(admin.ModelAdmin):
    list_display = ["run", "position", "label", "pass_rate"]
    raw_id_fields = ["run", "prompt_version", "model"]


@admin.register(RunItem)
class RunItemAdmin(admin.ModelAdmin):
    list_display = ["run", "position", "source_item"]
    raw_id_fields = ["run", "source_item"]


@admin.register(RunResult)
class RunResultAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "item", "column", "passed", "score", "latency_ms", "cost", "error"]
    list_filter = ["passed"]
    raw_id_fields = ["run", "item", "column"]


# Production traces (llmops/models/traces.py): spans are read only (written by the OTLP ingest); the span
# list shows no full count (a partitioned table of millions of rows).
from .models import EndUser, Session, Span, Trace  # noqa: E402


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ["trace_id", "name", "service", "start_time", "spans", "model", "cost", "errors"]
    list_filter = ["service"]
    search_fields = ["trace_id"]
    raw_id_fields = ["session", "end_user", "prompt_version"]
    show_full_result_count = False


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    list_display = ["start_time", "trace_id", "span_id", "name", "service", "model", "status"]
    search_fields = ["trace_id"]
    show_full_result_count = False
    readonly_fields = [field.name for field in Span._meta.fields]


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["key", "service", "end_user", "last_seen", "generations", "cost"]
    search_fields = ["key"]
    raw_id_fields = ["end_user"]


@admin.register(EndUser)
class EndUserAdmin(admin.ModelAdmin):
    list_display = ["external_id", "last_seen", "generations", "cost"]
    search_fields = ["external_id"]


@admin.register(GuardPolicy)
class GuardPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "direction", "action", "record_text", "is_default", "updated_at"]
    search_fields = ["name"]


@admin.register(GuardCall)
class GuardCallAdmin(admin.ModelAdmin):
    """Guard calls are records: read-only here, and the text is only what the policy allowed to keep."""

    list_display = ["at", "policy_name", "direction", "allowed", "latency_ms"]
    list_filter = ["allowed", "direction", "policy_name"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ScoreConfig)
class ScoreConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "data_type", "min_value", "max_value"]
    search_fields = ["name"]


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ["created_at", "trace_id", "span_id", "name", "value", "string_value", "source"]
    list_filter = ["source", "name"]
    search_fields = ["trace_id", "span_id"]
    raw_id_fields = ["config", "evaluator", "queue", "author", "prompt_version"]
    show_full_result_count = False


@admin.register(Evaluator)
class EvaluatorAdmin(admin.ModelAdmin):
    list_display = ["name", "sampling_rate", "enabled", "spans_seen", "spans_scored", "last_run_at"]
    readonly_fields = ["cursor", "late_windows"]


@admin.register(AnnotationQueue)
class AnnotationQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "last_filled_at", "last_fill_added", "created_at"]
    readonly_fields = ["fill_cursor", "last_filled_at", "last_fill_added"]


@admin.register(AnnotationItem)
class AnnotationItemAdmin(admin.ModelAdmin):
    list_display = ["queue", "trace_id", "status", "claimed_by", "reviewed_by", "reviewed_at"]
    list_filter = ["status", "queue"]
    raw_id_fields = ["claimed_by", "reviewed_by", "added_by"]


@admin.register(LLMMonitor)
class LLMMonitorAdmin(admin.ModelAdmin):
    list_display = ["name", "metric", "service", "model", "threshold", "window_minutes", "state", "last_value"]
    list_filter = ["metric", "state", "enabled"]
    raw_id_fields = ["prompt_version", "guard_policy", "created_by"]


@admin.register(LLMMonitorReading)
class LLMMonitorReadingAdmin(admin.ModelAdmin):
    list_display = ["monitor", "at", "value", "samples", "breached"]
    list_filter = ["monitor"]
    show_full_result_count = False
