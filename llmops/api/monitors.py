"""LLM monitors API: `monitors/` lists, creates, changes and deletes monitors (operators write), each with its
current value and state; writes go through `llmops.services.monitors` (validated, audited)."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from ..models import GuardPolicy, LLMMonitor, PromptVersion
from ..services import monitors as monitor_services


class LLMMonitorSerializer(serializers.ModelSerializer):
    prompt_version = serializers.PrimaryKeyRelatedField(queryset=PromptVersion.objects.all(), required=False,
                                                        allow_null=True)  # fmt: skip
    guard_policy = serializers.PrimaryKeyRelatedField(queryset=GuardPolicy.objects.all(), required=False,
                                                      allow_null=True)  # fmt: skip

    class Meta:
        model = LLMMonitor
        fields = ["id", "name", "description", "metric", "service", "model", "prompt_version", "guard_policy",
                  "score_name", "window_minutes", "comparison", "threshold", "min_samples", "severity", "enabled",
                  "state", "last_value", "last_samples", "last_evaluated_at", "state_since", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = ["id", "state", "last_value", "last_samples", "last_evaluated_at", "state_since",
                            "created_at", "updated_at"]  # fmt: skip
        # The service checks the rule as a whole (unique name, scope fields that apply) and names the field.
        validators: list = []
        extra_kwargs = {"name": {"validators": []}}

    def create(self, validated_data: dict) -> LLMMonitor:
        return monitor_services.create_monitor(actor=self.context["request"].user, **validated_data)

    def update(self, instance: LLMMonitor, validated_data: dict) -> LLMMonitor:
        return monitor_services.update_monitor(monitor=instance, actor=self.context["request"].user,
                                               **validated_data)  # fmt: skip


class LLMMonitorViewSet(viewsets.ModelViewSet):
    """LLM monitors with their current value and state. Operators create, change and delete them."""

    serializer_class = LLMMonitorSerializer
    queryset = LLMMonitor.objects.all()
    filterset_fields = ["metric", "state", "service", "model", "enabled"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_destroy(self, instance: LLMMonitor) -> None:
        monitor_services.delete_monitor(monitor=instance, actor=self.request.user)
