"""Runbooks REST API: `/api/v1/aiops/runbooks/` (admins write, viewers read), runs (operators start, approve,
reject and cancel), the kill switch (admins) and the ready-made step templates.

A runbook is `{"name", "steps": [...], "trigger": {"mode", "match"}, "window_minutes", ...}`; `secrets`
({"NAME": "value"}) is write-only and reads back as {"NAME": "set"}. Every write goes through
`aiops.services.runbooks`; a bad step is a 400 naming the step and field.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from opsportal.accounts.roles import Role

from ..models import Incident, Runbook, RunbookRun, RunbookStepRun
from ..runbooks.step_templates import TEMPLATES
from ..services import runbooks as services


class TriggerSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=services.MODES, required=False)
    match = serializers.JSONField(required=False)


class RunbookSerializer(serializers.ModelSerializer):
    steps = serializers.JSONField()
    trigger = TriggerSerializer(required=False)
    secrets = serializers.DictField(child=serializers.CharField(allow_blank=True, allow_null=True), write_only=True,
                                    required=False)  # fmt: skip
    secrets_set = serializers.SerializerMethodField()
    page_url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Runbook
        fields = [
            "id", "name", "description", "enabled", "steps", "trigger", "window_minutes", "max_concurrent_runs",
            "max_runs_per_hour", "secrets", "secrets_set", "created_at", "updated_at", "page_url",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}

    def get_secrets_set(self, runbook: Runbook) -> dict[str, str]:
        """{"NAME": "set"} for each stored secret; values are never shown."""
        return dict.fromkeys(runbook.secret_names, "set")

    def to_representation(self, runbook: Runbook) -> dict:
        data = super().to_representation(runbook)
        data["trigger"] = {"mode": runbook.trigger_mode, "match": runbook.match}
        data["secrets"] = data.pop("secrets_set")
        return data

    def service_values(self) -> dict:
        """validated_data as the service's keyword arguments."""
        values = dict(self.validated_data)
        trigger = values.pop("trigger", None)
        if trigger is not None:  # what the trigger names changes; the rest stays (manual, no match, when new)
            if "mode" in trigger:
                values["trigger_mode"] = trigger["mode"]
            if "match" in trigger:
                values["match"] = trigger["match"]
        return values


class StepRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunbookStepRun
        fields = [
            "position", "name", "kind", "status", "attempts", "started_at", "finished_at", "duration_ms", "request",
            "response", "extracted", "error", "detail",
        ]  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    remediated = serializers.SerializerMethodField()
    steps = StepRunSerializer(source="step_runs", many=True, read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    page_url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = RunbookRun
        fields = [
            "id", "runbook", "incident", "mode", "trigger", "status", "current_step", "remediated", "error",
            "started_by", "created_at", "started_at", "finished_at", "steps", "page_url",
        ]  # fmt: skip

    def get_remediated(self, run: RunbookRun) -> bool | None:
        """True when the incident resolved within the runbook's window after the last step; null while unknown."""
        return run.remediation()


class StartRunSerializer(serializers.Serializer):
    incident = serializers.PrimaryKeyRelatedField(queryset=Incident.objects.all())
    mode = serializers.ChoiceField(choices=services.RUN_MODES, default="run")


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class KillSwitchSerializer(serializers.Serializer):
    killed = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    changed_at = serializers.DateTimeField(read_only=True)


def runs_queryset():
    return RunbookRun.objects.select_related("runbook", "incident", "started_by").prefetch_related(
        Prefetch("step_runs", queryset=RunbookStepRun.objects.order_by("position"))
    )


class RunbookViewSet(viewsets.ModelViewSet):
    """Runbooks: ordered http, wait, approval and notify steps run against an incident (docs/aiops.md, Runbooks).

    Admins create and edit; operators start runs (`POST runbooks/<id>/runs/`), approve or reject runs awaiting
    approval, and cancel runs; viewers read.
    """

    queryset = Runbook.objects.all()
    serializer_class = RunbookSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    action_roles = {"runs": Role.VIEWER, "approve": Role.OPERATOR, "reject": Role.OPERATOR, "cancel": Role.OPERATOR}

    def get_permissions(self):
        if self.action == "runs" and self.request.method == "POST":
            self.action_roles = {**self.action_roles, "runs": Role.OPERATOR}
        return super().get_permissions()

    def create(self, request: Request) -> Response:
        serializer = RunbookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        runbook = services.create_runbook(actor=request.user, **serializer.service_values())
        return Response(RunbookSerializer(runbook).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = RunbookSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        runbook = services.update_runbook(runbook=self.get_object(), actor=request.user, **serializer.service_values())
        return Response(RunbookSerializer(runbook).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_runbook(runbook=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=StartRunSerializer, responses=RunSerializer(many=True))
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        """GET: the runbook's runs, newest first, paged. POST `{"incident", "mode"}`: start a run (operator)."""
        runbook = self.get_object()
        if request.method == "POST":
            serializer = StartRunSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            run = services.start_run(runbook=runbook, actor=request.user, **serializer.validated_data)
            return Response(RunSerializer(runs_queryset().get(pk=run.pk)).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(runs_queryset().filter(runbook=runbook).order_by("-created_at", "-id"))
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    def _run(self, pk: str | None, run_id: str) -> RunbookRun:
        runbook = self.get_object()
        return get_object_or_404(RunbookRun.objects.select_related("runbook", "incident"), pk=run_id, runbook=runbook)

    def _answer(self, run: RunbookRun) -> Response:
        return Response(RunSerializer(runs_queryset().get(pk=run.pk)).data)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"runs/(?P<run_id>\d+)/approve", filter_backends=[])
    def approve(self, request: Request, pk: str | None = None, run_id: str = "") -> Response:
        """Approve a run awaiting approval: it goes on with its next step."""
        return self._answer(services.approve_run(run=self._run(pk, run_id), actor=request.user))

    @extend_schema(request=RejectSerializer, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"runs/(?P<run_id>\d+)/reject", filter_backends=[])
    def reject(self, request: Request, pk: str | None = None, run_id: str = "") -> Response:
        """Reject a run awaiting approval: nothing more is sent and it ends cancelled."""
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.reject_run(run=self._run(pk, run_id), actor=request.user, **serializer.validated_data)
        return self._answer(run)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"runs/(?P<run_id>\d+)/cancel", filter_backends=[])
    def cancel(self, request: Request, pk: str | None = None, run_id: str = "") -> Response:
        """Cancel a run between steps (at once unless a request is underway)."""
        return self._answer(services.cancel_run(run=self._run(pk, run_id), actor=request.user))

    @extend_schema(request=KillSwitchSerializer, responses=KillSwitchSerializer)
    @action(detail=False, methods=["get", "post"], url_path="kill-switch", filter_backends=[], pagination_class=None)
    def kill_switch(self, request: Request) -> Response:
        """GET: whether the global kill switch is on. POST `{"killed": true}` (admin): stop every runbook step."""
        if request.method == "POST":
            serializer = KillSwitchSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            switch = services.set_kill_switch(actor=request.user, **serializer.validated_data)
        else:
            switch = services.kill_switch()
        return Response({"killed": switch.killed, "reason": switch.reason, "changed_at": switch.changed_at})

    @action(detail=False, methods=["get"], url_path="step-templates", filter_backends=[], pagination_class=None)
    def step_templates(self, request: Request) -> Response:
        """Ready-made http steps: Kubernetes, AWX / Automation Controller, Rundeck, GitHub Actions, Jenkins."""
        return Response([
            {"key": t.key, "title": t.title, "description": t.description, "secrets": list(t.secrets), "step": t.step}
            for t in TEMPLATES
        ])  # fmt: skip
