"""MLOps native REST API: registered models, versions (nested under their model), approvals, webhooks.

The same data as the MLflow-compatible API, in the portal's conventions: names and
version numbers in URLs, tags as objects, errors as `{"detail", "code", "errors"}`.
A change that needs an admin's approval answers 202 with the approval request. A service's
refusal (`opsportal.errors.ServiceError`) propagates to the API's exception handler.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role, has_role
from opsportal.api import ErrorSerializer
from opsportal.parsers import FormParser, JSONParser, MultiPartParser

from .. import services
from ..models import (
    ApprovalRequest,
    Artifact,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    VersionEvent,
    Webhook,
)
from .filters import ApprovalRequestFilter, ModelVersionFilter, RegisteredModelFilter
from .schema import RegistrySchema
from .serializers import (
    AliasSerializer,
    ApprovalRequestSerializer,
    ArtifactSerializer,
    ArtifactUploadSerializer,
    DecisionSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    ModelVersionWriteSerializer,
    NewWebhookSerializer,
    PromotionRequestSerializer,
    RegisteredModelSerializer,
    RegisteredModelUpdateSerializer,
    RegisteredModelWriteSerializer,
    RenameSerializer,
    RollbackSerializer,
    TagSerializer,
    TransitionSerializer,
    VersionEventSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
)


def pending_response(request: ApprovalRequest) -> Response:
    body = {
        "status": "pending_approval",
        "detail": services.ApprovalNeeded(request).message,
        "approval_request": ApprovalRequestSerializer(request).data,
    }
    return Response(body, status=status.HTTP_202_ACCEPTED)


UPLOAD_REFUSED = OpenApiResponse(
    ErrorSerializer,
    description="Nothing stored: `errors` names the field (`file` missing or over MLOPS_MAX_ARTIFACT_BYTES, "
    "a bad `path`).",
)
PENDING = OpenApiResponse(description="Waits for an admin: `{status: pending_approval, approval_request}`.")


class RegisteredModelViewSet(viewsets.ModelViewSet):
    """Registered models, by name. Search with `q`, `tag=key=value`, `stage`, `owner_team`; sort with `ordering`."""

    serializer_class = RegisteredModelSerializer
    filterset_class = RegisteredModelFilter
    schema = RegistrySchema()
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    ordering_fields = ["name", "updated_at", "created_at"]
    ordering = ["name"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_roles = {"destroy": Role.ADMIN, "rollback": Role.OPERATOR}

    def get_queryset(self):
        return RegisteredModel.objects.prefetch_related(
            "tags",
            Prefetch("aliases", queryset=ModelAlias.objects.select_related("version").only("alias", "model_id",
                                                                                          "version__version")),
            Prefetch("versions", queryset=ModelVersion.objects.only("id", "model_id", "version", "stage")),
        )  # fmt: skip

    def get_object(self) -> RegisteredModel:
        name = self.kwargs["name"]
        queryset = self.get_queryset() if self.action == "retrieve" else RegisteredModel.objects.all()
        model = queryset.filter(name=name).first()
        if model is None:
            raise exceptions.NotFound(f"Registered model {name!r} not found.")
        return model

    @extend_schema(request=RegisteredModelWriteSerializer, responses={201: RegisteredModelSerializer})
    def create(self, request: Request) -> Response:
        serializer = RegisteredModelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = services.create_model(actor=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=model.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RegisteredModelUpdateSerializer, responses=RegisteredModelSerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        serializer = RegisteredModelUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        policy = {"approval_required", "protected_aliases", "archive_on_promotion"} & set(data)
        if policy and not has_role(request.user, Role.ADMIN):
            raise exceptions.PermissionDenied("Only admins change a model's approval policy.")
        model = services.update_model(model=self.get_object(), actor=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=model.pk)).data)

    def destroy(self, request: Request, name: str | None = None) -> Response:
        services.delete_model(model=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RenameSerializer, responses=RegisteredModelSerializer)
    @action(detail=True, methods=["post"])
    def rename(self, request: Request, name: str | None = None) -> Response:
        serializer = RenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = services.rename_model(model=self.get_object(), new_name=data["new_name"], actor=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=model.pk)).data)

    @extend_schema(methods=["post"], request=TagSerializer, responses=RegisteredModelSerializer)
    @action(detail=True, methods=["post"])
    def tags(self, request: Request, name: str | None = None) -> Response:
        """Set a tag (`key`, `value`); DELETE …/tags/<key>/ removes one."""
        serializer = TagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = self.get_object()
        services.set_model_tag(model=model, key=data["key"], value=data["value"], actor=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=model.pk)).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"tags/(?P<key>[^/]+)")
    def delete_tag(self, request: Request, name: str | None = None, key: str = "") -> Response:
        services.delete_model_tag(model=self.get_object(), key=key, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AliasSerializer, responses={200: RegisteredModelSerializer, 202: PENDING})
    @action(detail=True, methods=["post"])
    def aliases(self, request: Request, name: str | None = None) -> Response:
        """Point an alias at a version; a protected alias waits for approval (202)."""
        serializer = AliasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = self.get_object()
        version = services.get_version(model, data["version"])
        result = services.set_alias(model=model, alias=data["alias"], version=version, actor=request.user)
        if result.request is not None:
            return pending_response(result.request)
        return Response(self.get_serializer(self.get_queryset().get(pk=model.pk)).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"aliases/(?P<alias>[^/]+)")
    def delete_alias(self, request: Request, name: str | None = None, alias: str = "") -> Response:
        services.delete_alias(model=self.get_object(), alias=alias, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RollbackSerializer, responses={200: ModelVersionSerializer, 202: PENDING})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, name: str | None = None) -> Response:
        """Make a previous version Production again (the current one is archived)."""
        serializer = RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = self.get_object()
        version = services.get_version(model, data["version"])
        result = services.rollback(model=model, to_version=version, actor=request.user, reason=data["reason"])
        if result.request is not None:
            return pending_response(result.request)
        return Response(ModelVersionSerializer(_version_queryset().get(pk=version.pk)).data)

    @extend_schema(responses=VersionEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, name: str | None = None) -> Response:
        events = VersionEvent.objects.filter(model=self.get_object()).select_related("version")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(VersionEventSerializer(page, many=True).data)


def _version_queryset():
    return ModelVersion.objects.select_related("model", "created_by").prefetch_related("tags", "aliases")


class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """A model's versions, by number: register, edit, transition, tag, upload artifacts."""

    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilter
    schema = RegistrySchema()
    lookup_field = "version"
    lookup_value_regex = "[0-9]+"
    ordering_fields = ["version", "created_at", "updated_at"]
    ordering = ["-version"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_roles = {"destroy": Role.ADMIN}

    def model(self) -> RegisteredModel:
        if not hasattr(self, "_model"):
            self._model = get_object_or_404(RegisteredModel, name=self.kwargs["model_name"])
        return self._model

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return ModelVersion.objects.none()
        queryset = _version_queryset().filter(model=self.model())
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("artifacts")
        return queryset

    def get_serializer_class(self):
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer

    def get_object(self) -> ModelVersion:
        return services.get_version(self.model(), self.kwargs["version"])

    def retrieve(self, request: Request, **kwargs) -> Response:
        version = self.get_queryset().filter(version=self.kwargs["version"]).first()
        if version is None:
            raise exceptions.NotFound(f"{self.model().name} has no version {self.kwargs['version']}.")
        return Response(ModelVersionDetailSerializer(version).data)

    def _fresh(self, version: ModelVersion) -> dict:
        return ModelVersionDetailSerializer(_version_queryset().prefetch_related("artifacts").get(pk=version.pk)).data

    @extend_schema(request=ModelVersionWriteSerializer, responses={201: ModelVersionDetailSerializer})
    def create(self, request: Request, **kwargs) -> Response:
        serializer = ModelVersionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = services.create_version(model=self.model(), actor=request.user, **data)
        return Response(self._fresh(version), status=status.HTTP_201_CREATED)

    @extend_schema(request=ModelVersionWriteSerializer, responses=ModelVersionDetailSerializer)
    def partial_update(self, request: Request, **kwargs) -> Response:
        serializer = ModelVersionWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        data.pop("tags", None)
        version = services.update_version(version=self.get_object(), actor=request.user, **data)
        return Response(self._fresh(version))

    def destroy(self, request: Request, **kwargs) -> Response:
        services.delete_version(version=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TransitionSerializer, responses={200: ModelVersionDetailSerializer, 202: PENDING})
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, **kwargs) -> Response:
        """Move to a stage; to Production on a model with an approval policy this opens a request (202)."""
        serializer = TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.transition_stage(
            version=self.get_object(),
            stage=data["stage"],
            archive_existing=data["archive_existing"],
            reason=data["reason"],
            actor=request.user,
        )
        if result.request is not None:
            return pending_response(result.request)
        return Response(self._fresh(result.version))

    @extend_schema(request=PromotionRequestSerializer, responses={201: ApprovalRequestSerializer})
    @action(detail=True, methods=["post"], url_path="request-promotion")
    def request_promotion(self, request: Request, **kwargs) -> Response:
        """Ask an admin to approve a stage (default Production) or an alias for this version."""
        serializer = PromotionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        approval = services.request_promotion(version=self.get_object(), actor=request.user, **data)
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["post"], request=TagSerializer, responses=ModelVersionDetailSerializer)
    @action(detail=True, methods=["post"])
    def tags(self, request: Request, **kwargs) -> Response:
        serializer = TagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = self.get_object()
        services.set_version_tag(version=version, key=data["key"], value=data["value"], actor=request.user)
        return Response(self._fresh(version))

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"tags/(?P<key>[^/]+)")
    def delete_tag(self, request: Request, key: str = "", **kwargs) -> Response:
        services.delete_version_tag(version=self.get_object(), key=key, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["get"], responses=ArtifactSerializer(many=True))
    @extend_schema(
        methods=["post"], request={"multipart/form-data": ArtifactUploadSerializer},
        responses={201: ArtifactSerializer, 400: UPLOAD_REFUSED,
                   409: OpenApiResponse(ErrorSerializer, description="The version already has a file at `path`.")},
    )  # fmt: skip
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def artifacts(self, request: Request, **kwargs) -> Response:
        """List a version's artifacts, or upload one (multipart `file`, optional `path`)."""
        version = self.get_object()
        if request.method == "GET":
            return Response(ArtifactSerializer(version.artifacts.all(), many=True).data)
        serializer = ArtifactUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        artifact = services.upload_artifact(
            version=version, upload=data["file"], path=data.get("path", ""), actor=request.user
        )
        return Response(ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=VersionEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, **kwargs) -> Response:
        events = VersionEvent.objects.filter(version=self.get_object()).select_related("version")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(VersionEventSerializer(page, many=True).data)


