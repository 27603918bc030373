"""The model registry: registered models, their versions, tags, aliases, artifacts, history,
approval requests for promotions, and webhooks on registry events.

Names and shapes follow MLflow's registry (stages None/Staging/Production/Archived,
aliases unique per model, versions numbered 1, 2, 3 ... per model) so the MLflow-compatible
API is a thin translation; what MLflow lacks (approvals, history, owner team, model card,
lineage, artifacts with checksums) lives beside it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from opsportal.outbox.models import OutboxMessage, pending_index


class Stage(models.TextChoices):
    NONE = "None", "None"
    STAGING = "Staging", "Staging"
    PRODUCTION = "Production", "Production"
    ARCHIVED = "Archived", "Archived"

    @classmethod
    def parse(cls, value: str) -> Stage:
        """MLflow accepts stages case-insensitively ("production" -> Production)."""
        for stage in cls:
            if stage.value.lower() == str(value).strip().lower():
                return stage
        raise ValueError(f"invalid stage {value!r}; choose one of {', '.join(s.value for s in cls)}")


class RegisteredModel(models.Model):
    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True, help_text="Markdown.")
    owner_team = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Approval policy: a move to Production (or setting one of `protected_aliases`) needs an admin's approval.
    approval_required = models.BooleanField(default=False)
    protected_aliases = models.JSONField(default=list, blank=True)
    # Approving a promotion archives the previous Production version(s) unless the request says otherwise.
    archive_on_promotion = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["-updated_at"], name="regmodel_updated_idx"),
            models.Index(fields=["owner_team", "name"], name="regmodel_team_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("mlops:model", args=[self.name])

    @property
    def has_policy(self) -> bool:
        return self.approval_required or bool(self.protected_aliases)


class RegisteredModelTag(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=5000, blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="regmodel_tag_unique")]
        indexes = [models.Index(fields=["key", "value"], name="regmodel_tag_kv_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        PENDING_REGISTRATION = "PENDING_REGISTRATION"
        FAILED_REGISTRATION = "FAILED_REGISTRATION"
        READY = "READY"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    source = models.CharField(max_length=2000, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    run_link = models.CharField(max_length=2000, blank=True)
    description = models.TextField(blank=True, help_text="Markdown.")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.READY)
    status_message = models.CharField(max_length=500, blank=True)
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.NONE)
    framework = models.CharField(max_length=100, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # Lineage: what the version was trained on and with which code.
    dataset = models.CharField(max_length=500, blank=True)
    code_version = models.CharField(max_length=100, blank=True)
    model_card = models.TextField(blank=True, help_text="Markdown: intended use, limitations, evaluation data.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="modelversion_unique")]
        indexes = [
            models.Index(fields=["stage", "model"], name="modelversion_stage_idx"),
            models.Index(fields=["run_id"], name="modelversion_run_idx"),
            models.Index(fields=["-updated_at"], name="modelversion_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("mlops:version", args=[self.model.name, self.version])


class ModelVersionTag(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=5000, blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="modelversion_tag_unique")]
        indexes = [models.Index(fields=["key", "value"], name="modelversion_tag_kv_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ModelAlias(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["alias"]
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="modelalias_unique")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.alias}"


def artifact_upload_to(instance: Artifact, filename: str) -> str:
    version = instance.version
    return f"mlops/artifacts/{version.model_id}/{version.version}/{instance.path}"


class Artifact(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=500, help_text="File name within the version, e.g. model.pkl.")
    file = models.FileField(upload_to=artifact_upload_to, max_length=1000)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=200, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="artifact_path_unique")]

    def __str__(self) -> str:
        return self.path


class ApprovalRequest(models.Model):
    """A promotion that waits for an admin: a stage change to Production, or a protected alias."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    class Kind(models.TextChoices):
        STAGE = "stage", "Stage transition"
        ALIAS = "alias", "Protected alias"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="approval_requests")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STAGE)
    target_stage = models.CharField(max_length=12, choices=Stage.choices, blank=True)
    alias = models.CharField(max_length=255, blank=True)
    archive_existing = models.BooleanField(default=True)
    rollback = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    # A rollback the portal proposed (a newly promoted version doing worse): the metrics of both versions on
    # the same window, the window and the monitor, shown to the approver.
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "-requested_at"], name="approval_status_idx")]
        constraints = [
            # One open request per version and target at a time.
            models.UniqueConstraint(
                fields=["version", "kind", "target_stage", "alias"],
                condition=Q(status="pending"),
                name="approval_one_pending",
            )
        ]

    def __str__(self) -> str:
        return f"Approval request #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("mlops:approvals") + f"#request-{self.pk}"

    @property
    def target(self) -> str:
        return f"alias @{self.alias}" if self.kind == self.Kind.ALIAS else f"stage {self.target_stage}"


class VersionEvent(models.Model):
    """One line of a model's or version's history (the audit log has the same, across the portal)."""

    class Kind(models.TextChoices):
        MODEL_CREATED = "model_created"
        MODEL_UPDATED = "model_updated"
        MODEL_RENAMED = "model_renamed"
        VERSION_CREATED = "version_created"
        VERSION_UPDATED = "version_updated"
        STAGE_CHANGED = "stage_changed"
        ALIAS_SET = "alias_set"
        ALIAS_DELETED = "alias_deleted"
        TAG_SET = "tag_set"
        TAG_DELETED = "tag_deleted"
        ARTIFACT_UPLOADED = "artifact_uploaded"
        APPROVAL_REQUESTED = "approval_requested"
        APPROVED = "approved"
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        # Monitoring (issue 14): a check breached or recovered, a retraining webhook called or answered.
        BREACH_OPENED = "breach_opened"
        BREACH_RESOLVED = "breach_resolved"
        RETRAINING = "retraining"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="events")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["model", "-created_at"], name="versionevent_model_idx"),
            models.Index(fields=["version", "-created_at"], name="versionevent_version_idx"),
            models.Index(fields=["kind", "-created_at"], name="versionevent_kind_idx"),
        ]

    def __str__(self) -> str:
        return self.message


class Webhook(models.Model):
    """An outgoing, HMAC-signed webhook on registry events (optionally for one model only)."""

    class Event(models.TextChoices):
        MODEL_CREATED = "model_created", "Model created"
        VERSION_CREATED = "version_created", "Version created"
        STAGE_CHANGED = "stage_changed", "Stage changed"
        ALIAS_SET = "alias_set", "Alias set"
        ALIAS_DELETED = "alias_deleted", "Alias deleted"
        TAG_SET = "tag_set", "Tag set"

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    secret = models.TextField(blank=True, help_text="Signing secret, encrypted at rest.")
    events = models.JSONField(default=list, help_text="Event names; empty means every event.")
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str, model_id: int) -> bool:
        return self.enabled and (not self.events or event in self.events) and self.model_id in (None, model_id)


class WebhookDelivery(OutboxMessage):
    """The outbox of webhook calls (see `mlops.webhooks`): written in the registry change's transaction,
    sent by Celery; the rows are the webhook's delivery log."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["webhook", "-created_at"], name="webhookdelivery_hook_idx"),
            pending_index("webhookdelivery_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.webhook}"
