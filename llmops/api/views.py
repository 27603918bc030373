"""LLMOps REST API: providers, models and prices; prompts with versions, labels and the release gate;
datasets with items, import and export; evaluation runs with their results.

`GET /api/v1/llmops/prompts/<name>/?label=production` is what applications call at run time: the
messages, model and parameters of the version the label points at.
"""

from __future__ import annotations

import asyncio
import difflib
import json

from django.db.models import Count, Prefetch
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role, has_role

from .. import engine, importers, services
from ..models import (
    Dataset,
    DatasetItem,
    EvalRun,
    LabelMove,
    LLMModel,
    PriceEntry,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
    RunColumn,
    RunResult,
)
from .filters import DatasetItemFilter, EvalRunFilter, LLMModelFilter, PromptFilter, RunResultFilter
from .serializers import (
    DatasetItemSerializer,
    DatasetSerializer,
    EvalRunSerializer,
    GateCheckSerializer,
    ImportResultSerializer,
    ImportSerializer,
    LabelMoveSerializer,
    LLMModelSerializer,
    ModelPricesSerializer,
    MoveLabelSerializer,
    PriceEntrySerializer,
    PromptCreateSerializer,
    PromptLabelSerializer,
    PromptSerializer,
    PromptUpdateSerializer,
    PromptVersionCreateSerializer,
    PromptVersionSerializer,
    ProviderSerializer,
    RescoreSerializer,
    ResolvedPromptSerializer,
    RunCreateSerializer,
    RunResultSerializer,
    ScoreRunCreateSerializer,
    TestConnectionResultSerializer,
    TestConnectionSerializer,
    VersionDiffSerializer,
)

# Prompt names may contain "/": the nested routes are registered before the prompt's own (see urls.py).
PROMPT_NAME = r"[^/]+(?:/[^/]+)*"
PREVIEW_ROWS = 20


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _message(exc: services.LLMOpsError) -> str:
    """The message without its leading "field: ", which the error format adds back."""
    prefix = f"{exc.field}: "
    return exc.message[len(prefix) :] if exc.field and exc.message.startswith(prefix) else exc.message


def call(service, **kwargs):
    """Run a service, turning its errors into the API's 400 (naming the field), 403, 404 and 409."""
    try:
        return service(**kwargs)
    except services.NotFound as exc:
        raise exceptions.NotFound(exc.message) from None
    except services.GateRefused as exc:
        if exc.field == "override":
            raise exceptions.PermissionDenied(exc.message) from None
        raise Conflict(detail=exc.message, code="gate_refused") from None
    except services.LLMOpsError as exc:
        raise serializers.ValidationError({exc.field: [_message(exc)]} if exc.field else exc.message) from None
    except ValueError as exc:  # a scorer that can't be used, for example
        raise serializers.ValidationError(str(exc)) from None


def reference(service, field: str, **kwargs):
    """Look up something named in a request body: a miss is that field's 400, not a 404 of the URL."""
    try:
        return service(**kwargs)
    except services.LLMOpsError as exc:
        raise serializers.ValidationError({field: [_message(exc)]}) from None