class ArtifactViewSet(viewsets.GenericViewSet):
    queryset = Artifact.objects.all()

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The file.")})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        artifact = self.get_object()
        return FileResponse(artifact.file.open("rb"), as_attachment=True, filename=artifact.path.rsplit("/", 1)[-1])


class ApprovalRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Promotion requests; admins approve or reject (with a comment), the requester may cancel."""

    queryset = ApprovalRequest.objects.select_related("version__model", "requested_by", "decided_by")
    serializer_class = ApprovalRequestSerializer
    filterset_class = ApprovalRequestFilter
    ordering_fields = ["requested_at", "decided_at"]
    action_roles = {"approve": Role.ADMIN, "reject": Role.ADMIN, "cancel": Role.OPERATOR}

    @extend_schema(request=DecisionSerializer, responses=ApprovalRequestSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        approval = services.approve(request=self.get_object(), actor=request.user, comment=data["comment"])
        return Response(ApprovalRequestSerializer(approval).data)

    @extend_schema(request=DecisionSerializer, responses=ApprovalRequestSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        approval = services.reject(request=self.get_object(), actor=request.user, comment=data["comment"])
        return Response(ApprovalRequestSerializer(approval).data)

    @extend_schema(request=None, responses=ApprovalRequestSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        approval = services.cancel_request(request=self.get_object(), actor=request.user)
        return Response(ApprovalRequestSerializer(approval).data)


class WebhookViewSet(viewsets.ModelViewSet):
    """Signed webhooks on registry events. Admins only. The secret is shown once, when created."""

    queryset = Webhook.objects.select_related("model")
    serializer_class = WebhookSerializer
    required_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=NewWebhookSerializer, responses={201: NewWebhookSerializer})
    def create(self, request: Request) -> Response:
        serializer = NewWebhookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        hook, secret = services.create_webhook(actor=request.user, **data)
        body = WebhookSerializer(hook).data
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = WebhookSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        hook = services.update_webhook(webhook=self.get_object(), actor=request.user, **data)
        return Response(WebhookSerializer(hook).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_webhook(webhook=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(self.get_object().deliveries.all())
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
