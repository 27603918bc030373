from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..models import ApiToken
from ..roles import Role
from .serializers import (
    ApiTokenSerializer,
    NewApiTokenSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
)


class MeView(APIView):
    """The authenticated user, with their role."""

    @extend_schema(responses=UserSerializer)
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)


class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Users and their roles (admin only). Users are deactivated, never deleted, so history stays intact."""

    queryset = User.objects.order_by("username").prefetch_related("groups")
    serializer_class = UserSerializer
    required_role = Role.ADMIN
    filterset_fields = ["is_active", "username"]
    ordering_fields = ["username", "date_joined", "last_login"]

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request: Request) -> Response:
        data = self._validated(UserCreateSerializer, request.data)
        user = self._call(
            services.create_user,
            actor=request.user,
            username=data["username"],
            email=data["email"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            role=data["role"],
            password=data["password"] or None,
        )
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        user = self.get_object()
        data = self._validated(UserUpdateSerializer, request.data)
        user = self._call(services.update_user, user=user, actor=request.user, **data)
        return Response(UserSerializer(user).data)

    @staticmethod
    def _validated(serializer_class: type[serializers.Serializer], data: dict) -> dict:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @staticmethod
    def _call(service, **kwargs):
        try:
            return service(**kwargs)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from None


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your own API tokens. Creating one returns its secret once; DELETE revokes it."""

    serializer_class = ApiTokenSerializer
    # Anyone with a role manages their own tokens.
    write_role = Role.VIEWER
    ordering_fields = ["created_at", "last_used_at", "name"]

    queryset = ApiToken.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request: Request) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = services.create_api_token(
            user=request.user,
            name=serializer.validated_data["name"],
            expires_at=serializer.validated_data.get("expires_at"),
            actor=request.user,
        )
        token.token = raw
        return Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ApiTokenSerializer)
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        token = services.revoke_api_token(token=self.get_object(), actor=request.user)
        return Response(ApiTokenSerializer(token).data)
