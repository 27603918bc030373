"""Status pages over the API: admins publish named public pages of chosen checks."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role

from ..models import Check, StatusPage
from ..services import status_pages


class StatusPageSerializer(serializers.ModelSerializer):
    checks = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Check.objects.all(), required=False, help_text="Ids of the checks the page shows."
    )
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    slug = serializers.RegexField(
        status_pages.SLUG_PATTERN.pattern, max_length=100, help_text="The page is at /status/<slug>/."
    )

    class Meta:
        model = StatusPage
        fields = ["id", "name", "slug", "description", "checks", "published", "url", "created_at"]
        read_only_fields = ["id", "url", "created_at"]
        extra_kwargs = {"description": {"max_length": 2000}}


class PublicCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    uptime_90d = serializers.FloatField(allow_null=True)
    days = serializers.ListField(child=serializers.DictField())


class PublicStatusSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.ChoiceField(choices=["operational", "degraded", "down", "maintenance", "unknown"])
    status_text = serializers.CharField()
    updated_at = serializers.DateTimeField()
    checks = PublicCheckSerializer(many=True)
    incidents = serializers.ListField(child=serializers.DictField())


class StatusPageViewSet(viewsets.ModelViewSet):
    """Public status pages (`/status/<slug>/`). Everyone reads the list; admins create, change and delete."""

    queryset = StatusPage.objects.prefetch_related("checks").order_by("name")
    serializer_class = StatusPageSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request: Request) -> Response:
        serializer = StatusPageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        page = status_pages.save_status_page(
            actor=request.user,
            name=data["name"],
            slug=data["slug"],
            description=data.get("description", ""),
            check_ids=[check.pk for check in data.get("checks", [])],
            published=data.get("published", False),
        )
        return Response(StatusPageSerializer(page).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        page = self.get_object()
        serializer = StatusPageSerializer(page, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        page = status_pages.save_status_page(
            actor=request.user,
            page=page,
            name=data.get("name", page.name),
            slug=data.get("slug", page.slug),
            description=data.get("description", page.description),
            check_ids=[c.pk for c in data["checks"]] if "checks" in data else [c.pk for c in page.checks.all()],
            published=data.get("published", page.published),
        )
        return Response(StatusPageSerializer(StatusPage.objects.prefetch_related("checks").get(pk=page.pk)).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        status_pages.delete_status_page(page=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=PublicStatusSerializer)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """What the public page shows (also for a draft), as `/status/<slug>/status.json` answers it."""
        return Response(status_pages.public_status(self.get_object()).as_json())
