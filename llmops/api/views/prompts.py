"""Prompts by name: the version a label points at, versions with diffs and the gate, labels, label moves.

`GET /api/v1/llmops/prompts/<name>/?label=production` is what applications call at run time: the
messages, model and parameters of the version the label points at.
"""

from __future__ import annotations

import difflib

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role, has_role
from opsportal.errors import as_field

from ... import services
from ...models import LabelMove, Prompt, PromptLabel, PromptVersion
from ..filters import PromptFilter
from ..serializers import (
    GateCheckSerializer,
    LabelMoveSerializer,
    MoveLabelSerializer,
    PromptCreateSerializer,
    PromptLabelSerializer,
    PromptSerializer,
    PromptUpdateSerializer,
    PromptVersionCreateSerializer,
    PromptVersionSerializer,
    ResolvedPromptSerializer,
    VersionDiffSerializer,
)

# Prompt names may contain "/": the nested routes are registered before the prompt's own (see urls.py).
PROMPT_NAME = r"[^/]+(?:/[^/]+)*"
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
        return services.get_prompt(name=self.kwargs["name"])

    def retrieve(self, request: Request, name: str | None = None) -> Response:
        """The version a label points at (default `production`), or `?version=N`: messages, model, parameters."""
        number = request.query_params.get("version")
        if number:
            version = services.get_version(prompt=self.get_object(), number=number)
            label = None
        else:
            label = request.query_params.get("label") or services.PRODUCTION
            version = services.resolve(name=name, label=label)
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
        serializer = PromptCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "messages" in data:
            data["messages"] = [dict(message) for message in data["messages"]]
        prompt = services.create_prompt(actor=request.user, **data)
        return Response(PromptSerializer(_prompt_queryset().get(pk=prompt.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PromptUpdateSerializer, responses=PromptSerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        """The description and the release gate (`gate_dataset` name and `gate_min_pass_rate`, both or neither)."""
        serializer = PromptUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if {"gate_dataset", "gate_min_pass_rate"} & set(data) and not has_role(request.user, Role.ADMIN):
            raise exceptions.PermissionDenied("Only admins change a prompt's release gate.")
        if data.get("gate_dataset"):
            with as_field("gate_dataset"):
                data["gate_dataset"] = services.get_dataset(reference=data["gate_dataset"])
        elif "gate_dataset" in data:
            data["gate_dataset"] = None
        prompt = services.update_prompt(prompt=self.get_object(), actor=request.user, **data)
        return Response(PromptSerializer(_prompt_queryset().get(pk=prompt.pk)).data)


class PromptChildMixin:
    """For viewsets nested under `prompts/<prompt_name>/`."""

    kwargs: dict

    def prompt(self) -> Prompt:
        if not hasattr(self, "_prompt"):
            self._prompt = services.get_prompt(name=self.kwargs["prompt_name"])
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
        serializer = PromptVersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = services.create_version(
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
        allowed, reason, run = services.gate_check(prompt=self.prompt(), version=candidate)
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
        serializer = MoveLabelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        prompt = self.prompt()
        with as_field("version"):
            version = services.get_version(prompt=prompt, number=data["version"])
        row = services.move_label(
            prompt=prompt,
            label=data["label"],
            version=version,
            actor=request.user,
            override=data["override"],
            reason=data["reason"],
        )
        return Response(PromptLabelSerializer(row).data)

    def destroy(self, request: Request, prompt_name: str = "", label: str = "") -> Response:
        services.delete_label(prompt=self.prompt(), label=label, actor=request.user)
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