def validated(serializer_class: type[serializers.Serializer], data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _model_ref(model: LLMModel) -> str:
    return f"{model.provider.name}/{model.name}"


# --- Providers, models, prices --------------------------------------------------------------------------------------


class ProviderViewSet(viewsets.ModelViewSet):
    """OpenAI-compatible endpoints. The API key is write-only (stored encrypted; `has_api_key` says whether one is
    set). Admins write; `test-connection` makes one small call."""

    queryset = Provider.objects.prefetch_related("models")
    serializer_class = ProviderSerializer
    write_role = Role.ADMIN
    filterset_fields = ["enabled"]
    ordering_fields = ["name", "created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _fresh(self, provider: Provider) -> dict:
        return ProviderSerializer(self.get_queryset().get(pk=provider.pk)).data

    def create(self, request: Request) -> Response:
        data = dict(validated(ProviderSerializer, request.data))
        data.pop("enabled", None)
        provider = call(services.create_provider, actor=request.user, **data)
        return Response(self._fresh(provider), status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = dict(validated(ProviderSerializer, request.data, partial=True))
        provider = call(services.update_provider, provider=self.get_object(), actor=request.user, **data)
        return Response(self._fresh(provider))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_provider(provider=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TestConnectionSerializer, responses=TestConnectionResultSerializer)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request: Request, pk: str | None = None) -> Response:
        """Ask `model` to say OK (one call, no retries): `ok` with the answer, or the exact error."""
        data = validated(TestConnectionSerializer, request.data)
        ok, text = asyncio.run(engine.test_connection(self.get_object(), data["model"]))
        return Response({"ok": True, "answer": text} if ok else {"ok": False, "error": text})


class LLMModelViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Models offered by providers, with prices in USD per 1M tokens (defaulting to the price table). Admins write."""

    queryset = LLMModel.objects.select_related("provider")
    serializer_class = LLMModelSerializer
    filterset_class = LLMModelFilter
    write_role = Role.ADMIN
    ordering_fields = ["name", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request: Request) -> Response:
        data = validated(LLMModelSerializer, request.data)
        model = call(
            services.add_model,
            provider=data["provider"],
            name=data["name"],
            actor=request.user,
            input_per_million=data.get("input_per_million"),
            output_per_million=data.get("output_per_million"),
        )
        return Response(LLMModelSerializer(model).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ModelPricesSerializer, responses=LLMModelSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change the prices (the name and provider stay)."""
        data = validated(ModelPricesSerializer, request.data)
        model = self.get_object()
        model = call(
            services.update_model_prices,
            model=model,
            actor=request.user,
            input_per_million=data.get("input_per_million", model.input_per_million),
            output_per_million=data.get("output_per_million", model.output_per_million),
        )
        return Response(LLMModelSerializer(model).data)


class PriceEntryViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The price table: USD per 1M tokens by model name (or a `prefix*`), used for new models. POST adds or
    replaces the entry of that name. Admins write."""

    queryset = PriceEntry.objects.all()
    serializer_class = PriceEntrySerializer
    write_role = Role.ADMIN
    ordering_fields = ["model_name", "updated_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    @extend_schema(responses={201: PriceEntrySerializer, 200: PriceEntrySerializer})
    def create(self, request: Request) -> Response:
        data = validated(PriceEntrySerializer, request.data)
        existed = PriceEntry.objects.filter(model_name=data["model_name"].strip()).exists()
        entry = call(services.set_price, actor=request.user, **data)
        return Response(PriceEntrySerializer(entry).data, status=status.HTTP_200_OK if existed else 201)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = validated(PriceEntrySerializer, request.data, partial=True)
        entry = self.get_object()
        entry = call(
            services.set_price,
            actor=request.user,
            model_name=entry.model_name,
            input_per_million=data.get("input_per_million", entry.input_per_million),
            output_per_million=data.get("output_per_million", entry.output_per_million),
        )
        return Response(PriceEntrySerializer(entry).data)


# --- Prompts --------------------------------------------------------------------------------------------------------

PROMPT_NAME_PARAM = OpenApiParameter("prompt_name", str, OpenApiParameter.PATH, description="The prompt's name.")


def _prompt_queryset():
    return Prompt.objects.select_related("gate_dataset", "created_by").prefetch_related(
        Prefetch("labels", queryset=PromptLabel.objects.select_related("version").only("name", "prompt_id",
                                                                                      "version__version")),
        Prefetch("versions", queryset=PromptVersion.objects.only("id", "prompt_id", "version")),
    )  # fmt: skip


@extend_schema_view(
    retrieve=extend_schema(
        parameters=[
            OpenApiParameter("label", str, description="The label to resolve; default `production`."),
            OpenApiParameter("version", int, description="A version number instead of a label."),
        ],
        responses=ResolvedPromptSerializer,
    )
)
class PromptViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Prompts, by name. `GET prompts/<name>/?label=production` returns the version an application should use;
    the list and PATCH show the prompt itself (labels, latest version, release gate)."""

    serializer_class = PromptSerializer
    filterset_class = PromptFilter
    lookup_field = "name"
    lookup_value_regex = PROMPT_NAME
    ordering_fields = ["name", "updated_at", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return _prompt_queryset()

    def get_object(self) -> Prompt:
        return call(services.get_prompt, name=self.kwargs["name"])

    def retrieve(self, request: Request, name: str | None = None) -> Response:
        """The version a label points at (default `production`), or `?version=N`: messages, model, parameters."""
        number = request.query_params.get("version")
        if number:
            version = call(services.get_version, prompt=self.get_object(), number=number)
            label = None
        else:
            label = request.query_params.get("label") or services.PRODUCTION
            version = call(services.resolve, name=name, label=label)
        body = {
            "name": version.prompt.name,
            "label": label,
            "version": version.version,
            "messages": version.messages,
            "model": version.model,
            "parameters": version.parameters,
            "variables": version.variables,
            "commit_message": version.commit_message,
            "created_at": version.created_at,
        }
        return Response(ResolvedPromptSerializer(body).data)

    @extend_schema(request=PromptCreateSerializer, responses={201: PromptSerializer})
    def create(self, request: Request) -> Response:
        data = dict(validated(PromptCreateSerializer, request.data))
        if "messages" in data:
            data["messages"] = [dict(message) for message in data["messages"]]
        prompt = call(services.create_prompt, actor=request.user, **data)
        return Response(PromptSerializer(_prompt_queryset().get(pk=prompt.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PromptUpdateSerializer, responses=PromptSerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        """The description and the release gate (`gate_dataset` name and `gate_min_pass_rate`, both or neither)."""
        data = dict(validated(PromptUpdateSerializer, request.data, partial=True))
        if {"gate_dataset", "gate_min_pass_rate"} & set(data) and not has_role(request.user, Role.ADMIN):
            raise exceptions.PermissionDenied("Only admins change a prompt's release gate.")
        if data.get("gate_dataset"):
            data["gate_dataset"] = reference(services.get_dataset, "gate_dataset", reference=data["gate_dataset"])
        elif "gate_dataset" in data:
            data["gate_dataset"] = None
        prompt = call(services.update_prompt, prompt=self.get_object(), actor=request.user, **data)
        return Response(PromptSerializer(_prompt_queryset().get(pk=prompt.pk)).data)


class PromptChildMixin:
    """For viewsets nested under `prompts/<prompt_name>/`."""

    kwargs: dict

    def prompt(self) -> Prompt:
        if not hasattr(self, "_prompt"):
            self._prompt = call(services.get_prompt, name=self.kwargs["prompt_name"])
        return self._prompt


@extend_schema(parameters=[PROMPT_NAME_PARAM])
class PromptVersionViewSet(PromptChildMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """A prompt's immutable versions, newest first. POST creates the next version; `diff` compares two;
    `gate` says whether the version may become `production`."""

    serializer_class = PromptVersionSerializer
    lookup_field = "version"
    lookup_value_regex = "[0-9]+"
    ordering_fields = ["version", "created_at"]
    ordering = ["-version"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return PromptVersion.objects.none()
        return (
            PromptVersion.objects.filter(prompt=self.prompt())
            .select_related("prompt", "author")
            .prefetch_related("labels")
        )

    def get_object(self) -> PromptVersion:
        version = self.get_queryset().filter(version=self.kwargs["version"]).first()
        if version is None:
            raise exceptions.NotFound(f"{self.prompt().name} has no version {self.kwargs['version']}.")
        return version

    @extend_schema(request=PromptVersionCreateSerializer, responses={201: PromptVersionSerializer})
    def create(self, request: Request, prompt_name: str = "") -> Response:
        data = validated(PromptVersionCreateSerializer, request.data)
        version = call(
            services.create_version,
            prompt=self.prompt(),
            actor=request.user,
            messages=[dict(m) for m in data["messages"]],
            model=data["model"],
            parameters=data["parameters"],
            commit_message=data["commit_message"],
        )
        return Response(PromptVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("against", int, description="The older version; default the one before.")],
        responses=VersionDiffSerializer,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, prompt_name: str = "", version: str = "") -> Response:
        """What changed from `against` (default: the previous version) to this version."""
        new = self.get_object()
        against = request.query_params.get("against") or str(new.version - 1)
        if not against.isdigit():
            raise serializers.ValidationError({"against": ["a version number"]})
        old = self.get_queryset().filter(version=int(against)).first()
        if old is None:
            raise exceptions.NotFound(f"{new.prompt.name} has no version {against} to compare with.")
        return Response(version_diff(old, new))

    @extend_schema(responses=GateCheckSerializer)
    @action(detail=True, methods=["get"])
    def gate(self, request: Request, prompt_name: str = "", version: str = "") -> Response:
        """Whether the release gate lets this version become `production`, and why."""
        candidate = self.get_object()
        allowed, reason, run = services.gate_check(self.prompt(), candidate)
        return Response({"allowed": allowed, "reason": reason, "run": run.pk if run else None})


def _message_lines(version: PromptVersion) -> list[str]:
    lines = []
    for message in version.messages:
        content = message["content"].splitlines() or [""]
        lines += [f"{message['role']}: {content[0]}", *content[1:]]
    return lines


def version_diff(old: PromptVersion, new: PromptVersion) -> dict:
    """Messages as a unified diff; model, parameters and variables as [old, new] pairs."""
    text = "\n".join(
        difflib.unified_diff(
            _message_lines(old), _message_lines(new), f"v{old.version}", f"v{new.version}", lineterm=""
        )
    )
    parameters = {
        key: [old.parameters.get(key), new.parameters.get(key)]
        for key in sorted(set(old.parameters) | set(new.parameters))
        if old.parameters.get(key) != new.parameters.get(key)
    }
    model = [old.model, new.model] if old.model != new.model else []
    return {
        "prompt": new.prompt.name,
        "version": new.version,
        "against": old.version,
        "changed": bool(text or parameters or model),
        "messages_diff": text,
        "model": model,
        "parameters": parameters,
        "variables_added": sorted(set(new.variables) - set(old.variables)),
        "variables_removed": sorted(set(old.variables) - set(new.variables)),
    }


@extend_schema(parameters=[PROMPT_NAME_PARAM])
class PromptLabelViewSet(PromptChildMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """A prompt's labels (`production`, `staging` ...). POST moves one to a version: `production` must pass the
    release gate (409 with the gate's reason) unless an admin overrides it with a reason. DELETE removes one."""

    serializer_class = PromptLabelSerializer
    lookup_field = "label"
    lookup_value_regex = "[^/]+"
    ordering_fields = ["name", "updated_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PromptLabel.objects.none()
        return PromptLabel.objects.filter(prompt=self.prompt()).select_related("version")

    def get_object(self) -> PromptLabel:
        row = self.get_queryset().filter(name=self.kwargs["label"]).first()
        if row is None:
            raise exceptions.NotFound(f"{self.prompt().name} has no label {self.kwargs['label']!r}.")
        return row

    @extend_schema(
        request=MoveLabelSerializer,
        responses={
            200: PromptLabelSerializer,
            403: OpenApiResponse(description="Overriding the gate needs the admin role."),
            409: OpenApiResponse(description="The release gate refused: `detail` gives its reason."),
        },
    )
    def create(self, request: Request, prompt_name: str = "") -> Response:
        data = validated(MoveLabelSerializer, request.data)
        prompt = self.prompt()
        version = reference(services.get_version, "version", prompt=prompt, number=data["version"])
        row = call(
            services.move_label,
            prompt=prompt,
            label=data["label"],
            version=version,
            actor=request.user,
            override=data["override"],
            reason=data["reason"],
        )
        return Response(PromptLabelSerializer(row).data)

    def destroy(self, request: Request, prompt_name: str = "", label: str = "") -> Response:
        call(services.delete_label, prompt=self.prompt(), label=label, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[PROMPT_NAME_PARAM])
class LabelMoveViewSet(PromptChildMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Every move of a prompt's labels, newest first, with gate overrides and their reasons."""

    serializer_class = LabelMoveSerializer
    ordering_fields = ["at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LabelMove.objects.none()
        return LabelMove.objects.filter(prompt=self.prompt()).select_related("actor")


# --- Datasets -------------------------------------------------------------------------------------------------------


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()


class JSONLRenderer(CSVRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


EXPORT_FORMATS = {"jsonl": (importers.export_jsonl, "application/x-ndjson"), "csv": (importers.export_csv, "text/csv")}


class DatasetViewSet(viewsets.ModelViewSet):
    """Datasets of test cases, by id or name. `import` takes a CSV/JSONL file whole (or nothing, naming each bad
    row; `preview=true` only validates); `export` gives the items as `?format=jsonl` (default) or `csv`."""

    serializer_class = DatasetSerializer
    lookup_value_regex = "[^/]+"
    ordering_fields = ["name", "updated_at", "created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return Dataset.objects.select_related("created_by").annotate(item_count=Count("items")).order_by("name")

    def get_object(self) -> Dataset:
        dataset = call(services.get_dataset, reference=self.kwargs["pk"])
        return self.get_queryset().get(pk=dataset.pk)

    def create(self, request: Request) -> Response:
        data = validated(DatasetSerializer, request.data)
        dataset = call(
            services.create_dataset, name=data["name"], description=data.get("description", ""), actor=request.user
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=dataset.pk)).data, status=201)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = validated(DatasetSerializer, request.data, partial=True)
        dataset = call(services.update_dataset, dataset=self.get_object(), actor=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=dataset.pk)).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_dataset(dataset=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"multipart/form-data": ImportSerializer},
        responses={
            200: ImportResultSerializer,
            201: ImportResultSerializer,
            400: OpenApiResponse(ImportResultSerializer, description="A bad file: `errors` names each bad row."),
        },
    )
    @action(detail=True, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_items(self, request: Request, pk: str | None = None) -> Response:
        """Add the rows of a CSV or JSONL file as items, all or none. 201 when stored, 200 for a good preview,
        400 with `errors: [{row, message}]` for a bad file (nothing stored)."""
        data = validated(ImportSerializer, request.data)
        dataset = self.get_object()
        upload = data["file"]
        content, filename = upload.read(), upload.name or ""
        if data["preview"]:
            result = services.preview_import(content, filename)
        else:
            result = call(services.import_items, dataset=dataset, data=content, filename=filename, actor=request.user)
        body = {
            "ok": result.ok,
            "preview": data["preview"],
            "format": result.format,
            "count": len(result.rows),
            "imported": len(result.rows) if result.ok and not data["preview"] else 0,
            "rows": [_row(row) for row in result.rows[:PREVIEW_ROWS]],
            "errors": [{"row": number, "message": message} for number, message in result.errors],
        }
        if not result.ok:
            first = result.errors[0] if result.errors else (0, "no rows")
            more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
            body = {
                "detail": f"Row {first[0]}: {first[1]}{more}; nothing was imported.",
                "code": "invalid_file",
                **body,
            }
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_200_OK if data["preview"] else status.HTTP_201_CREATED)

    def perform_content_negotiation(self, request: Request, force: bool = False):
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            raise serializers.ValidationError({"format": ["use jsonl or csv"]}) from None

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["jsonl", "csv"], description="Default jsonl.")],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, JSONLRenderer, CSVRenderer])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The items as a file that `import` takes back."""
        kind = request.query_params.get("format") or "jsonl"
        if kind not in EXPORT_FORMATS:
            raise serializers.ValidationError({"format": ["use jsonl or csv"]})
        dataset = self.get_object()
        render, content_type = EXPORT_FORMATS[kind]
        response = HttpResponse(
            render(dataset.items.order_by("id").iterator(chunk_size=2000)), content_type=content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{dataset.name.replace("/", "_")}.{kind}"'
        return response


def _row(row: importers.Row) -> dict:
    data = {"input": row.input, "expected_output": row.expected_output, "context": row.context,
            "metadata": row.metadata, "tags": row.tags}  # fmt: skip
    if row.output is not None:
        data["output"] = row.output
    return data


@extend_schema(parameters=[OpenApiParameter("dataset_pk", str, OpenApiParameter.PATH, description="Id or name.")])
class DatasetItemViewSet(viewsets.ModelViewSet):
    """A dataset's items: `input` variables, `expected_output`, `context`, `metadata`, `tags`."""

    serializer_class = DatasetItemSerializer
    filterset_class = DatasetItemFilter
    ordering_fields = ["id", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def dataset(self) -> Dataset:
        if not hasattr(self, "_dataset"):
            self._dataset = call(services.get_dataset, reference=self.kwargs["dataset_pk"])
        return self._dataset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DatasetItem.objects.none()
        return DatasetItem.objects.filter(dataset=self.dataset()).order_by("id")

    def create(self, request: Request, dataset_pk: str = "") -> Response:
        data = validated(DatasetItemSerializer, request.data)
        item = call(services.add_item, dataset=self.dataset(), actor=request.user, **data)
        return Response(DatasetItemSerializer(item).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, dataset_pk: str = "", pk: str | None = None) -> Response:
        data = validated(DatasetItemSerializer, request.data, partial=True)
        item = call(services.update_item, item=self.get_object(), actor=request.user, **data)
        return Response(DatasetItemSerializer(item).data)

    def destroy(self, request: Request, dataset_pk: str = "", pk: str | None = None) -> Response:
        services.delete_item(item=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Runs -----------------------------------------------------------------------------------------------------------


def prompt_version_for(ref: object, field: str) -> PromptVersion:
    """A prompt version from "name@3", "name@label", {"prompt", "version"} or {"prompt", "label"}."""
    if isinstance(ref, str):
        name, sep, which = ref.rpartition("@")
        if not sep or not name or not which:
            raise serializers.ValidationError({field: [f'{ref!r}: use "name@version" or "name@label"']})
        ref = {"prompt": name, "version": int(which)} if which.isdigit() else {"prompt": name, "label": which}
    if not isinstance(ref, dict) or not isinstance(ref.get("prompt"), str):
        raise serializers.ValidationError({field: ['an object {"prompt": name, "version": n} or {"prompt", "label"}']})
    if ref.get("version") is not None:
        prompt = reference(services.get_prompt, field, name=ref["prompt"])
        return reference(services.get_version, field, prompt=prompt, number=ref["version"])
    return reference(services.resolve, field, name=ref["prompt"], label=ref.get("label") or services.PRODUCTION)


def models_for(names: list[str] | None, versions: list[PromptVersion]) -> list[LLMModel]:
    """The models named, or else the one model the prompt versions name themselves."""
    if names:
        return [reference(services.resolve_model, f"models[{i}]", reference=name) for i, name in enumerate(names)]
    defaults = {version.model for version in versions}
    if len(defaults) != 1 or not next(iter(defaults)):
        raise serializers.ValidationError({"models": ["give the models to run (the versions name no single model)"]})
    return [reference(services.resolve_model, "models", reference=defaults.pop())]


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
        data = validated(RunCreateSerializer, request.data)
        dataset = reference(services.get_dataset, "dataset", reference=data["dataset"])
        versions = [prompt_version_for(ref, f"prompt_versions[{i}]") for i, ref in enumerate(data["prompt_versions"])]
        models = models_for(data.get("models"), versions)
        judge = reference(services.resolve_model, "judge_model", reference=data["judge_model"]) if data.get(
            "judge_model") else None  # fmt: skip
        run = call(
            services.create_run,
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
        responses={201: EvalRunSerializer, 400: OpenApiResponse(ImportResultSerializer, description="A bad file.")},
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def score(self, request: Request) -> Response:
        """Score outputs produced elsewhere: a CSV/JSONL `file` with `output` per row, and `scorers` (JSON).
        `prompt_version` names the version that produced them, so the run counts for its release gate."""
        data = validated(ScoreRunCreateSerializer, request.data)
        scorers = data["scorers"]
        if isinstance(scorers, str):
            try:
                scorers = json.loads(scorers)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError({"scorers": [f"not valid JSON: {exc.msg}"]}) from None
        dataset = reference(services.get_dataset, "dataset", reference=data["dataset"]) if data["dataset"] else None
        judge = reference(services.resolve_model, "judge_model", reference=data["judge_model"]) if data[
            "judge_model"] else None  # fmt: skip
        version = prompt_version_for(data["prompt_version"], "prompt_version") if data["prompt_version"] else None
        upload = data["file"]
        run, result = call(
            services.create_score_run,
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
        run = call(services.cancel_run, run=self.get_object(), actor=request.user)
        return Response(EvalRunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=RescoreSerializer, responses=EvalRunSerializer)
    @action(detail=True, methods=["post"])
    def rescore(self, request: Request, pk: str | None = None) -> Response:
        """Score a finished run's stored outputs again, with new `scorers` or its own (no model calls)."""
        data = validated(RescoreSerializer, request.data)
        run = self.get_object()
        call(services.rescore_run, run=run, actor=request.user, scorers=data.get("scorers"))
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
