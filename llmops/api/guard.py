"""Guardrails API: `POST guard/` checks a text, `guard-policies/` manages policies (by name), `guard-calls/` lists
the recorded calls.

`POST /api/v1/llmops/guard/ {"text", "direction": "input" | "output", "policy"}` answers
`{"allowed", "violations": [{"check", "reason", "score"}], "redacted_text"}`; without `policy` the default
policy applies. Applications call it with any role's token (viewer and up): checking a text changes
nothing but the record of the call. Policies are written by operators.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.accounts.roles import Role
from opsportal.api import ErrorSerializer
from opsportal.portal.forms import StyledForm

from .. import guardrails
from ..models import GuardCall, GuardPolicy, LLMModel
from ..services import guardrails as guard_services
from ..services.base import NAME_RE


class GuardRequestSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="The text to check.")
    direction = serializers.ChoiceField(
        choices=guardrails.DIRECTIONS, help_text="input: going to the model; output: coming from it."
    )
    policy = serializers.CharField(required=False, allow_blank=True, default="",
                                   help_text="The policy's name; omitted: the default policy.")  # fmt: skip
    trace_id = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="32 hex digits: also record the call as a span of it."
    )
    span_id = serializers.CharField(required=False, allow_blank=True, default="",
                                    help_text="16 hex digits: the span the guard call belongs under.")  # fmt: skip


class ViolationSerializer(serializers.Serializer):
    check = serializers.CharField(help_text="The check's name in the policy (its type unless named).")
    reason = serializers.CharField(help_text="Why, without repeating the offending values.")
    score = serializers.FloatField(help_text="Confidence 0..1.")


class GuardResponseSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    violations = ViolationSerializer(many=True)
    redacted_text = serializers.CharField(help_text="The text with personal data, secrets and hidden characters "
                                          "masked (the text itself when nothing was masked).")  # fmt: skip


class GuardView(APIView):
    """Check a text against a guard policy (or the default); every call is recorded."""

    required_role = Role.VIEWER

    @extend_schema(
        request=GuardRequestSerializer,
        responses={200: GuardResponseSerializer, 400: OpenApiResponse(ErrorSerializer),
                   404: OpenApiResponse(ErrorSerializer, description="No policy of that name.")},
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        serializer = GuardRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = guard_services.guard(
            text=data["text"], direction=data["direction"], actor=request.user, policy_name=data["policy"] or None,
            trace_id=data["trace_id"], span_id=data["span_id"],
        )  # fmt: skip
        return Response(result.as_dict())


class GuardPolicySerializer(serializers.ModelSerializer):
    name = serializers.RegexField(NAME_RE, max_length=100, validators=[])
    checks = serializers.JSONField(
        help_text='[{"check": "pii" | "injection" | "toxicity" | "secrets" | "unicode" | "banned" | "llm-rubric", '
        '"name", "threshold", "directions": ["input", "output"], "config": {...}}]'
    )
    judge_model = serializers.PrimaryKeyRelatedField(
        queryset=LLMModel.objects.all(), required=False, allow_null=True,
        help_text="The model id (see /api/v1/llmops/models/) grading llm-rubric checks.",
    )  # fmt: skip

    class Meta:
        model = GuardPolicy
        fields = ["id", "name", "description", "direction", "action", "checks", "record_text", "is_default",
                  "judge_model", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]
        # The service keeps one default (it takes the mark from the previous one) and unique names.
        validators: list = []
        extra_kwargs = {"is_default": {"validators": []}}

    def create(self, validated_data: dict) -> GuardPolicy:
        return guard_services.create_policy(actor=self.context["request"].user, **validated_data)

    def update(self, instance: GuardPolicy, validated_data: dict) -> GuardPolicy:
        return guard_services.update_policy(policy=instance, actor=self.context["request"].user, **validated_data)


class GuardPolicyViewSet(viewsets.ModelViewSet):
    """Guard policies by name. Operators create, change and delete them; changes are audited."""

    serializer_class = GuardPolicySerializer
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    queryset = GuardPolicy.objects.select_related("judge_model")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_destroy(self, instance: GuardPolicy) -> None:
        guard_services.delete_policy(policy=instance, actor=self.request.user)


class GuardCallFilter(django_filters.FilterSet):
    policy = django_filters.CharFilter(field_name="policy_name")
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = GuardCall
        fields = ["policy", "direction", "allowed", "trace_id", "since", "until"]
        form = StyledForm


class GuardCallSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy_name")

    class Meta:
        model = GuardCall
        fields = ["id", "at", "policy", "direction", "allowed", "redacted", "violations", "latency_ms",
                  "text_length", "text", "trace_id", "span_id"]  # fmt: skip


class GuardCallViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Recorded guard calls, newest first. `text` is what the policy keeps: nothing, the redacted or the raw text."""

    serializer_class = GuardCallSerializer
    filterset_class = GuardCallFilter
    queryset = GuardCall.objects.all()
    ordering_fields = ["at", "latency_ms"]
