"""The monitoring actions API: a monitor's checks, breaches, and retraining hooks with their calls.

- `/api/v1/mlops/monitors/<monitor_id>/checks/`: CRUD (viewers read, admins write);
- `/api/v1/mlops/breaches/?monitor=&model=&open=true`: breaches, newest first (read-only);
- `/api/v1/mlops/retraining-hooks/?model=`: CRUD (admins write; `secret` and `token` are write-only, a secret
  generated for a new hook is answered once as `secret`), `POST .../<id>/test/` sends a test call now and
  answers it with the receiver's answer, `GET .../<id>/calls/` the calls made.
"""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role

from ..models import Breach, Monitor, MonitorCheck, RegisteredModel, RetrainingCall, RetrainingHook
from ..services import monitor_checks, retraining


class MonitorCheckSerializer(serializers.ModelSerializer):
    retraining = serializers.PrimaryKeyRelatedField(
        queryset=RetrainingHook.objects.all(), required=False, allow_null=True,
        help_text="The id of a retraining hook of the same model, called when the check breaches.",
    )  # fmt: skip
    severity = serializers.ChoiceField(choices=monitor_checks.SEVERITIES, default="warning")
    open_breach = serializers.SerializerMethodField()

    class Meta:
        model = MonitorCheck
        fields = [
            "id", "monitor", "name", "kind", "scope", "column", "rule", "bound", "severity", "retraining", "enabled",
            "state", "last_value", "last_evaluated_at", "created_at", "open_breach",
        ]  # fmt: skip
        read_only_fields = ["id", "monitor", "state", "last_value", "last_evaluated_at", "created_at", "open_breach"]

    def get_open_breach(self, check: MonitorCheck) -> int | None:
        """The id of the check's breach still open, if any."""
        if hasattr(check, "open_breaches"):
            return check.open_breaches[0].pk if check.open_breaches else None
        return check.breaches.filter(resolved_at__isnull=True).values_list("pk", flat=True).first()


def _absolute(path: str) -> str:
    return f"{settings.OPSPORTAL_BASE_URL}{path}"


class BreachSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="monitor.model.name", read_only=True)
    check = serializers.CharField(source="monitor_check.name", read_only=True)
    check_id = serializers.IntegerField(source="monitor_check_id", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True, allow_null=True, default=None)
    retrained_version = serializers.IntegerField(
        source="retrained_version.version", read_only=True, allow_null=True, default=None
    )
    is_open = serializers.BooleanField(read_only=True)
    report_url = serializers.SerializerMethodField()
    retraining_calls = serializers.SerializerMethodField()

    class Meta:
        model = Breach
        fields = [
            "id", "model", "monitor", "check", "check_id", "version", "batch", "window_start", "window_end", "value",
            "message", "evidence", "dedup_key", "opened_at", "resolved_at", "is_open", "retrained_version",
            "report_url", "retraining_calls",
        ]  # fmt: skip
        read_only_fields = fields

    def get_report_url(self, breach: Breach) -> str:
        if breach.batch_id is not None:
            return _absolute(breach.batch.get_absolute_url())
        return _absolute(breach.monitor.get_absolute_url())

    def get_retraining_calls(self, breach: Breach) -> list[dict]:
        return [
            {"id": c.pk, "hook": c.hook_id, "status": c.status, "response_code": c.response_code}
            for c in breach.retraining_calls.all()
        ]


class RetrainingHookSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="name", queryset=RegisteredModel.objects.all())
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True,
        help_text="HMAC signing secret; generated for a new hook when empty (answered once); never read back.",
    )  # fmt: skip
    token = serializers.CharField(
        write_only=True, required=False, allow_blank=True,
        help_text="Sent as Authorization: Bearer (GitHub, Airflow, generic) or, Airflow with auth basic, "
        "user:password as basic auth; never read back.",
    )  # fmt: skip
    options = serializers.JSONField(required=False, default=dict)
    has_secret = serializers.SerializerMethodField()
    has_token = serializers.SerializerMethodField()

    class Meta:
        model = RetrainingHook
        fields = [
            "id", "model", "name", "kind", "url", "options", "enabled", "created_at", "secret", "token",
            "has_secret", "has_token",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "has_secret", "has_token"]
        validators: list = []  # a taken name is refused by the service, naming the field

    def get_has_secret(self, hook: RetrainingHook) -> bool:
        return bool(hook.secret_encrypted)

    def get_has_token(self, hook: RetrainingHook) -> bool:
        return bool(hook.token_encrypted)


class RetrainingCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = RetrainingCall
        fields = [
            "id", "hook", "breach", "event", "target", "payload", "status", "attempts", "response_code",
            "response_body", "last_error", "created_at", "next_attempt_at", "sent_at",
        ]  # fmt: skip
        read_only_fields = fields


