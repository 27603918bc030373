"""The append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit entry."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit entries cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit entries cannot be deleted.")

    def for_object(self, app_label: str, model: str, object_id: str) -> AuditEntryQuerySet:
        return self.filter(app_label=app_label, model=model, object_id=str(object_id))


class AuditEntry(models.Model):
    """One recorded change: who did what to which object, from where, with before -> after values."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DELETE = "delete", "Deleted"
        STATE = "state", "State change"
        LOGIN = "login", "Logged in"
        LOGOUT = "logout", "Logged out"
        LOGIN_FAILED = "login_failed", "Login failed"
        TOKEN_CREATED = "token_created", "API token created"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        TRANSITION = "transition", "Stage changed"
        REQUEST_APPROVAL = "request_approval", "Approval requested"
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        CANCEL = "cancel", "Cancelled"
        SET_ALIAS = "set_alias", "Alias set"
        DELETE_ALIAS = "delete_alias", "Alias removed"
        UPLOAD = "upload", "Uploaded"
        MOVE_LABEL = "move_label", "Label moved"
        OVERRIDE_GATE = "override_gate", "Release gate overridden"
        IMPORT = "import", "Imported"
        RESCORE = "rescore", "Re-scored"

    at = models.DateTimeField(default=timezone.now, editable=False)
    # No database constraint and no cascade: deleting a user must not rewrite history.
    # actor_name keeps saying who it was after the user is gone.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    app_label = models.CharField(max_length=50)
    model = models.CharField(max_length=50)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True, help_text="{field: [before, after]}")
    message = models.CharField(max_length=300, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["-at"], name="audit_at_idx"),
            models.Index(fields=["actor", "-at"], name="audit_actor_at_idx"),
            models.Index(fields=["app_label", "-at"], name="audit_app_at_idx"),
            models.Index(fields=["app_label", "model", "object_id", "-at"], name="audit_object_idx"),
            models.Index(fields=["action", "-at"], name="audit_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit entries cannot be deleted.")

    def history_url(self) -> str | None:
        if not self.object_id:
            return None
        return reverse("audit:history", args=[self.app_label, self.model, self.object_id])
