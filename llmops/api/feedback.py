"""Feedback and scores API: `POST feedback/` for applications, `scores/` to read the scores of traces,
`evaluators/` for online evaluation (score configs and queues: `llmops.api.review`).

`POST /api/v1/llmops/feedback/ {"trace_id" or "span_id", "score" or "value", "comment", "name", "user_id"}`
answers 201 with the stored score. `value` takes thumbs ("up"/"down"), true/false or a category; `score` a
number. Any role's token may send feedback (applications hold viewer tokens). A trace not stored yet is
accepted (`"trace_known": false`): its spans may still be on their way, and the score is joined by id.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.accounts.roles import Role
from opsportal.api import ErrorSerializer
from opsportal.portal.forms import StyledForm

from ..models import Evaluator, LLMModel, Score
from ..services import scores as score_services


class FeedbackRequestSerializer(serializers.Serializer):
    trace_id = serializers.CharField(required=False, allow_blank=True, default="", help_text="32 hex digits.")
    span_id = serializers.CharField(required=False, allow_blank=True, default="",
                                    help_text="16 hex digits: feedback on one generation.")  # fmt: skip
    score = serializers.JSONField(required=False, default=None, help_text="A number (checked against the config).")
    value = serializers.JSONField(required=False, default=None,
                                  help_text='"up"/"down", true/false, or a category.')  # fmt: skip
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    name = serializers.CharField(required=False, allow_blank=True, default="",
                                 help_text=f"The score's name; default {score_services.FEEDBACK_NAME!r}.")  # fmt: skip
    user_id = serializers.CharField(required=False, allow_blank=True, default="", help_text="The end user's id.")


class ScoreSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True)
    evaluator = serializers.CharField(source="evaluator.name", default=None, read_only=True)
    queue = serializers.CharField(source="queue.name", default=None, read_only=True)

    class Meta:
        model = Score
        fields = ["id", "trace_id", "span_id", "name", "data_type", "value", "string_value", "source", "passed",
                  "comment", "author", "end_user", "evaluator", "queue", "model", "prompt_version",
                  "created_at"]  # fmt: skip


class FeedbackResponseSerializer(ScoreSerializer):
    trace_known = serializers.BooleanField(help_text="False while the trace is not stored (kept, joined by id).")

    class Meta(ScoreSerializer.Meta):
        fields = [*ScoreSerializer.Meta.fields, "trace_known"]


class FeedbackView(APIView):
    """Feedback from an application's users on a trace or a generation: a score or thumbs, with a comment."""

    required_role = Role.VIEWER

    @extend_schema(request=FeedbackRequestSerializer,
                   responses={201: FeedbackResponseSerializer, 400: OpenApiResponse(ErrorSerializer)})  # fmt: skip
    def post(self, request: Request) -> Response:
        serializer = FeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        score = score_services.submit_feedback(
            actor=request.user, trace_id=data["trace_id"], span_id=data["span_id"], score=data["score"],
            value=data["value"], comment=data["comment"], name=data["name"], end_user=data["user_id"],
        )  # fmt: skip
        body = dict(ScoreSerializer(score).data)
        body["trace_known"] = score_services.trace_known(score.trace_id)
        return Response(body, status=status.HTTP_201_CREATED)


class ScoreFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    evaluator = django_filters.CharFilter(field_name="evaluator__name")

    class Meta:
        model = Score
        fields = ["trace_id", "span_id", "name", "source", "model", "evaluator", "since", "until"]
        form = StyledForm


class ScoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Scores of traces and spans, newest first (filter by trace_id to read one trace's)."""

    serializer_class = ScoreSerializer
    filterset_class = ScoreFilter
    queryset = Score.objects.select_related("author", "evaluator", "queue")


class EvaluatorSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=100, validators=[])
    scorers = serializers.JSONField(help_text='[{"type": "contains", "config": {...}}, {"type": "llm-rubric", ...}]')
    filter = serializers.JSONField(required=False, default=dict,
                                   help_text='{"service", "model", "prompt", "prompt_version", "name", '
                                   '"attributes": {...}}')  # fmt: skip
    judge_model = serializers.PrimaryKeyRelatedField(queryset=LLMModel.objects.all(), required=False,
                                                     allow_null=True)  # fmt: skip

    class Meta:
        model = Evaluator
        fields = ["id", "name", "description", "scorers", "judge_model", "filter", "sampling_rate", "enabled",
                  "spans_seen", "spans_scored", "last_run_at", "created_at"]  # fmt: skip
        read_only_fields = ["id", "spans_seen", "spans_scored", "last_run_at", "created_at"]

    def create(self, validated_data: dict) -> Evaluator:
        return score_services.create_evaluator(actor=self.context["request"].user, **validated_data)

    def update(self, instance: Evaluator, validated_data: dict) -> Evaluator:
        return score_services.update_evaluator(evaluator=instance, actor=self.context["request"].user,
                                               **validated_data)  # fmt: skip


class EvaluatorViewSet(viewsets.ModelViewSet):
    """Online evaluators: scorers run on new production generations matching a filter, a sample of them."""

    serializer_class = EvaluatorSerializer
    queryset = Evaluator.objects.select_related("judge_model")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_destroy(self, instance: Evaluator) -> None:
        score_services.delete_evaluator(evaluator=instance, actor=self.request.user)