class BreachFilter(django_filters.FilterSet):
    monitor = django_filters.NumberFilter(field_name="monitor_id")
    model = django_filters.CharFilter(field_name="monitor__model__name")
    check = django_filters.NumberFilter(field_name="monitor_check_id")
    open = django_filters.BooleanFilter(field_name="resolved_at", lookup_expr="isnull", label="Still open")

    class Meta:
        model = Breach
        fields = ["monitor", "model", "check", "open"]


class RetrainingHookFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__name")

    class Meta:
        model = RetrainingHook
        fields = ["model", "kind", "enabled"]


class MonitorCheckViewSet(viewsets.ModelViewSet):
    """A monitor's checks: what is measured on each batch or over a scheduled window, and its bound."""

    serializer_class = MonitorCheckSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def monitor(self) -> Monitor:
        return get_object_or_404(Monitor.objects.select_related("model"), pk=self.kwargs["monitor_id"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema's introspection has no monitor
            return MonitorCheck.objects.none()
        return (
            MonitorCheck.objects.filter(monitor_id=self.kwargs["monitor_id"])
            .select_related("monitor")
            .prefetch_related(
                Prefetch("breaches", queryset=Breach.objects.filter(resolved_at__isnull=True), to_attr="open_breaches")
            )
        )

    def _save(self, request: Request, check: MonitorCheck | None) -> MonitorCheck:
        serializer = MonitorCheckSerializer(data=request.data, partial=check is not None)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        monitor = self.monitor() if check is None else check.monitor
        fields = {
            key: data.get(key, getattr(check, key) if check is not None else default)
            for key, default in (
                ("name", ""), ("kind", ""), ("scope", MonitorCheck.Scope.BATCH), ("column", ""), ("rule", ""),
                ("bound", None), ("severity", "warning"), ("retraining", None), ("enabled", True),
            )
        }  # fmt: skip
        return monitor_checks.save_check(monitor=monitor, actor=request.user, check=check, **fields)

    def create(self, request: Request, monitor_id: str | None = None) -> Response:
        check = self._save(request, None)
        return Response(MonitorCheckSerializer(check).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, monitor_id: str | None = None, pk: str | None = None) -> Response:
        check = self._save(request, self.get_object())
        return Response(MonitorCheckSerializer(check).data)

    def destroy(self, request: Request, monitor_id: str | None = None, pk: str | None = None) -> Response:
        monitor_checks.delete_check(check=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BreachViewSet(viewsets.ReadOnlyModelViewSet):
    """Breaches of monitor checks, newest first: the measurement, the evidence, the alert key (its incident in
    AIOps), the retraining calls made and the version a retraining registered."""

    queryset = Breach.objects.select_related(
        "monitor__model", "monitor_check", "version", "retrained_version", "batch__monitor__model"
    ).prefetch_related("retraining_calls")
    serializer_class = BreachSerializer
    filterset_class = BreachFilter


class RetrainingHookViewSet(viewsets.ModelViewSet):
    """Retraining webhooks of models (generic signed JSON, GitHub Actions workflow_dispatch, Airflow DAG run)."""

    queryset = RetrainingHook.objects.select_related("model")
    serializer_class = RetrainingHookSerializer
    filterset_class = RetrainingHookFilter
    write_role = Role.ADMIN
    action_roles = {"test": Role.ADMIN}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _save(self, request: Request, hook: RetrainingHook | None) -> RetrainingHook:
        serializer = RetrainingHookSerializer(data=request.data, partial=hook is not None)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        current = {
            key: getattr(hook, key) if hook is not None else default
            for key, default in (("model", None), ("name", ""), ("kind", RetrainingHook.Kind.GENERIC), ("url", ""),
                                 ("options", {}), ("enabled", True))
        }  # fmt: skip
        current.update({k: v for k, v in data.items() if k not in ("secret", "token")})
        return retraining.save_retraining_hook(
            actor=request.user, hook=hook, secret=data.get("secret", ""), token=data.get("token", ""), **current
        )

    def create(self, request: Request) -> Response:
        hook = self._save(request, None)
        body = RetrainingHookSerializer(hook).data
        if hook.new_secret:
            body["secret"] = hook.new_secret
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return Response(RetrainingHookSerializer(self._save(request, self.get_object())).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        retraining.delete_retraining_hook(hook=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=RetrainingCallSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        call = retraining.test_retraining_hook(hook=self.get_object(), actor=request.user)
        return Response(RetrainingCallSerializer(call).data)

    @extend_schema(responses=RetrainingCallSerializer(many=True))
    @action(detail=True, methods=["get"])
    def calls(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(self.get_object().calls.all())
        return self.get_paginated_response(RetrainingCallSerializer(page, many=True).data)
