"""Review API: `score-configs/` (what a named score may hold) and `queues/` (annotation queues and their reviewers).

- `score-configs/<name>/`: list, create, read, change (PATCH) and delete; operators write, viewers read.
- `queues/`: list, create, read, change (PATCH) and delete queues (operators), each with its score configs
  (by name), its filter (trace search keys; a queue with one keeps filling every minute), its counts and
  when it last filled.
- Reviewers (any role): `GET|POST queues/<id>/items/` lists the items or adds traces by hand
  (`{"trace_ids": [...]}`); `POST queues/<id>/claim/` claims the next item for the caller (204 when
  nothing is left); `POST queues/<id>/items/<item>/review/` `{"values": {config name: value}, "comment"}`
  stores the scores (each checked against its config: a bad one is a 400 naming it, and nothing is
  kept); `POST queues/<id>/items/<item>/skip/` passes on it.

Every write goes through `llmops.services.review` / `llmops.services.scores`.
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role
from opsportal.api import ErrorSerializer

from ..models import AnnotationItem, AnnotationQueue, Score, ScoreConfig
from ..online.cases import last_text
from ..services import review as review_services
from ..services import scores as score_services
from .feedback import ScoreSerializer

ERRORS = {400: OpenApiResponse(ErrorSerializer), 403: OpenApiResponse(ErrorSerializer),
          404: OpenApiResponse(ErrorSerializer)}  # fmt: skip


# --- Score configs ---------------------------------------------------------------------------------------------


class ScoreConfigSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=100, validators=[])
    categories = serializers.JSONField(required=False, default=list,
                                       help_text="Categorical: the values allowed, in order.")  # fmt: skip

    class Meta:
        model = ScoreConfig
        fields = ["id", "name", "description", "data_type", "min_value", "max_value", "categories", "created_at"]
        read_only_fields = ["id", "created_at"]

    def create(self, validated_data: dict) -> ScoreConfig:
        return score_services.create_score_config(actor=self.context["request"].user, **validated_data)

    def update(self, instance: ScoreConfig, validated_data: dict) -> ScoreConfig:
        return score_services.update_score_config(config=instance, actor=self.context["request"].user,
                                                  **validated_data)  # fmt: skip


class ScoreConfigViewSet(viewsets.ModelViewSet):
    """Score configs by name: numeric (bounds), categorical (categories) or boolean. Operators write them; the
    name and data type change only while no score was recorded under the config."""

    serializer_class = ScoreConfigSerializer
    queryset = ScoreConfig.objects.all()
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_destroy(self, instance: ScoreConfig) -> None:
        score_services.delete_score_config(config=instance, actor=self.request.user)


# --- Queues ----------------------------------------------------------------------------------------------------


class QueueCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    done = serializers.IntegerField()
    skipped = serializers.IntegerField()


class QueueSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=100, validators=[])
    score_configs = serializers.SlugRelatedField(
        many=True, slug_field="name", queryset=ScoreConfig.objects.all(),
        help_text="The names of the score configs reviewers give.",
    )  # fmt: skip
    filter = serializers.JSONField(
        required=False, default=dict,
        help_text='Trace search keys, e.g. {"service": "support-bot", "status": "error"}; with a filter the queue '
        "is filled with the newest matching traces and then every minute with those that arrive.",
    )  # fmt: skip
    counts = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = AnnotationQueue
        fields = ["id", "name", "description", "score_configs", "filter", "counts", "last_filled_at",
                  "last_fill_added", "created_by", "created_at"]  # fmt: skip
        read_only_fields = ["id", "last_filled_at", "last_fill_added", "created_at"]

    @extend_schema_field(QueueCountsSerializer)
    def get_counts(self, queue: AnnotationQueue) -> dict[str, int]:
        if hasattr(queue, "pending_items"):
            return {"pending": queue.pending_items, "done": queue.done_items, "skipped": queue.skipped_items}
        return review_services.queue_counts(queue)

    def create(self, validated_data: dict) -> AnnotationQueue:
        return review_services.create_queue(actor=self.context["request"].user, **validated_data)

    def update(self, instance: AnnotationQueue, validated_data: dict) -> AnnotationQueue:
        return review_services.update_queue(queue=instance, actor=self.context["request"].user, **validated_data)


class ItemSerializer(serializers.ModelSerializer):
    claimed_by = serializers.CharField(source="claimed_by.username", default=None, read_only=True)
    reviewed_by = serializers.CharField(source="reviewed_by.username", default=None, read_only=True)
    added_by = serializers.CharField(source="added_by.username", default=None, read_only=True)

    class Meta:
        model = AnnotationItem
        fields = ["id", "queue", "trace_id", "span_id", "status", "claimed_by", "claimed_until", "reviewed_by",
                  "reviewed_at", "added_by", "created_at"]  # fmt: skip
        read_only_fields = fields


class ClaimedItemSerializer(ItemSerializer):
    question = serializers.SerializerMethodField(help_text="The generation's last user message (null: not stored).")
    answer = serializers.SerializerMethodField(help_text="The generation's answer (null: the trace is not stored).")
    model = serializers.SerializerMethodField()

    class Meta(ItemSerializer.Meta):
        fields = [*ItemSerializer.Meta.fields, "question", "answer", "model"]
        read_only_fields = fields

    def _generation(self, item: AnnotationItem):
        if not hasattr(item, "_generation"):
            item._generation = review_services.generation_of(item.trace_id, item.span_id)
        return item._generation

    def get_question(self, item: AnnotationItem) -> str | None:
        span = self._generation(item)
        return None if span is None else last_text(span.input, ("user", "human"))

    def get_answer(self, item: AnnotationItem) -> str | None:
        span = self._generation(item)
        return None if span is None else last_text(span.output, ("assistant", "model", "ai"))

    def get_model(self, item: AnnotationItem) -> str | None:
        span = self._generation(item)
        return None if span is None else span.model


class AddTracesSerializer(serializers.Serializer):
    trace_ids = serializers.ListField(
        child=serializers.CharField(), min_length=1, max_length=review_services.MAX_TRACES_ADDED,
        help_text="Trace ids (32 hex digits); those already in the queue stay.",
    )  # fmt: skip


class AddedSerializer(serializers.Serializer):
    added = serializers.IntegerField(help_text="How many traces were new to the queue.")
    counts = QueueCountsSerializer()


class ReviewSerializer(serializers.Serializer):
    values = serializers.DictField(child=serializers.JSONField(allow_null=True),
                                   help_text="Score config name -> value (numbers, true/false, a category); "
                                   "empty values are left out.")  # fmt: skip
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class ReviewedSerializer(serializers.Serializer):
    item = ItemSerializer()
    scores = ScoreSerializer(many=True)


ITEM_STATUS = OpenApiParameter("status", str, enum=AnnotationItem.Status.values, description="Only items in it.")


class QueueViewSet(viewsets.ModelViewSet):
    """Annotation queues: operators make, change and delete them; every role reviews (claim, review, skip) and
    adds traces by hand."""

    serializer_class = QueueSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_roles = {"items": Role.VIEWER, "item": Role.VIEWER, "claim": Role.VIEWER, "review": Role.VIEWER,
                    "skip": Role.VIEWER}  # fmt: skip

    def get_queryset(self) -> QuerySet[AnnotationQueue]:
        queues = AnnotationQueue.objects.select_related("created_by").prefetch_related("score_configs")
        return queues.order_by("name").annotate(
            pending_items=Count("items", filter=Q(items__status=AnnotationItem.Status.PENDING)),
            done_items=Count("items", filter=Q(items__status=AnnotationItem.Status.DONE)),
            skipped_items=Count("items", filter=Q(items__status=AnnotationItem.Status.SKIPPED)),
        )

    def perform_destroy(self, instance: AnnotationQueue) -> None:
        review_services.delete_queue(queue=instance, actor=self.request.user)

    def _queue(self) -> AnnotationQueue:
        return get_object_or_404(AnnotationQueue, pk=self.kwargs["pk"])

    def _item(self, item_id: str) -> AnnotationItem:
        return get_object_or_404(AnnotationItem.objects.select_related("queue"), pk=item_id, queue_id=self.kwargs["pk"])

    @extend_schema(methods=["GET"], parameters=[ITEM_STATUS], responses={200: ItemSerializer(many=True), **ERRORS})
    @extend_schema(methods=["POST"], request=AddTracesSerializer, responses={201: AddedSerializer, **ERRORS})
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def items(self, request: Request, pk: str | None = None) -> Response:
        """GET: the queue's items, oldest first, paged (`?status=pending|done|skipped`). POST `{"trace_ids"}`:
        add traces by hand."""
        queue = self._queue()
        if request.method == "POST":
            serializer = AddTracesSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            added = review_services.add_traces(queue=queue, trace_ids=serializer.validated_data["trace_ids"],
                                               actor=request.user)  # fmt: skip
            body = {"added": added, "counts": review_services.queue_counts(queue)}
            return Response(AddedSerializer(body).data, status=status.HTTP_201_CREATED)
        items = queue.items.select_related("claimed_by", "reviewed_by", "added_by").order_by("id")
        wanted = request.query_params.get("status", "")
        if wanted:
            if wanted not in AnnotationItem.Status.values:
                raise serializers.ValidationError({"status": [f"one of {', '.join(AnnotationItem.Status.values)}"]})
            items = items.filter(status=wanted)
        page = self.paginate_queryset(items)
        return self.get_paginated_response(ItemSerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: ClaimedItemSerializer,
                                            204: OpenApiResponse(description="Nothing left to review"),
                                            **ERRORS})  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[])
    def claim(self, request: Request, pk: str | None = None) -> Response:
        """The caller's next item, claimed for them for CLAIM_MINUTES (their current claim if they hold one), with
        the generation's question and answer; 204 when nothing is left."""
        item = review_services.claim_next(queue=self._queue(), actor=request.user)
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ClaimedItemSerializer(item).data)

    @extend_schema(request=None, responses={200: ClaimedItemSerializer, **ERRORS})
    @action(detail=True, methods=["get"], url_path=r"items/(?P<item_id>\d+)", filter_backends=[])
    def item(self, request: Request, pk: str | None = None, item_id: str = "") -> Response:
        """One item, with its generation's question and answer."""
        return Response(ClaimedItemSerializer(self._item(item_id)).data)

    @extend_schema(request=ReviewSerializer, responses={201: ReviewedSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path=r"items/(?P<item_id>\d+)/review", filter_backends=[])
    def review(self, request: Request, pk: str | None = None, item_id: str = "") -> Response:
        """Store the caller's scores and comment: the item is done. A value its config refuses is a 400 naming the
        config (`values.<name>`), and nothing is stored."""
        serializer = ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = self._item(item_id)
        scores = review_services.submit_review(item=item, actor=request.user, **serializer.validated_data)
        item.refresh_from_db()
        rows = Score.objects.filter(pk__in=[s.pk for s in scores]).select_related("author", "evaluator", "queue")
        body = {"item": item, "scores": list(rows.order_by("name"))}
        return Response(ReviewedSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ItemSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path=r"items/(?P<item_id>\d+)/skip", filter_backends=[])
    def skip(self, request: Request, pk: str | None = None, item_id: str = "") -> Response:
        """Pass on the item: it is skipped and not offered again."""
        item = review_services.skip_item(item=self._item(item_id), actor=request.user)
        return Response(ItemSerializer(item).data)
