"""Evaluation runs: start, score imported outputs, cancel, re-score; their results."""

from __future__ import annotations

import json

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.errors import as_field
from opsportal.parsers import FormParser, JSONParser, MultiPartParser

from ... import services
from ...models import Dataset, EvalRun, LLMModel, PromptVersion, RunColumn, RunResult
from ..filters import EvalRunFilter, RunResultFilter
from ..serializers import (
    BadFileSerializer,
    EvalRunSerializer,
    RescoreSerializer,
    RunCreateSerializer,
    RunResultSerializer,
    ScoreRunCreateSerializer,
    file_error_response,
)


def prompt_version_for(ref: object, field: str) -> PromptVersion:
    """A prompt version from "name@3", "name@label", {"prompt", "version"} or {"prompt", "label"}."""
    if isinstance(ref, str):
        name, sep, which = ref.rpartition("@")
        if not sep or not name or not which:
            raise serializers.ValidationError({field: [f'{ref!r}: use "name@version" or "name@label"']})
        ref = {"prompt": name, "version": int(which)} if which.isdigit() else {"prompt": name, "label": which}
    if not isinstance(ref, dict) or not isinstance(ref.get("prompt"), str):
        raise serializers.ValidationError({field: ['an object {"prompt": name, "version": n} or {"prompt", "label"}']})
    with as_field(field):
        if ref.get("version") is not None:
            return services.get_version(prompt=services.get_prompt(name=ref["prompt"]), number=ref["version"])
        return services.resolve(name=ref["prompt"], label=ref.get("label") or services.PRODUCTION)


def models_for(names: list[str] | None, versions: list[PromptVersion]) -> list[LLMModel]:
    """The models named, or else the one model the prompt versions name themselves."""
    if names:
        return [_model(name, f"models[{i}]") for i, name in enumerate(names)]
    defaults = {version.model for version in versions}
    if len(defaults) != 1 or not next(iter(defaults)):
        raise serializers.ValidationError({"models": ["give the models to run (the versions name no single model)"]})
    return [_model(defaults.pop(), "models")]


def _model(reference: str, field: str) -> LLMModel:
    with as_field(field):
        return services.resolve_model(reference=reference)


def _dataset(reference: object) -> Dataset:
    with as_field("dataset"):
        return services.get_dataset(reference=reference)


def _run_queryset():
    return EvalRun.objects.select_related("dataset", "judge_model__provider", "created_by").prefetch_related(
        Prefetch(
            "columns",
            queryset=RunColumn.objects.select_related("prompt_version__prompt", "model__provider").order_by("position"),
        )
    )


class EvalRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Evaluation runs. POST starts one (dataset x prompt versions x models, scored by `scorers`); GET reports
    status, progress, errors, pass rate, cost and a summary per column. `score` scores imported outputs;
    `cancel` stops a run; `rescore` scores stored outputs again. Results are under `runs/<id>/results/`."""

    serializer_class = EvalRunSerializer
    filterset_class = EvalRunFilter
    ordering_fields = ["created_at", "finished_at", "status"]

    def get_queryset(self):
        return _run_queryset()

    def _created(self, run: EvalRun) -> Response:
        body = EvalRunSerializer(self.get_queryset().get(pk=run.pk)).data
        location = self.reverse_action("detail", args=[run.pk])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    @extend_schema(request=RunCreateSerializer, responses={201: EvalRunSerializer})
    def create(self, request: Request) -> Response:
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dataset = _dataset(data["dataset"])
        versions = [prompt_version_for(ref, f"prompt_versions[{i}]") for i, ref in enumerate(data["prompt_versions"])]
        models = models_for(data.get("models"), versions)
        judge = _model(data["judge_model"], "judge_model") if data.get("judge_model") else None
        run = services.create_run(
            dataset=dataset,
            prompt_versions=versions,
            models=models,
            scorers=data["scorers"],
            actor=request.user,
            name=data["name"],
            judge_model=judge,
            concurrency=data.get("concurrency"),
        )
        return self._created(run)

    @extend_schema(
        request={"multipart/form-data": ScoreRunCreateSerializer},
        responses={201: EvalRunSerializer, 400: file_error_response(BadFileSerializer, "ScoreBadRequest")},
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def score(self, request: Request) -> Response:
        """Score outputs produced elsewhere: a CSV/JSONL `file` with `output` per row, and `scorers` (JSON).
        `prompt_version` names the version that produced them, so the run counts for its release gate."""
        serializer = ScoreRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        scorers = data["scorers"]
        if isinstance(scorers, str):
            try:
                scorers = json.loads(scorers)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError({"scorers": [f"not valid JSON: {exc.msg}"]}) from None
        dataset = _dataset(data["dataset"]) if data["dataset"] else None
        judge = _model(data["judge_model"], "judge_model") if data["judge_model"] else None
        version = prompt_version_for(data["prompt_version"], "prompt_version") if data["prompt_version"] else None
        upload = data["file"]
        run, result = services.create_score_run(
            data=upload.read(),
            filename=upload.name or "",
            scorers=scorers,
            actor=request.user,
            name=data["name"],
            dataset=dataset,
            judge_model=judge,
            prompt_version=version,
        )
        if run is None:
            first = result.errors[0]
            return Response(
                {
                    "detail": f"Row {first[0]}: {first[1]}; nothing was stored.",
                    "code": "invalid_file",
                    "errors": [{"row": number, "message": message} for number, message in result.errors],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        return self._created(run)

    @extend_schema(request=None, responses=EvalRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Stop a run: a queued run stops at once, a running one after the requests in flight."""
        run = services.cancel_run(run=self.get_object(), actor=request.user)
        return Response(EvalRunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=RescoreSerializer, responses=EvalRunSerializer)
    @action(detail=True, methods=["post"])
    def rescore(self, request: Request, pk: str | None = None) -> Response:
        """Score a finished run's stored outputs again, with new `scorers` or its own (no model calls)."""
        serializer = RescoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = self.get_object()
        services.rescore_run(run=run, actor=request.user, scorers=data.get("scorers"))
        return Response(EvalRunSerializer(self.get_queryset().get(pk=run.pk)).data)


@extend_schema(parameters=[OpenApiParameter("run_pk", int, OpenApiParameter.PATH, description="The run's id.")])
class RunResultViewSet(viewsets.ReadOnlyModelViewSet):
    """A run's results, one per item and column. Filter with `passed`, `column`, `error`, `item`."""

    serializer_class = RunResultSerializer
    filterset_class = RunResultFilter
    ordering_fields = ["id", "score", "latency_ms", "cost"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RunResult.objects.none()
        run = EvalRun.objects.filter(pk=self.kwargs["run_pk"]).only("id").first()
        if run is None:
            raise exceptions.NotFound(f"No run #{self.kwargs['run_pk']}.")
        return (
            RunResult.objects.filter(run=run)
            .select_related("item", "column")
            .order_by("item__position", "column__position")
        )
