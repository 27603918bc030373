"""Providers, their models and prices, and the price table (admins write)."""

from __future__ import annotations

import asyncio

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role

from ... import engine, services
from ...models import LLMModel, PriceEntry, Provider
from ...services.providers import KEEP
from ..filters import LLMModelFilter
from ..serializers import (
    LLMModelSerializer,
    ModelPricesSerializer,
    PriceEntrySerializer,
    ProviderSerializer,
    TestConnectionResultSerializer,
    TestConnectionSerializer,
)


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
        serializer = ProviderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("enabled", None)
        provider = services.create_provider(actor=request.user, **data)
        return Response(self._fresh(provider), status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = ProviderSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        provider = services.update_provider(provider=self.get_object(), actor=request.user, **data)
        return Response(self._fresh(provider))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_provider(provider=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TestConnectionSerializer, responses=TestConnectionResultSerializer)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request: Request, pk: str | None = None) -> Response:
        """Ask `model` to say OK (one call, no retries): `ok` with the answer, or the exact error."""
        serializer = TestConnectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        provider = self.get_object()
        ok, text = asyncio.run(engine.test_connection(provider, data["model"]))
        services.record_connection_test(provider=provider, model_name=data["model"], ok=ok, message=text)
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
        serializer = LLMModelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = services.add_model(
            provider=data["provider"],
            name=data["name"],
            actor=request.user,
            input_per_million=data.get("input_per_million"),
            output_per_million=data.get("output_per_million"),
            cache_read_per_million=data.get("cache_read_per_million"),
            cache_write_per_million=data.get("cache_write_per_million"),
        )
        return Response(LLMModelSerializer(model).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ModelPricesSerializer, responses=LLMModelSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change the prices (the name and provider stay)."""
        serializer = ModelPricesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = self.get_object()
        model = services.update_model_prices(
            model=model,
            actor=request.user,
            input_per_million=data.get("input_per_million", model.input_per_million),
            output_per_million=data.get("output_per_million", model.output_per_million),
            cache_read_per_million=data.get("cache_read_per_million", KEEP),
            cache_write_per_million=data.get("cache_write_per_million", KEEP),
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
        serializer = PriceEntrySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        existed = PriceEntry.objects.filter(model_name=data["model_name"].strip()).exists()
        entry = services.set_price(actor=request.user, **data)
        return Response(PriceEntrySerializer(entry).data, status=status.HTTP_200_OK if existed else 201)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = PriceEntrySerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry = self.get_object()
        entry = services.set_price(
            actor=request.user,
            model_name=entry.model_name,
            input_per_million=data.get("input_per_million", entry.input_per_million),
            output_per_million=data.get("output_per_million", entry.output_per_million),
            cache_read_per_million=data.get("cache_read_per_million", KEEP),
            cache_write_per_million=data.get("cache_write_per_million", KEEP),
        )
        return Response(PriceEntrySerializer(entry).data)
